#include "agent/xml_tools.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>

namespace lai::agent {
namespace {

// Ordered, so documentation lists parameters in the schema's order.
using json = nlohmann::ordered_json;

constexpr std::string_view kWhitespace = " \t\n\r\f\v";

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}
bool IsTagName(std::string_view name) {
  if (name.empty() || !IsNameStart(name.front())) return false;
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(kWhitespace);
  return text.substr(begin, end - begin + 1);
}

// `content` and `diff` keep their inner whitespace: only the newline after the opening tag and
// the one before the closing tag belong to the markup. But write_to_file's content is a whole
// file and keeps its last newline: lines written between the tags, "a\nb\n", are what was meant.
bool KeepsWhitespace(std::string_view param) { return param == "content" || param == "diff"; }

std::string CleanValue(std::string_view tool, std::string_view param, std::string_view raw) {
  if (KeepsWhitespace(param)) {
    if (raw.starts_with('\n')) raw.remove_prefix(1);
    bool is_file = tool == "write_to_file" && param == "content";
    if (!is_file && raw.ends_with('\n')) raw.remove_suffix(1);
    return std::string(raw);
  }
  std::string value(Trim(raw));
  // Kilo Code's quirk, kept because models rely on it: commands often arrive HTML-escaped
  // (`2&gt;&amp;1`). Each entity is decoded once, so "&amp;lt;" stays "&lt;".
  if (tool == "execute_command" && param == "command") {
    static constexpr std::pair<std::string_view, char> kEntities[] = {
        {"&amp;", '&'},  {"&lt;", '<'},   {"&gt;", '>'},
        {"&quot;", '"'}, {"&#39;", '\''}, {"&apos;", '\''}};
    std::string out;
    out.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      bool decoded = false;
      for (const auto& [entity, character] : kEntities) {
        if (value.compare(i, entity.size(), entity) == 0) {
          out += character;
          i += entity.size() - 1;
          decoded = true;
          break;
        }
      }
      if (!decoded && value.compare(i, 2, "&#") == 0) {  // &#65; and &#x41;: ASCII ones.
        const bool is_hex = i + 2 < value.size() && (value[i + 2] == 'x' || value[i + 2] == 'X');
        const size_t digits = i + (is_hex ? 3 : 2);
        const size_t end = value.find(';', digits);
        if (end != std::string::npos && end > digits && end - digits <= 4) {
          unsigned code = 0;
          bool is_number = true;
          for (size_t k = digits; k < end && is_number; ++k) {
            const char c = value[k];
            int digit = c >= '0' && c <= '9'             ? c - '0'
                        : is_hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : is_hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                         : -1;
            is_number = digit >= 0;
            code = code * (is_hex ? 16 : 10) + static_cast<unsigned>(digit);
          }
          if (is_number && code >= 0x20 && code < 0x7f) {
            out += static_cast<char>(code);
            i = end;
            decoded = true;
          }
        }
      }
      if (!decoded) out += value[i];
    }
    value = std::move(out);
  }
  return value;
}

// The types a schema node allows ("type": "x" or ["x", "null"]).
std::vector<std::string> Types(const json& schema) {
  std::vector<std::string> types;
  if (!schema.is_object()) return types;
  auto it = schema.find("type");
  if (it == schema.end()) return types;
  if (it->is_string()) {
    types.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& type : *it) {
      if (type.is_string()) types.push_back(type.get<std::string>());
    }
  }
  return types;
}

bool Allows(const std::vector<std::string>& types, std::string_view type) {
  return std::find(types.begin(), types.end(), type) != types.end();
}

const json* Properties(const json& schema) {
  if (!schema.is_object()) return nullptr;
  auto it = schema.find("properties");
  return it != schema.end() && it->is_object() ? &*it : nullptr;
}

const json* Property(const json& schema, std::string_view name) {
  const json* properties = Properties(schema);
  if (properties == nullptr) return nullptr;
  auto it = properties->find(name);
  return it != properties->end() ? &*it : nullptr;
}

const json* Items(const json& schema) {
  if (!schema.is_object()) return nullptr;
  auto it = schema.find("items");
  return it != schema.end() && it->is_object() ? &*it : nullptr;
}

bool IsArrayOfObjects(const json& schema) {
  const json* items = Items(schema);
  return Allows(Types(schema), "array") && items != nullptr && Allows(Types(*items), "object");
}

// The array property `name + "s"` a repeated singular element fills (`line_range` →
// `line_ranges`), or nullptr.
const json* PluralArray(const json& schema, std::string_view name) {
  const json* plural = Property(schema, std::string(name) + "s");
  return plural != nullptr && Allows(Types(*plural), "array") ? plural : nullptr;
}

// The one array-of-objects property of a schema that has no other property (read_file's
// `files`): its items may be written flat, as one item. Empty when there is none.
std::string SoleArrayProperty(const json& schema) {
  const json* properties = Properties(schema);
  if (properties == nullptr || properties->size() != 1) return {};
  auto it = properties->begin();
  return IsArrayOfObjects(it.value()) ? it.key() : std::string();
}

Result<json> ParseSchema(std::string_view tool, std::string_view schema_json) {
  try {
    json schema = json::parse(schema_json);
    if (!schema.is_object()) {
      return Error(ErrorCode::kInvalidArgument,
                   "schema of tool '" + std::string(tool) + "' is not a JSON object");
    }
    auto properties = schema.find("properties");
    if (properties != schema.end() && !properties->is_object()) {
      return Error(ErrorCode::kInvalidArgument,
                   "schema of tool '" + std::string(tool) + "': 'properties' is not an object");
    }
    return schema;
  } catch (const json::exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 "schema of tool '" + std::string(tool) + "' is not valid JSON: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Nested XML inside array/object parameter values.

struct Element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string_view inner;  // Raw text between the tags.
};

struct Nested {
  std::vector<Element> elements;
  std::string text;  // Everything outside elements (CDATA sections unwrapped).
};

// Parses `<a x="1">…</a><b/>` leniently: a `<` that does not start a tag is text; an element
// ends at its matching closing tag (same-name nesting counted). Errors: an unclosed element or
// a malformed attribute, as a phrase for the model's message.
Result<Nested> ParseNested(std::string_view text) {
  Nested out;
  size_t position = 0;
  while (position < text.size()) {
    size_t lt = text.find('<', position);
    if (lt == std::string_view::npos) {
      out.text.append(text.substr(position));
      break;
    }
    out.text.append(text.substr(position, lt - position));
    if (text.compare(lt, 9, "<![CDATA[") == 0) {
      size_t end = text.find("]]>", lt + 9);
      if (end == std::string_view::npos) {
        return Error(ErrorCode::kInvalidArgument, "a <![CDATA[ section is not closed with ]]>");
      }
      out.text.append(text.substr(lt + 9, end - lt - 9));
      position = end + 3;
      continue;
    }
    if (lt + 1 >= text.size() || !IsNameStart(text[lt + 1])) {
      out.text += '<';
      position = lt + 1;
      continue;
    }
    Element element;
    size_t i = lt + 1;
    while (i < text.size() && IsNameChar(text[i])) ++i;
    element.name = std::string(text.substr(lt + 1, i - lt - 1));
    bool self_closing = false;
    while (true) {
      while (i < text.size() && kWhitespace.find(text[i]) != std::string_view::npos) ++i;
      if (i >= text.size()) {
        return Error(ErrorCode::kInvalidArgument,
                     "the tag <" + element.name + " is not finished with >");
      }
      if (text[i] == '>') {
        ++i;
        break;
      }
      if (text.compare(i, 2, "/>") == 0) {
        self_closing = true;
        i += 2;
        break;
      }
      size_t name_start = i;
      while (i < text.size() && IsNameChar(text[i])) ++i;
      if (i == name_start || i >= text.size() || text[i] != '=' || i + 1 >= text.size() ||
          (text[i + 1] != '"' && text[i + 1] != '\'')) {
        return Error(ErrorCode::kInvalidArgument,
                     "the attributes of <" + element.name + "> must look like name=\"value\"");
      }
      std::string attribute(text.substr(name_start, i - name_start));
      char quote = text[i + 1];
      size_t close = text.find(quote, i + 2);
      if (close == std::string_view::npos) {
        return Error(ErrorCode::kInvalidArgument,
                     "an attribute value of <" + element.name + "> is not closed");
      }
      element.attributes.emplace_back(std::move(attribute),
                                      std::string(text.substr(i + 2, close - i - 2)));
      i = close + 1;
    }
    if (self_closing) {
      position = i;
      out.elements.push_back(std::move(element));
      continue;
    }
    const std::string open = "<" + element.name;
    const std::string close = "</" + element.name + ">";
    size_t depth = 1;
    size_t scan = i;
    size_t close_at = std::string_view::npos;
    while (true) {
      size_t next = text.find('<', scan);
      if (next == std::string_view::npos) break;
      if (text.compare(next, close.size(), close) == 0) {
        if (--depth == 0) {
          close_at = next;
          break;
        }
        scan = next + close.size();
        continue;
      }
      if (text.compare(next, open.size(), open) == 0 && next + open.size() < text.size()) {
        char after = text[next + open.size()];
        if (after == '>' || kWhitespace.find(after) != std::string_view::npos) ++depth;
      }
      scan = next + 1;
    }
    if (close_at == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   "<" + element.name + "> has no closing </" + element.name + ">");
    }
    element.inner = text.substr(i, close_at - i);
    position = close_at + close.size();
    out.elements.push_back(std::move(element));
  }
  return out;
}

Error InvalidParam(std::string_view param, std::string_view what) {
  return Error(ErrorCode::kInvalidArgument,
               "Invalid value for parameter '" + std::string(param) + "': " + std::string(what) +
                   ". Please retry with a corrected value.");
}

std::string Quoted(std::string_view value) {
  constexpr size_t kMaxShown = 60;
  if (value.size() <= kMaxShown) return "'" + std::string(value) + "'";
  return "'" + std::string(value.substr(0, kMaxShown)) + "…'";
}

std::string_view UnwrapCdata(std::string_view value) {
  std::string_view trimmed = Trim(value);
  if (trimmed.starts_with("<![CDATA[") && trimmed.ends_with("]]>")) {
    return trimmed.substr(9, trimmed.size() - 12);
  }
  return value;
}

Result<json> ConvertValue(const json& schema, std::string_view value, std::string_view param);

// One nested element as a value of `schema` (`param` names it in errors).
Result<json> ConvertElement(const json& schema, const Element& element, std::string_view param);

// Child elements (and attributes) as the properties of an object `schema`.
Status FillObject(const json& schema, const std::vector<Element>& children,
                  const std::vector<std::pair<std::string, std::string>>& attributes,
                  std::string_view param, json& object) {
  for (const auto& [name, value] : attributes) {
    const json* property = Property(schema, name);
    if (property == nullptr) {
      object[name] = value;
      continue;
    }
    ASSIGN_OR_RETURN(object[name], ConvertValue(*property, value, param));
  }
  for (const Element& child : children) {
    if (const json* property = Property(schema, child.name); property != nullptr) {
      ASSIGN_OR_RETURN(object[child.name], ConvertElement(*property, child, param));
    } else if (const json* plural = PluralArray(schema, child.name); plural != nullptr) {
      const std::string key = child.name + "s";
      if (!object.contains(key) || !object[key].is_array()) object[key] = json::array();
      const json* items = Items(*plural);
      json item_schema = items != nullptr ? *items : json::object();
      ASSIGN_OR_RETURN(json item, ConvertElement(item_schema, child, param));
      object[key].push_back(std::move(item));
    } else {
      object[child.name] = std::string(Trim(UnwrapCdata(child.inner)));
    }
  }
  return OkStatus();
}

Result<json> ConvertElement(const json& schema, const Element& element, std::string_view param) {
  std::vector<std::string> types = Types(schema);
  if (!Allows(types, "object")) {
    if (Allows(types, "array") || Allows(types, "integer") || Allows(types, "number") ||
        Allows(types, "boolean")) {
      return ConvertValue(schema, element.inner, param);
    }
    std::string_view inner = UnwrapCdata(element.inner);
    if (KeepsWhitespace(element.name)) {
      if (inner.starts_with('\n')) inner.remove_prefix(1);
      if (inner.ends_with('\n')) inner.remove_suffix(1);
      return json(std::string(inner));
    }
    return json(std::string(Trim(inner)));
  }
  Result<Nested> parsed = ParseNested(element.inner);
  if (!parsed.ok()) return InvalidParam(param, parsed.error().message());
  const Nested& nested = *parsed;
  json object = json::object();
  std::string_view text = Trim(nested.text);
  if (!text.empty() && nested.elements.empty()) {
    // <suggest mode="code">text</suggest>: the text is the item's `text` (or first required
    // string property).
    std::string key = Property(schema, "text") != nullptr ? "text" : "";
    if (key.empty() && schema.contains("required") && schema["required"].is_array()) {
      for (const json& required : schema["required"]) {
        if (!required.is_string()) continue;
        const json* property = Property(schema, required.get<std::string>());
        if (property != nullptr && Allows(Types(*property), "string")) {
          key = required.get<std::string>();
          break;
        }
      }
    }
    if (key.empty()) {
      return InvalidParam(param, "<" + element.name + "> needs child elements, not text");
    }
    object[key] = std::string(text);
  }
  RETURN_IF_ERROR(FillObject(schema, nested.elements, element.attributes, param, object));
  return object;
}

std::optional<int64_t> ParseInteger(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::string copy(text);
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(copy.c_str(), &end, 10);
  if (errno != 0 || end != copy.c_str() + copy.size()) {
    // "12.0" is an integer too.
    double number = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size() || number != static_cast<double>(
                                                           static_cast<int64_t>(number))) {
      return std::nullopt;
    }
    return static_cast<int64_t>(number);
  }
  return static_cast<int64_t>(value);
}

Result<json> ConvertValue(const json& schema, std::string_view value, std::string_view param) {
  std::vector<std::string> types = Types(schema);
  std::string_view trimmed = Trim(value);
  const bool is_nullable = Allows(types, "null");
  if (types.empty() || Allows(types, "string")) return json(std::string(value));
  if (trimmed.empty() && is_nullable) return json(nullptr);

  if (Allows(types, "array") || Allows(types, "object")) {
    const bool is_array = Allows(types, "array");
    if (trimmed.empty()) return is_array ? json::array() : json::object();
    if (trimmed.front() == '[' || trimmed.front() == '{') {
      try {
        json parsed = json::parse(trimmed);
        if ((parsed.is_array() && is_array) || (parsed.is_object() && Allows(types, "object")) ||
            (parsed.is_object() && is_array)) {
          return parsed;
        }
      } catch (const json::exception&) {
        // Not JSON after all: read it as XML below.
      }
    }
    Result<Nested> nested = ParseNested(trimmed);
    if (!nested.ok()) return InvalidParam(param, nested.error().message());
    if (!is_array) {
      // Text that is neither JSON nor elements would be an empty object, silently.
      if (nested->elements.empty() && !Trim(nested->text).empty()) {
        return InvalidParam(
            param, "expected a JSON object or one element per field, got " + Quoted(trimmed));
      }
      json object = json::object();
      RETURN_IF_ERROR(FillObject(schema, nested->elements, {}, param, object));
      return object;
    }
    const json* items = Items(schema);
    json item_schema = items != nullptr ? *items : json::object();
    json array = json::array();
    if (nested->elements.empty()) {
      // A single scalar item written without an element: <line_ranges>1-50</line_ranges>.
      if (Allows(Types(item_schema), "object")) {
        return InvalidParam(param, "expected one element per item, like " +
                                       std::string("<item>…</item>"));
      }
      ASSIGN_OR_RETURN(json item, ConvertValue(item_schema, trimmed, param));
      array.push_back(std::move(item));
      return array;
    }
    for (const Element& element : nested->elements) {
      ASSIGN_OR_RETURN(json item, ConvertElement(item_schema, element, param));
      array.push_back(std::move(item));
    }
    return array;
  }
  if (Allows(types, "integer")) {
    std::optional<int64_t> number = ParseInteger(trimmed);
    if (!number) return InvalidParam(param, "expected an integer, got " + Quoted(trimmed));
    return json(*number);
  }
  if (Allows(types, "number")) {
    std::string copy(trimmed);
    char* end = nullptr;
    double number = copy.empty() ? 0 : std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size()) {
      return InvalidParam(param, "expected a number, got " + Quoted(trimmed));
    }
    return json(number);
  }
  if (Allows(types, "boolean")) {
    std::string lower(trimmed);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "true" || lower == "1") return json(true);
    if (lower == "false" || lower == "0") return json(false);
    return InvalidParam(param, "expected true or false, got " + Quoted(trimmed));
  }
  if (is_nullable) return json(nullptr);
  return json(std::string(value));
}

// ---------------------------------------------------------------------------------------------
// The streaming parser.

struct ToolInfo {
  std::string name;
  std::string close_tag;  // "</name>"
  // Sorted tags recognised between parameters: "<param>" for each parameter, and close_tag.
  std::vector<std::string> body_tags;
};

enum class Match { kNone, kPrefix, kExact };

// Whether `candidate` is one of `sorted_tags` or a prefix of one. No tag is a prefix of another
// (each ends with its only '>').
Match MatchTag(const std::vector<std::string>& sorted_tags, std::string_view candidate,
               size_t* index) {
  auto it = std::lower_bound(sorted_tags.begin(), sorted_tags.end(), candidate);
  if (it == sorted_tags.end() || !std::string_view(*it).starts_with(candidate)) {
    return Match::kNone;
  }
  *index = static_cast<size_t>(it - sorted_tags.begin());
  return it->size() == candidate.size() ? Match::kExact : Match::kPrefix;
}

}  // namespace

Result<XmlToolSpec> XmlToolSpec::FromSchema(std::string_view name, std::string_view schema_json) {
  if (!IsTagName(name)) {
    return Error(ErrorCode::kInvalidArgument,
                 "XML tool name '" + std::string(name) +
                     "' is not a tag name: use letters, digits, '_', '-' or '.', starting with a "
                     "letter or '_'");
  }
  ASSIGN_OR_RETURN(json schema, ParseSchema(name, schema_json));
  XmlToolSpec spec;
  spec.name = std::string(name);
  spec.schema_json = std::string(schema_json);
  auto add = [&spec](const std::string& param) {
    if (IsTagName(param) &&
        std::find(spec.params.begin(), spec.params.end(), param) == spec.params.end()) {
      spec.params.push_back(param);
    }
  };
  const json* properties = Properties(schema);
  if (properties != nullptr) {
    bool has_structured = false;
    for (auto it = properties->begin(); it != properties->end(); ++it) {
      add(it.key());
      std::vector<std::string> types = Types(it.value());
      has_structured |= Allows(types, "array") || Allows(types, "object");
    }
    if (has_structured) add("args");
    // read_file's simple form: the one item's properties directly in the tool.
    std::string sole = SoleArrayProperty(schema);
    if (!sole.empty()) {
      const json* items = Items((*properties)[sole]);
      if (const json* item_properties = Properties(*items); item_properties != nullptr) {
        for (auto it = item_properties->begin(); it != item_properties->end(); ++it) {
          add(it.key());
          if (it.key().ends_with('s') && Allows(Types(it.value()), "array")) {
            add(it.key().substr(0, it.key().size() - 1));
          }
        }
      }
    }
  }
  if (name == "read_file") {
    add("path");
    add("start_line");
    add("end_line");
  }
  return spec;
}

struct XmlToolParser::State {
  enum class Mode { kText, kBody, kParam };

  std::vector<ToolInfo> tools;
  std::vector<std::string> tool_tags;  // Sorted "<name>".
  std::vector<size_t> tool_of_tag;     // tool_tags[i] opens tools[tool_of_tag[i]].

  Mode mode = Mode::kText;
  bool is_failed = false;
  size_t total_bytes = 0;
  size_t calls_seen = 0;
  std::string pending;  // A possible tag prefix at the end of what was fed (kText, kBody).
  std::string text;     // Text not yet reported.

  // The current call (kBody, kParam).
  const ToolInfo* tool = nullptr;
  XmlToolCall call;
  std::vector<std::string> done_params;
  size_t content_start = std::string::npos;  // Offset in call.raw just after the first <content>.
  std::string param;
  std::string param_close;
  std::string value;  // The current parameter's raw value (only its tail once oversized).
  bool is_oversized = false;

  void FlushText(std::vector<XmlEvent>& events) {
    if (text.empty()) return;
    XmlEvent event;
    event.type = XmlEventType::kText;
    event.text = std::move(text);
    text.clear();
    events.push_back(std::move(event));
  }

  void StartTool(size_t index, std::vector<XmlEvent>& events) {
    FlushText(events);
    tool = &tools[index];
    call = XmlToolCall();
    call.name = tool->name;
    call.index = calls_seen++;
    call.raw = "<" + tool->name + ">";
    done_params.clear();
    content_start = std::string::npos;
    mode = Mode::kBody;
    XmlEvent event;
    event.type = XmlEventType::kToolStart;
    event.text = tool->name;
    events.push_back(std::move(event));
  }

  void StartParam(std::string name) {
    param = std::move(name);
    param_close = "</" + param + ">";
    value.clear();
    is_oversized = false;
    if (param == "content" && content_start == std::string::npos) content_start = call.raw.size();
    mode = Mode::kParam;
  }

  void StoreParam(const std::string& name, std::string_view raw_value, bool oversized) {
    std::string cleaned;
    if (!oversized) cleaned = CleanValue(tool->name, name, raw_value);
    auto existing = std::find_if(call.params.begin(), call.params.end(),
                                 [&](const auto& entry) { return entry.first == name; });
    if (oversized || cleaned.size() > kMaxParamBytes) {
      if (existing != call.params.end()) call.params.erase(existing);
      if (std::find(call.oversized_params.begin(), call.oversized_params.end(), name) ==
          call.oversized_params.end()) {
        call.oversized_params.push_back(name);
      }
      return;
    }
    if (existing != call.params.end()) {
      existing->second = std::move(cleaned);
    } else {
      call.params.emplace_back(name, std::move(cleaned));
    }
  }

  void EndParam() {
    StoreParam(param, value, is_oversized);
    done_params.push_back(std::move(param));
    param.clear();
    value.clear();
    mode = Mode::kBody;
  }

  // `content` runs to the last </content> in the call: files may contain the closing tag.
  void ExtendContent(size_t search_end) {
    if (content_start == std::string::npos) return;
    if (std::find(done_params.begin(), done_params.end(), "content") == done_params.end()) return;
    if (std::find(call.oversized_params.begin(), call.oversized_params.end(), "content") !=
        call.oversized_params.end()) {
      return;
    }
    size_t last = std::string_view(call.raw).substr(0, search_end).rfind("</content>");
    if (last == std::string::npos || last < content_start) return;
    StoreParam("content", std::string_view(call.raw).substr(content_start, last - content_start),
               false);
  }

  void CompleteTool(std::vector<XmlEvent>& events, bool partial) {
    size_t search_end = partial ? call.raw.size() : call.raw.size() - tool->close_tag.size();
    ExtendContent(search_end);
    call.is_partial = partial;
    XmlEvent event;
    event.type = XmlEventType::kToolComplete;
    event.text = call.name;
    event.call = std::move(call);
    call = XmlToolCall();
    events.push_back(std::move(event));
    tool = nullptr;
    mode = Mode::kText;
  }

  // Each Feed* consumes from chunk[at] on and returns the new position.
  size_t FeedText(std::string_view chunk, size_t at, std::vector<XmlEvent>& events) {
    if (pending.empty()) {
      size_t lt = chunk.find('<', at);
      if (lt == std::string_view::npos) {
        text.append(chunk.substr(at));
        return chunk.size();
      }
      text.append(chunk.substr(at, lt - at));
      pending = "<";
      return lt + 1;
    }
    char c = chunk[at];
    pending += c;
    size_t index = 0;
    switch (MatchTag(tool_tags, pending, &index)) {
      case Match::kExact:
        pending.clear();
        StartTool(tool_of_tag[index], events);
        break;
      case Match::kPrefix:
        break;
      case Match::kNone:
        if (c == '<') {
          text.append(pending, 0, pending.size() - 1);
          pending = "<";
        } else {
          text += pending;
          pending.clear();
        }
        break;
    }
    return at + 1;
  }

  size_t FeedBody(std::string_view chunk, size_t at, std::vector<XmlEvent>& events) {
    if (pending.empty()) {
      size_t lt = chunk.find('<', at);
      if (lt == std::string_view::npos) {
        call.raw.append(chunk.substr(at));
        return chunk.size();
      }
      call.raw.append(chunk.substr(at, lt - at + 1));
      pending = "<";
      return lt + 1;
    }
    char c = chunk[at];
    call.raw += c;
    pending += c;
    size_t index = 0;
    switch (MatchTag(tool->body_tags, pending, &index)) {
      case Match::kExact: {
        std::string tag = std::move(pending);
        pending.clear();
        if (tag == tool->close_tag) {
          CompleteTool(events, /*partial=*/false);
          break;
        }
        std::string name = tag.substr(1, tag.size() - 2);
        // A parameter is read once; a repeated tag (inside a `content` that contained
        // </content>) is part of that content.
        if (std::find(done_params.begin(), done_params.end(), name) == done_params.end()) {
          StartParam(std::move(name));
        }
        break;
      }
      case Match::kPrefix:
        break;
      case Match::kNone:
        pending = c == '<' ? "<" : "";
        break;
    }
    return at + 1;
  }

  size_t FeedParam(std::string_view chunk, size_t at) {
    size_t gt = chunk.find('>', at);
    size_t end = gt == std::string_view::npos ? chunk.size() : gt + 1;
    std::string_view span = chunk.substr(at, end - at);
    call.raw.append(span);
    value.append(span);
    if (gt != std::string_view::npos && std::string_view(value).ends_with(param_close)) {
      value.resize(value.size() - param_close.size());
      EndParam();
      return end;
    }
    if (!is_oversized && value.size() > kMaxParamBytes + param_close.size()) is_oversized = true;
    // Once oversized, only the tail that could hold the closing tag is kept.
    if (is_oversized && value.size() > param_close.size()) {
      value.erase(0, value.size() - param_close.size());
    }
    return end;
  }
};

XmlToolParser::XmlToolParser(std::vector<XmlToolSpec> tools) : state_(std::make_unique<State>()) {
  state_->tools.reserve(tools.size());
  std::vector<std::pair<std::string, size_t>> tags;
  for (XmlToolSpec& spec : tools) {
    ToolInfo info;
    info.name = std::move(spec.name);
    info.close_tag = "</" + info.name + ">";
    for (const std::string& param : spec.params) info.body_tags.push_back("<" + param + ">");
    info.body_tags.push_back(info.close_tag);
    std::sort(info.body_tags.begin(), info.body_tags.end());
    info.body_tags.erase(std::unique(info.body_tags.begin(), info.body_tags.end()),
                         info.body_tags.end());
    tags.emplace_back("<" + info.name + ">", state_->tools.size());
    state_->tools.push_back(std::move(info));
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end(),
                         [](const auto& a, const auto& b) { return a.first == b.first; }),
             tags.end());
  for (auto& [tag, index] : tags) {
    state_->tool_tags.push_back(std::move(tag));
    state_->tool_of_tag.push_back(index);
  }
}

XmlToolParser::~XmlToolParser() = default;
XmlToolParser::XmlToolParser(XmlToolParser&&) noexcept = default;
XmlToolParser& XmlToolParser::operator=(XmlToolParser&&) noexcept = default;

Status XmlToolParser::Feed(std::string_view chunk, std::vector<XmlEvent>& events) {
  State& s = *state_;
  if (s.is_failed || s.total_bytes + chunk.size() > kMaxMessageBytes) {
    s.is_failed = true;
    return Error(ErrorCode::kResourceExhausted,
                 "Assistant message exceeds maximum allowed size (" +
                     std::to_string(kMaxMessageBytes / 1024) + " KB)");
  }
  s.total_bytes += chunk.size();
  size_t at = 0;
  while (at < chunk.size()) {
    switch (s.mode) {
      case State::Mode::kText:
        at = s.FeedText(chunk, at, events);
        break;
      case State::Mode::kBody:
        at = s.FeedBody(chunk, at, events);
        break;
      case State::Mode::kParam:
        at = s.FeedParam(chunk, at);
        break;
    }
  }
  s.FlushText(events);
  return OkStatus();
}

void XmlToolParser::Finish(std::vector<XmlEvent>& events) {
  State& s = *state_;
  switch (s.mode) {
    case State::Mode::kText:
      s.text += s.pending;
      s.pending.clear();
      s.FlushText(events);
      break;
    case State::Mode::kParam:
      s.call.unterminated_param = s.param;
      s.StoreParam(s.param, s.value, s.is_oversized);
      s.CompleteTool(events, /*partial=*/true);
      break;
    case State::Mode::kBody:
      s.pending.clear();
      s.CompleteTool(events, /*partial=*/true);
      break;
  }
}

void XmlToolParser::Reset() {
  State& s = *state_;
  s.mode = State::Mode::kText;
  s.is_failed = false;
  s.total_bytes = 0;
  s.calls_seen = 0;
  s.pending.clear();
  s.text.clear();
  s.tool = nullptr;
  s.call = XmlToolCall();
  s.done_params.clear();
  s.content_start = std::string::npos;
  s.param.clear();
  s.value.clear();
  s.is_oversized = false;
}

size_t XmlToolParser::tool_calls_seen() const { return state_->calls_seen; }

Result<std::string> XmlParamsToJson(const XmlToolSpec& spec, const XmlParams& params) {
  Result<json> parsed = ParseSchema(spec.name, spec.schema_json);
  if (!parsed.ok()) return Error(ErrorCode::kInternal, parsed.error().message());
  const json& schema = *parsed;
  const std::string sole = SoleArrayProperty(schema);
  const json* sole_items = sole.empty() ? nullptr : Items(schema["properties"][sole]);
  const bool is_legacy_read = spec.name == "read_file" &&
                              std::any_of(params.begin(), params.end(), [](const auto& entry) {
                                return entry.first == "start_line" || entry.first == "end_line";
                              });
  json out = json::object();
  json flat_item = json::object();  // The simple form of the sole array's one item.
  for (const auto& [name, value] : params) {
    if (name == "args" && Property(schema, "args") == nullptr) {
      Result<Nested> nested = ParseNested(Trim(value));
      if (!nested.ok()) return InvalidParam("args", nested.error().message());
      RETURN_IF_ERROR(FillObject(schema, nested->elements, {}, "args", out));
      continue;
    }
    if (const json* property = Property(schema, name); property != nullptr) {
      ASSIGN_OR_RETURN(out[name], ConvertValue(*property, value, name));
      continue;
    }
    if (const json* plural = PluralArray(schema, name); plural != nullptr) {
      const std::string key = name + "s";
      if (!out.contains(key) || !out[key].is_array()) out[key] = json::array();
      const json* items = Items(*plural);
      ASSIGN_OR_RETURN(json item,
                       ConvertValue(items != nullptr ? *items : json::object(), value, name));
      out[key].push_back(std::move(item));
      continue;
    }
    if (sole_items != nullptr && !is_legacy_read) {
      if (const json* property = Property(*sole_items, name); property != nullptr) {
        ASSIGN_OR_RETURN(flat_item[name], ConvertValue(*property, value, name));
        continue;
      }
      if (const json* plural = PluralArray(*sole_items, name); plural != nullptr) {
        const std::string key = name + "s";
        if (!flat_item.contains(key) || !flat_item[key].is_array()) flat_item[key] = json::array();
        const json* items = Items(*plural);
        ASSIGN_OR_RETURN(json item,
                         ConvertValue(items != nullptr ? *items : json::object(), value, name));
        flat_item[key].push_back(std::move(item));
        continue;
      }
    }
    out[name] = value;  // Unknown to the schema: the tool decides.
  }
  if (!flat_item.empty() && !out.contains(sole)) {
    out[sole] = json::array({std::move(flat_item)});
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------------
// Documentation.

namespace {

std::string Placeholder(std::string_view name, const json& schema) {
  std::vector<std::string> types = Types(schema);
  if (Allows(types, "boolean")) return "true or false";
  if (Allows(types, "integer") || Allows(types, "number")) return "number";
  if (name == "line_range") return "start-end";
  std::string words(name);
  std::replace(words.begin(), words.end(), '_', ' ');
  return words + " here";
}

std::string Description(const json& schema) {
  if (schema.is_object() && schema.contains("description") && schema["description"].is_string()) {
    return schema["description"].get<std::string>();
  }
  return {};
}

bool IsRequired(const json& parent, std::string_view name, const json& schema) {
  if (Allows(Types(schema), "null")) return false;
  auto it = parent.find("required");
  if (it == parent.end() || !it->is_array()) return false;
  return std::any_of(it->begin(), it->end(),
                     [&](const json& entry) { return entry.is_string() && entry == name; });
}

// The tag of one item of array property `name`.
std::string ItemTag(std::string_view name) {
  if (name == "follow_up") return "suggest";
  if (name.size() > 1 && name.ends_with('s')) return std::string(name.substr(0, name.size() - 1));
  return "item";
}

void AppendParameterLine(std::string& out, std::string_view indent, std::string_view name,
                         bool required, std::string_view description) {
  out += indent;
  out += "- ";
  out += name;
  out += required ? ": (required) " : ": (optional) ";
  out += description;
  out += '\n';
}

// Parameter lines and usage lines for the properties of an object schema.
void DescribeObject(const json& schema, std::string_view indent, std::string& parameters,
                    std::string& usage, std::string_view usage_indent);

void DescribeProperty(const json& parent, const std::string& name, const json& schema,
                      std::string_view indent, std::string& parameters, std::string& usage,
                      std::string_view usage_indent) {
  const bool required = IsRequired(parent, name, schema);
  std::vector<std::string> types = Types(schema);
  const json* items = Items(schema);
  std::string optional_note = required ? "" : " (optional)";
  if (Allows(types, "array") && items != nullptr) {
    std::string singular = name.ends_with('s') && !Allows(Types(*items), "object")
                               ? name.substr(0, name.size() - 1)
                               : std::string();
    if (!singular.empty() && Properties(parent) != nullptr &&
        !Property(parent, singular)) {
      // line_ranges: repeat <line_range> directly in the item.
      AppendParameterLine(parameters, indent, singular, required,
                          Description(schema) + " (repeat the tag for each value)");
      usage += std::string(usage_indent) + "<" + singular + ">" + Placeholder(singular, *items) +
               "</" + singular + ">" + optional_note + "\n";
      return;
    }
    const std::string tag = ItemTag(name);
    if (Allows(Types(*items), "object") && Property(*items, "text") != nullptr) {
      std::string attributes;
      std::string attribute_usage;
      const json* item_properties = Properties(*items);
      for (auto it = item_properties->begin(); it != item_properties->end(); ++it) {
        if (it.key() == "text") continue;
        attributes += (attributes.empty() ? "" : ", ") + it.key();
        attribute_usage += " " + it.key() + "=\"" + it.key() + "\"";
      }
      std::string text = Description(schema) + ". One or more <" + tag + "> elements, each " +
                         "holding the text" +
                         (attributes.empty() ? "" : "; optional attributes: " + attributes);
      AppendParameterLine(parameters, indent, name, required, text);
      usage += std::string(usage_indent) + "<" + name + ">\n";
      usage += std::string(usage_indent) + "<" + tag + ">text here</" + tag + ">\n";
      if (!attribute_usage.empty()) {
        usage += std::string(usage_indent) + "<" + tag + attribute_usage + ">text here</" + tag +
                 ">\n";
      }
      usage += std::string(usage_indent) + "</" + name + ">" + optional_note + "\n";
      return;
    }
    if (Allows(Types(*items), "object")) {
      AppendParameterLine(parameters, indent, name, required,
                          Description(schema) + ". One or more <" + tag +
                              "> elements, each with:");
      std::string nested_usage;
      DescribeObject(*items, std::string(indent) + "  ", parameters, nested_usage,
                     std::string(usage_indent) + "    ");
      usage += std::string(usage_indent) + "<" + name + ">\n";
      usage += std::string(usage_indent) + "  <" + tag + ">\n" + nested_usage;
      usage += std::string(usage_indent) + "  </" + tag + ">\n";
      usage += std::string(usage_indent) + "</" + name + ">" + optional_note + "\n";
      return;
    }
    AppendParameterLine(parameters, indent, name, required,
                        Description(schema) + ". One <" + tag + "> element per value");
    usage += std::string(usage_indent) + "<" + name + "><" + tag + ">" + Placeholder(tag, *items) +
             "</" + tag + "></" + name + ">" + optional_note + "\n";
    return;
  }
  if (Allows(types, "object") && Properties(schema) != nullptr) {
    AppendParameterLine(parameters, indent, name, required, Description(schema) + ". With:");
    std::string nested_usage;
    DescribeObject(schema, std::string(indent) + "  ", parameters, nested_usage,
                   std::string(usage_indent) + "  ");
    usage += std::string(usage_indent) + "<" + name + ">\n" + nested_usage +
             std::string(usage_indent) + "</" + name + ">" + optional_note + "\n";
    return;
  }
  AppendParameterLine(parameters, indent, name, required, Description(schema));
  if (KeepsWhitespace(name)) {
    usage += std::string(usage_indent) + "<" + name + ">\n" + Placeholder(name, schema) + "\n</" +
             name + ">" + optional_note + "\n";
  } else {
    usage += std::string(usage_indent) + "<" + name + ">" + Placeholder(name, schema) + "</" +
             name + ">" + optional_note + "\n";
  }
}

void DescribeObject(const json& schema, std::string_view indent, std::string& parameters,
                    std::string& usage, std::string_view usage_indent) {
  const json* properties = Properties(schema);
  if (properties == nullptr) return;
  for (auto it = properties->begin(); it != properties->end(); ++it) {
    DescribeProperty(schema, it.key(), it.value(), indent, parameters, usage, usage_indent);
  }
}

}  // namespace

std::string DescribeToolXml(std::string_view name, std::string_view description,
                            std::string_view schema_json) {
  std::string out = "## " + std::string(name) + "\nDescription: " + std::string(description) +
                    "\n";
  Result<json> schema = ParseSchema(name, schema_json);
  std::string parameters;
  std::string usage;
  if (schema.ok()) {
    const std::string sole = SoleArrayProperty(*schema);
    if (!sole.empty()) {
      // Kilo Code's read_file form: <args><file>…</file>…</args>.
      const json& property = (*schema)["properties"][sole];
      const std::string tag = ItemTag(sole);
      AppendParameterLine(parameters, "", "args", true,
                          "Contains one or more <" + tag + "> elements (" + Description(property) +
                              "), each with:");
      std::string nested_usage;
      DescribeObject(*Items(property), "  ", parameters, nested_usage, "    ");
      usage = "<args>\n  <" + tag + ">\n" + nested_usage + "  </" + tag + ">\n</args>\n";
    } else {
      DescribeObject(*schema, "", parameters, usage, "");
    }
  }
  out += "Parameters:\n";
  out += parameters.empty() ? "None.\n" : parameters;
  out += "Usage:\n<" + std::string(name) + ">\n" + usage + "</" + std::string(name) + ">\n";
  return out;
}

}  // namespace lai::agent
