// Google Gemini streamGenerateContent (alt=sse).

#include <fmt/format.h>

#include <cctype>
#include <map>

#include "llm/internal/fast_json.h"
#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

// A JSON Schema as Gemini's function declarations take it: an OpenAPI 3.0 subset whose
// "type" is one name, whose "enum" holds strings, whose arrays have "items", and which rejects
// every field it does not know (type lists, "const", "$ref", "additionalProperties", … answer
// 400 for the whole request). Local "$ref"s are inlined from "$defs" / "definitions" of `root`
// (a recursive one once: inlining it again would grow without end); ["T", "null"] becomes "T"
// with "nullable"; "const" a one-value "enum", "oneOf" "anyOf", "allOf" its parts merged; values
// an enum cannot hold are said in the description; what has no equivalent is left out.
class GeminiSchemaConverter {
 public:
  explicit GeminiSchemaConverter(const OrderedJson& root) : root_(root) {}

  OrderedJson Convert(const OrderedJson& schema) {
    OrderedJson out = OrderedJson::object();
    if (!schema.is_object() || expanding_.size() > 16) return out;
    if (auto ref = schema.find("$ref"); ref != schema.end() && ref->is_string()) {
      OrderedJson resolved = Resolve(ref->get<std::string>());
      for (const char* key : {"description", "title"}) {  // Said beside the $ref.
        if (auto it = schema.find(key); it != schema.end()) resolved[key] = *it;
      }
      return resolved;
    }
    for (const char* key :
         {"title", "description", "default", "example", "pattern", "minimum", "maximum", "minItems",
          "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "nullable"}) {
      if (auto it = schema.find(key); it != schema.end()) out[key] = *it;
    }
    std::vector<std::string> types;
    if (auto type = schema.find("type"); type != schema.end()) {
      for (const OrderedJson& name : type->is_array() ? *type : OrderedJson::array({*type})) {
        if (!name.is_string()) continue;
        if (name == "null") {
          out["nullable"] = true;
        } else {
          types.push_back(name.get<std::string>());
        }
      }
    }
    if (types.size() > 1) {
      // One branch a type, each with the keywords of its own type.
      OrderedJson any = OrderedJson::array();
      for (const std::string& type : types) any.push_back(Typed(schema, type));
      out["anyOf"] = std::move(any);
    } else {
      std::string type = types.empty() ? "" : types[0];
      if (type.empty() && (schema.contains("properties"))) type = "object";
      if (type.empty() && (schema.contains("items") || schema.contains("prefixItems"))) {
        type = "array";
      }
      OrderedJson typed = Typed(schema, type);
      for (auto& [key, value] : typed.items()) out[key] = value;
    }
    AddValues(schema, out);
    for (const char* key : {"anyOf", "oneOf"}) {
      auto choices = schema.find(key);
      if (choices == schema.end() || !choices->is_array() || out.contains("anyOf")) continue;
      OrderedJson any = OrderedJson::array();
      for (const OrderedJson& choice : *choices) {
        if (choice.is_object() && choice.value("type", OrderedJson()) == "null") {
          out["nullable"] = true;
        } else {
          any.push_back(Convert(choice));
        }
      }
      if (any.size() == 1) {
        for (auto& [name, value] : any[0].items()) out[name] = value;
      } else if (!any.empty()) {
        out["anyOf"] = std::move(any);
      }
    }
    if (auto parts = schema.find("allOf"); parts != schema.end() && parts->is_array()) {
      // Required, by this schema or a part, of properties a part may define.
      std::vector<std::string> named;
      if (auto own = schema.find("required"); own != schema.end() && own->is_array()) {
        for (const OrderedJson& name : *own) {
          if (name.is_string()) named.push_back(name.get<std::string>());
        }
      }
      for (const OrderedJson& part : *parts) {
        if (auto names = part.find("required");
            part.is_object() && names != part.end() && names->is_array()) {
          for (const OrderedJson& name : *names) {
            if (name.is_string()) named.push_back(name.get<std::string>());
          }
        }
        OrderedJson converted = Convert(part);
        for (auto& [name, value] : converted.items()) {
          if (name == "properties" && out.contains("properties")) {
            for (auto& [property, of] : value.items()) out["properties"][property] = of;
          } else if (name == "required" && out.contains("required")) {
            for (const OrderedJson& required : value) out["required"].push_back(required);
          } else {
            out[name] = value;
          }
        }
      }
      for (const std::string& name : named) {
        if (!out.contains("properties") || !out["properties"].contains(name)) continue;
        OrderedJson& required = out["required"];
        if (!required.is_array()) required = OrderedJson::array();
        if (std::find(required.begin(), required.end(), name) == required.end()) {
          required.push_back(name);
        }
      }
    }
    return out;
  }

 private:
  OrderedJson Resolve(const std::string& path) {
    if (std::find(expanding_.begin(), expanding_.end(), path) != expanding_.end()) {
      return OrderedJson::object();  // Recursive: any value below this point.
    }
    for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
      std::string container(prefix.substr(2, prefix.size() - 3));
      std::string name = path.substr(std::min(path.size(), prefix.size()));
      if (path.starts_with(prefix) && root_.contains(container) &&
          root_[container].contains(name)) {
        expanding_.push_back(path);
        OrderedJson out = Convert(root_[container][name]);
        expanding_.pop_back();
        return out;
      }
    }
    return OrderedJson::object();  // Not resolvable here: any value.
  }

  // The keywords of `schema` that belong to `type` ("" = none said), with the type.
  OrderedJson Typed(const OrderedJson& schema, const std::string& type) {
    OrderedJson out = OrderedJson::object();
    if (!type.empty()) out["type"] = type;
    if (auto format = schema.find("format"); format != schema.end() && format->is_string()) {
      const std::string& name = format->get_ref<const std::string&>();
      if ((type == "string" && (name == "enum" || name == "date-time")) ||
          (type == "integer" && (name == "int32" || name == "int64")) ||
          (type == "number" && (name == "float" || name == "double"))) {
        out["format"] = *format;
      }
    }
    if (type == "object") {
      auto properties = schema.find("properties");
      if (properties != schema.end() && properties->is_object() && !properties->empty()) {
        OrderedJson converted = OrderedJson::object();
        for (const auto& [name, property] : properties->items()) {
          converted[name] = Convert(property);
        }
        if (auto required = schema.find("required");
            required != schema.end() && required->is_array()) {
          OrderedJson names = OrderedJson::array();
          for (const OrderedJson& name : *required) {
            if (name.is_string() && converted.contains(name.get<std::string>())) {
              names.push_back(name);
            }
          }
          if (!names.empty()) out["required"] = std::move(names);
        }
        out["properties"] = std::move(converted);
      }
    } else if (type == "array") {
      // Gemini needs "items": a tuple's first, or a string when none is said.
      const OrderedJson* items = nullptr;
      if (auto it = schema.find("items"); it != schema.end()) {
        items = it->is_array() ? (it->empty() ? nullptr : &(*it)[0]) : &*it;
      }
      if (auto it = schema.find("prefixItems");
          items == nullptr && it != schema.end() && it->is_array() && !it->empty()) {
        items = &(*it)[0];
      }
      OrderedJson converted = items != nullptr ? Convert(*items) : OrderedJson::object();
      if (converted.empty()) converted = {{"type", "string"}};
      out["items"] = std::move(converted);
    }
    return out;
  }

  // "enum" (or "const") as Gemini takes it: strings only; null makes the schema nullable; other
  // values are said in the description instead.
  static void AddValues(const OrderedJson& schema, OrderedJson& out) {
    OrderedJson values;
    if (auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
      values = *it;
    } else if (auto constant = schema.find("const"); constant != schema.end()) {
      values = OrderedJson::array({*constant});
    } else {
      return;
    }
    OrderedJson strings = OrderedJson::array();
    bool all_strings = true;
    for (const OrderedJson& value : values) {
      if (value.is_null()) {
        out["nullable"] = true;
      } else if (value.is_string()) {
        strings.push_back(value);
      } else {
        all_strings = false;
      }
    }
    if (all_strings && !strings.empty() && out.value("type", "string") == "string") {
      out["type"] = "string";
      out["enum"] = std::move(strings);
      return;
    }
    std::string listed;
    for (const OrderedJson& value : values) {
      if (value.is_null()) continue;
      listed += (listed.empty() ? "" : ", ") + value.dump();
    }
    if (listed.empty()) return;
    std::string description = out.value("description", "");
    out["description"] =
        description + (description.empty() ? "" : " ") + "(One of: " + listed + ".)";
    if (!out.contains("type") && !values.empty()) {
      const OrderedJson& first = values[0].is_null() && values.size() > 1 ? values[1] : values[0];
      if (first.is_number_integer())
        out["type"] = "integer";
      else if (first.is_number())
        out["type"] = "number";
      else if (first.is_boolean())
        out["type"] = "boolean";
    }
  }

  const OrderedJson& root_;
  std::vector<std::string> expanding_;  // The $refs being inlined, outermost first.
};

// Gemini 3 and later refuse a function call of the current turn without its thoughtSignature;
// one made by another model or endpoint (a resumed session, a fallback) has none that they
// take. For those, Google documents this value, which skips the check.
constexpr std::string_view kSkipSignatureCheck = "skip_thought_signature_validator";

bool NeedsCallSignatures(std::string_view model) {
  if (!model.starts_with("gemini-")) return false;
  model.remove_prefix(7);
  int major = 0;
  for (size_t i = 0; i < model.size() && std::isdigit(static_cast<unsigned char>(model[i])); ++i) {
    major = major * 10 + (model[i] - '0');
    if (major > 1000) break;
  }
  return major >= 3;
}

// How a request sends signatures: to which endpoint (`origin`, see ReasoningOrigin), and
// whether the model needs one on every message's first function call.
struct SignaturePolicy {
  std::string origin;
  bool needs_call_signatures = false;
};

// The entry one message adds to "contents" (none when it has no parts for Gemini). A tool
// result that does not name its tool takes the name of the earlier call it answers, from
// `tool_names` (call id → name), to which this message's calls are added. Thoughts are not sent
// back (Gemini reads only their signatures, which travel on the calls).
Status AppendContentEntry(const Message& message, const SignaturePolicy& policy,
                          ToolNames& tool_names, OrderedJson& entries) {
  OrderedJson parts = OrderedJson::array();
  bool has_call = false;
  for (const ContentPart& part : message.parts) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
        if (!part.text.empty()) parts.push_back({{"text", part.text}});
        break;
      case ContentPart::Kind::kImage:
        parts.push_back(
            {{"inlineData", {{"mimeType", part.media_type}, {"data", part.data_base64}}}});
        break;
      case ContentPart::Kind::kToolCall: {
        ASSIGN_OR_RETURN(OrderedJson args, ToolCallArguments(part));
        tool_names[part.tool_call_id] = part.tool_name;
        OrderedJson call = {
            {"functionCall", {{"name", part.tool_name}, {"args", std::move(args)}}}};
        // Of parallel calls only the first has a signature.
        if (!part.signature.empty() && IsOwnReasoning(part, policy.origin)) {
          call["thoughtSignature"] = part.signature;
        } else if (!has_call && policy.needs_call_signatures) {
          call["thoughtSignature"] = kSkipSignatureCheck;
        }
        has_call = true;
        parts.push_back(std::move(call));
        break;
      }
      case ContentPart::Kind::kToolResult: {
        std::string name = part.tool_name;
        if (name.empty()) {
          auto it = tool_names.find(part.tool_call_id);
          if (it == tool_names.end()) {
            return Error(ErrorCode::kInvalidArgument,
                         fmt::format("tool result '{}' names no tool and answers no earlier "
                                     "tool call; Gemini needs the tool name",
                                     part.tool_call_id));
          }
          name = it->second;
        }
        parts.push_back(
            {{"functionResponse",
              {{"name", name}, {"response", {{"name", name}, {"content", part.text}}}}}});
        break;
      }
      case ContentPart::Kind::kReasoning:
        break;
    }
  }
  if (parts.empty()) return OkStatus();
  entries.push_back(
      {{"role", message.role == Role::kUser ? "user" : "model"}, {"parts", std::move(parts)}});
  return OkStatus();
}

Result<OrderedJson> BuildContents(const CompletionRequest& request, const SignaturePolicy& policy) {
  auto build = [&policy](const Message& message, ToolNames& tool_names, OrderedJson& entries) {
    return AppendContentEntry(message, policy, tool_names, entries);
  };
  const std::string format =
      fmt::format("gemini {} {}", policy.needs_call_signatures ? 3 : 2, policy.origin);
  ASSIGN_OR_RETURN(auto entries, EntriesNamingTools(format, request.messages, build));
  // Gemini wants user and model turns to alternate: a message that adds nothing (a reply that
  // was only thought) leaves two of one role together, which become one.
  const Message* kept = nullptr;  // The last message that added an entry (or `run`).
  size_t kept_index = 0;
  Message run;  // Messages joined so far.
  ToolNames tool_names;
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const Message& message = request.messages[i];
    if (entries[i]->empty()) continue;
    if (kept != nullptr && kept->role == message.role) {
      Message joined = *kept;
      joined.parts.insert(joined.parts.end(), message.parts.begin(), message.parts.end());
      OrderedJson entry = OrderedJson::array();
      RETURN_IF_ERROR(AppendContentEntry(joined, policy, tool_names, entry));
      entries[kept_index] = std::make_shared<const std::string>(DumpRequestBody(entry[0]));
      entries[i] = std::make_shared<const std::string>();
      run = std::move(joined);
      kept = &run;
      continue;
    }
    for (const ContentPart& part : message.parts) {
      if (part.kind == ContentPart::Kind::kToolCall) tool_names[part.tool_call_id] = part.tool_name;
    }
    kept = &message;
    kept_index = i;
  }
  return JoinEntries(entries);
}

class GeminiParser final : public SseParser {
 public:
  GeminiParser(std::string provider, std::string tool_id_prefix, EventSink sink)
      : SseParser(std::move(provider), std::move(sink)),
        tool_id_prefix_(std::move(tool_id_prefix)) {}

  // Gemini has no end marker: the body ends after the chunk carrying finishReason.
  void OnFinish() override {
    if (is_terminated()) return;
    if (finish_reason_.empty()) {
      EmitError(ErrorKind::kUnavailable,
                fmt::format("the stream from {} ended before a finishReason", provider_));
      return;
    }
    if (has_usage_) EmitUsage(usage_);
    if (finish_reason_ == "STOP") {
      EmitDone(tool_count_ > 0 ? "tool_use" : "stop");
    } else if (finish_reason_ == "MAX_TOKENS") {
      EmitDone("length");
    } else if (finish_reason_ == "SAFETY" || finish_reason_ == "RECITATION" ||
               finish_reason_ == "BLOCKLIST" || finish_reason_ == "PROHIBITED_CONTENT" ||
               finish_reason_ == "SPII" || finish_reason_ == "IMAGE_SAFETY") {
      EmitDone("refusal");  // Blocked by the provider's filters.
    } else {
      std::string reason = finish_reason_;
      for (char& c : reason) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EmitDone(reason);
    }
  }

 protected:
  void OnEvent(std::string_view event, std::string_view data) override {
    if (ReadChunk(data) == simdjson::SUCCESS) {
      ApplyChunk();
      return;
    }
    OnEventFullParse(event, data);
  }

 private:
  // The fields of one chunk the parser uses, read by simdjson into reused members.
  struct Part {
    bool is_call = false;
    bool has_bad_args = false;  // functionCall.args present but not an object.
    std::string name;
    std::string arguments;  // functionCall.args re-serialised as nlohmann does.
    std::string text;
    bool is_thought = false;
    std::string signature;
  };
  struct Chunk {
    size_t part_count = 0;
    std::vector<Part> parts;  // The first part_count are this chunk's.
    std::string finish_reason;
    bool has_usage = false;
    Usage usage;
  };

  // The hot path: reads the chunk whole (emitting nothing) or fails, leaving it to
  // OnEventFullParse.
  simdjson::error_code ReadChunk(std::string_view data) {
    Chunk& chunk = chunk_;
    chunk.part_count = 0;
    chunk.finish_reason.clear();
    chunk.has_usage = false;
    return json_.ForEachRootField(data, [&](std::string_view key, od::value value) {
      if (key == "candidates") return ReadCandidates(value);
      if (key == "usageMetadata") return ReadUsage(value);
      if (key == "error") {
        bool is_object = false;
        if (auto error = IsObject(value, is_object); error || !is_object) return error;
        return kUseFullParse;
      }
      return Consume(value);
    });
  }

  simdjson::error_code ReadCandidates(od::value value) {
    Chunk& chunk = chunk_;
    chunk.part_count = 0;
    chunk.finish_reason.clear();
    return ForEachElementIfArray(value, [&](size_t i, od::value candidate) -> simdjson::error_code {
      if (i > 0) return Consume(candidate);
      return ForEachFieldIfObject(candidate, [&](std::string_view key, od::value field) {
        if (key == "finishReason") return ReadString(field, chunk.finish_reason);
        if (key != "content") return Consume(field);
        chunk.part_count = 0;
        return ForEachFieldIfObject(field, [&](std::string_view name, od::value item) {
          if (name != "parts") return Consume(item);
          chunk.part_count = 0;
          return ForEachElementIfArray(item,
                                       [&](size_t, od::value part) { return ReadPart(part); });
        });
      });
    });
  }

  simdjson::error_code ReadPart(od::value value) {
    Chunk& chunk = chunk_;
    if (chunk.parts.size() <= chunk.part_count) chunk.parts.emplace_back();
    Part& part = chunk.parts[chunk.part_count++];
    part.is_call = false;
    part.has_bad_args = false;
    part.name.clear();
    part.arguments.clear();
    part.text.clear();
    part.is_thought = false;
    part.signature.clear();
    return ForEachFieldIfObject(
        value, [&](std::string_view key, od::value field) -> simdjson::error_code {
          if (key == "text") return ReadString(field, part.text);
          if (key == "thought") return ReadBool(field, part.is_thought);
          if (key == "thoughtSignature") return ReadString(field, part.signature);
          if (key != "functionCall") return Consume(field);
          part.name.clear();
          part.has_bad_args = false;
          if (auto error = IsObject(field, part.is_call); error || !part.is_call) return error;
          part.arguments = "{}";
          return ForEachField(field, [&](std::string_view name, od::value item) {
            if (name == "name") return ReadString(item, part.name);
            if (name != "args") return Consume(item);
            bool is_args_object = false;
            if (auto error = IsObject(item, is_args_object)) return error;
            part.has_bad_args = !is_args_object;
            if (!is_args_object) return simdjson::SUCCESS;
            std::string_view raw;
            if (auto error = RawObject(item, raw)) return error;
            // Tool calls are rare: nlohmann validates and serialises them as before.
            std::optional<Json> args = ParseJson(raw);
            if (!args) return kUseFullParse;
            part.arguments = args->dump();
            return simdjson::SUCCESS;
          });
        });
  }

  simdjson::error_code ReadUsage(od::value value) {
    Chunk& chunk = chunk_;
    if (auto error = IsObject(value, chunk.has_usage); error || !chunk.has_usage) {
      return error;
    }
    Usage& usage = chunk.usage;
    usage = Usage{};
    return ForEachField(value, [&](std::string_view key, od::value field) {
      if (key == "promptTokenCount") return ReadInt(field, usage.input_tokens);
      if (key == "candidatesTokenCount") return ReadInt(field, usage.output_tokens);
      if (key == "thoughtsTokenCount") return ReadInt(field, usage.reasoning_tokens);
      if (key == "cachedContentTokenCount") return ReadInt(field, usage.cache_read_tokens);
      return Consume(field);
    });
  }

  // Emits what ReadChunk read, exactly as OnEventFullParse would.
  void ApplyChunk() {
    const Chunk& chunk = chunk_;
    for (size_t i = 0; i < chunk.part_count; ++i) {
      const Part& part = chunk.parts[i];
      if (part.is_call) {
        if (part.has_bad_args) {
          EmitBadResponse(
              fmt::format("functionCall '{}' has args that are not an object", part.name));
        } else {
          EmitCall(part.name, part.arguments, part.signature);
        }
      } else if (part.is_thought) {
        EmitReasoning(part.text, part.signature);
      } else {
        EmitText(part.text);
      }
      if (is_terminated()) return;
    }
    if (!chunk.finish_reason.empty()) finish_reason_ = chunk.finish_reason;
    if (chunk.has_usage) {
      has_usage_ = true;
      usage_.input_tokens = chunk.usage.input_tokens;
      usage_.reasoning_tokens = chunk.usage.reasoning_tokens;
      // Thoughts are billed as output but not counted in candidatesTokenCount.
      usage_.output_tokens = chunk.usage.output_tokens + usage_.reasoning_tokens;
      usage_.cache_read_tokens = chunk.usage.cache_read_tokens;
    }
  }

  // The nlohmann DOM path: error bodies, and any chunk the fast path could not read (it then
  // decides, e.g. that the JSON is malformed, and words the error).
  void OnEventFullParse(std::string_view /*event*/, std::string_view data) {
    std::optional<Json> chunk = ParseJson(data);
    if (!chunk || !chunk->is_object()) {
      EmitBadResponse(fmt::format("malformed JSON in the stream: '{}'", data.substr(0, 80)));
      return;
    }
    if (const Json* error = GetObject(*chunk, "error")) {
      std::string status = GetString(*error, "status");
      std::string message = GetString(*error, "message");
      EmitError(KindOfErrorText(status, message),
                fmt::format("error from {} during the stream: {}{}", provider_,
                            status.empty() ? "" : status + ": ", message));
      return;
    }
    if (const Json* candidates = GetArray(*chunk, "candidates");
        candidates && !candidates->empty()) {
      const Json& candidate = candidates->front();
      if (const Json* content = GetObject(candidate, "content")) {
        if (const Json* parts = GetArray(*content, "parts")) {
          for (const Json& part : *parts) {
            HandlePart(part);
            if (is_terminated()) return;
          }
        }
      }
      std::string reason = GetString(candidate, "finishReason");
      if (!reason.empty()) finish_reason_ = reason;
    }
    if (const Json* usage = GetObject(*chunk, "usageMetadata")) {
      has_usage_ = true;
      usage_.input_tokens = GetInt(*usage, "promptTokenCount");
      usage_.reasoning_tokens = GetInt(*usage, "thoughtsTokenCount");
      // Thoughts are billed as output but not counted in candidatesTokenCount.
      usage_.output_tokens = GetInt(*usage, "candidatesTokenCount") + usage_.reasoning_tokens;
      usage_.cache_read_tokens = GetInt(*usage, "cachedContentTokenCount");
    }
  }

  void HandlePart(const Json& part) {
    if (const Json* call = GetObject(part, "functionCall")) {
      std::string name = GetString(*call, "name");
      std::string arguments = "{}";
      if (auto it = call->find("args"); it != call->end()) {
        if (!it->is_object()) {
          EmitBadResponse(fmt::format("functionCall '{}' has args that are not an object", name));
          return;
        }
        arguments = it->dump();
      }
      EmitCall(name, std::move(arguments), GetString(part, "thoughtSignature"));
      return;
    }
    std::string text = GetString(part, "text");
    if (auto it = part.find("thought"); it != part.end() && it->is_boolean() && it->get<bool>()) {
      EmitReasoning(std::move(text), GetString(part, "thoughtSignature"));
    } else {
      EmitText(std::move(text));
    }
  }

  // A whole function call, with a generated id (and its thoughtSignature, when it has one).
  void EmitCall(const std::string& name, std::string arguments, std::string signature) {
    int index = tool_count_++;
    std::string id = fmt::format("{}_{}", tool_id_prefix_, index);
    EmitWholeToolCall(index, id, name, std::move(arguments), std::move(signature));
  }

  const std::string tool_id_prefix_;
  int tool_count_ = 0;
  std::string finish_reason_;
  bool has_usage_ = false;
  Usage usage_;
  FastJson json_;
  Chunk chunk_;
};

}  // namespace

Result<http::Request> BuildGeminiRequest(const Endpoint& endpoint, const CompletionRequest& request,
                                         const ModelInfo* model_info) {
  std::string_view model = request.model;
  if (model.starts_with("models/")) model.remove_prefix(7);
  OrderedJson body;
  SignaturePolicy policy{OriginOf(endpoint), NeedsCallSignatures(model)};
  ASSIGN_OR_RETURN(body["contents"], BuildContents(request, policy));
  if (!request.system_prompt.empty()) {
    body["systemInstruction"] = {
        {"parts", OrderedJson::array({{{"text", request.system_prompt}}})}};
  }
  if (!request.tools.empty()) {
    OrderedJson declarations = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson schema, ToolSchema(tool));
      OrderedJson declaration = {{"name", tool.name}, {"description", tool.description}};
      // A tool without parameters has none: Gemini refuses an object schema without properties.
      OrderedJson parameters = GeminiSchemaConverter(schema).Convert(schema);
      if (parameters.contains("properties")) declaration["parameters"] = std::move(parameters);
      declarations.push_back(std::move(declaration));
    }
    body["tools"] = OrderedJson::array({{{"functionDeclarations", std::move(declarations)}}});
  }
  OrderedJson generation = OrderedJson::object();
  if (request.temperature) generation["temperature"] = *request.temperature;
  if (request.max_tokens) generation["maxOutputTokens"] = *request.max_tokens;
  int64_t budget =
      request.reasoning_budget_tokens.value_or(ThinkingBudgetForEffort(request.reasoning_effort));
  // Not for a model the catalog says cannot think; within what Gemini 2.5 takes.
  if (model_info != nullptr && !model_info->supports_reasoning) budget = -1;
  budget = std::min<int64_t>(budget, 32768);
  if (budget >= 0) {
    generation["thinkingConfig"] = {{"thinkingBudget", budget}, {"includeThoughts", true}};
  }
  if (!generation.empty()) body["generationConfig"] = std::move(generation);

  http::Request out = BaseRequest(
      endpoint,
      fmt::format("{}/v1beta/models/{}:streamGenerateContent?alt=sse", endpoint.base_url, model));
  out.headers.push_back({"Accept", "text/event-stream"});
  if (!endpoint.api_key.empty()) out.headers.push_back({"x-goog-api-key", endpoint.api_key});
  out.body = DumpRequestBody(body);
  return out;
}

std::unique_ptr<StreamParser> NewGeminiParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink) {
  return std::make_unique<GeminiParser>(std::move(provider), std::move(tool_id_prefix),
                                        std::move(sink));
}

}  // namespace lai::llm::internal
