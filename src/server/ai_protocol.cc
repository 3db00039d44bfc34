#include "server/ai_protocol.h"

#include <cmath>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/json_text.h"
#include "base/strings.h"
#include "llm/json_string.h"

namespace lai::server {
namespace {

using Json = nlohmann::json;

std::string_view TypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "object";
    case Json::value_t::array:
      return "array";
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "number";
    default:
      return "unknown";
  }
}

Error Invalid(const std::string& path, std::string_view what) {
  return Error(ErrorCode::kInvalidArgument, "AIRequest " + path + ": " + std::string(what));
}

Error WrongType(const std::string& path, std::string_view expected, const Json& got) {
  return Invalid(path, "expected " + std::string(expected) + ", got " + std::string(TypeName(got)));
}

std::string FieldPath(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}

// The member `key` of object `parent` (at `path`), or nullptr when absent or null.
const Json* Member(const Json& parent, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::string> RequiredString(const Json& parent, const std::string& path, const char* key) {
  const Json* value = Member(parent, key);
  if (value == nullptr) return Invalid(FieldPath(path, key), "missing (expected a string)");
  if (!value->is_string()) return WrongType(FieldPath(path, key), "a string", *value);
  return value->get<std::string>();
}

Result<std::string> OptionalString(const Json& parent, const std::string& path, const char* key) {
  const Json* value = Member(parent, key);
  if (value == nullptr) return std::string();
  if (!value->is_string()) return WrongType(FieldPath(path, key), "a string", *value);
  return value->get<std::string>();
}

// Tool arguments: a JSON object, or a string holding one.
Result<std::string> ArgumentsJson(const Json& value, const std::string& path) {
  if (value.is_object()) return value.dump();
  if (value.is_string()) {
    Json parsed = Json::parse(value.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) return parsed.dump();
    return Invalid(path,
                   "expected a JSON object (or a string holding one), got a string that is "
                   "not a JSON object");
  }
  return WrongType(path, "an object", value);
}

Result<llm::ContentPart> ParseImage(const Json& part, const std::string& path) {
  llm::ContentPart image;
  image.kind = llm::ContentPart::Kind::kImage;
  std::string type = part.value("type", "");
  if (type == "image_url") {
    const Json* image_url = Member(part, "image_url");
    if (image_url == nullptr) return Invalid(path + ".image_url", "missing (expected {url})");
    std::string url;
    if (image_url->is_string()) {
      url = image_url->get<std::string>();
    } else if (image_url->is_object()) {
      ASSIGN_OR_RETURN(url, RequiredString(*image_url, path + ".image_url", "url"));
    } else {
      return WrongType(path + ".image_url", "an object {url}", *image_url);
    }
    // data:<media type>;base64,<data>
    constexpr std::string_view kPrefix = "data:";
    size_t marker = url.find(";base64,");
    if (url.rfind(kPrefix, 0) != 0 || marker == std::string::npos) {
      return Invalid(path + ".image_url.url",
                     "expected a base64 data URL (data:image/png;base64,...); remote image URLs "
                     "are not fetched");
    }
    image.media_type = url.substr(kPrefix.size(), marker - kPrefix.size());
    image.data_base64 = url.substr(marker + 8);
    return image;
  }
  const Json* source = Member(part, "source");
  if (source != nullptr) {
    if (!source->is_object()) return WrongType(path + ".source", "an object", *source);
    ASSIGN_OR_RETURN(image.media_type, RequiredString(*source, path + ".source", "media_type"));
    ASSIGN_OR_RETURN(image.data_base64, RequiredString(*source, path + ".source", "data"));
  } else {
    ASSIGN_OR_RETURN(image.media_type, OptionalString(part, path, "mediaType"));
    if (image.media_type.empty()) {
      ASSIGN_OR_RETURN(image.media_type, OptionalString(part, path, "media_type"));
    }
    if (image.media_type.empty()) {
      return Invalid(path + ".mediaType", "missing (expected a string such as \"image/png\")");
    }
    ASSIGN_OR_RETURN(image.data_base64, RequiredString(part, path, "data"));
  }
  if (image.media_type.rfind("image/", 0) != 0) {
    return Invalid(path, "expected an image media type (image/png, image/jpeg, ...), got " +
                             Clipped(image.media_type, '\''));
  }
  return image;
}

// `content`: a string or an array of text/image parts.
Result<std::vector<llm::ContentPart>> ParseContent(const Json& content, const std::string& path,
                                                   bool allow_images) {
  std::vector<llm::ContentPart> parts;
  if (content.is_string()) {
    llm::ContentPart text;
    text.text = content.get<std::string>();
    parts.push_back(std::move(text));
    return parts;
  }
  if (!content.is_array()) return WrongType(path, "a string or an array of parts", content);
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    std::string part_path = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) return WrongType(part_path, "an object {type, ...}", part);
    ASSIGN_OR_RETURN(std::string type, RequiredString(part, part_path, "type"));
    if (type == "text") {
      llm::ContentPart text;
      ASSIGN_OR_RETURN(text.text, RequiredString(part, part_path, "text"));
      parts.push_back(std::move(text));
    } else if (type == "image" || type == "image_url") {
      if (!allow_images) return Invalid(part_path, "images are allowed in user messages only");
      ASSIGN_OR_RETURN(llm::ContentPart image, ParseImage(part, part_path));
      parts.push_back(std::move(image));
    } else {
      return Invalid(part_path + ".type",
                     "expected \"text\", \"image\" or \"image_url\", got " + Clipped(type, '"'));
    }
  }
  return parts;
}

std::string JoinText(const std::vector<llm::ContentPart>& parts) {
  std::string text;
  for (const llm::ContentPart& part : parts) text += part.text;
  return text;
}

Result<std::vector<llm::ToolDefinition>> ParseTools(const Json& tools) {
  std::vector<llm::ToolDefinition> out;
  if (!tools.is_array()) return WrongType("tools", "an array", tools);
  for (size_t i = 0; i < tools.size(); ++i) {
    std::string path = "tools[" + std::to_string(i) + "]";
    const Json* tool = &tools[i];
    if (!tool->is_object())
      return WrongType(path, "an object {name, description, parameters}", *tool);
    if (const Json* function = Member(*tool, "function"); function != nullptr) {
      if (!function->is_object()) return WrongType(path + ".function", "an object", *function);
      tool = function;
      path += ".function";
    }
    llm::ToolDefinition definition;
    ASSIGN_OR_RETURN(definition.name, RequiredString(*tool, path, "name"));
    if (definition.name.empty()) return Invalid(path + ".name", "must not be empty");
    ASSIGN_OR_RETURN(definition.description, OptionalString(*tool, path, "description"));
    const Json* schema = Member(*tool, "parameters");
    const char* schema_key = "parameters";
    if (schema == nullptr) {
      schema = Member(*tool, "input_schema");
      schema_key = "input_schema";
    }
    if (schema == nullptr) {
      definition.parameters_schema_json = R"({"type":"object","properties":{}})";
    } else if (schema->is_object()) {
      definition.parameters_schema_json = schema->dump();
    } else {
      return WrongType(path + "." + schema_key, "a JSON Schema object", *schema);
    }
    out.push_back(std::move(definition));
  }
  return out;
}

Result<AiRequest> ParseDocument(const Json& root) {
  if (!root.is_object()) return WrongType("(document)", "an object", root);
  AiRequest out;
  llm::CompletionRequest& request = out.request;
  ASSIGN_OR_RETURN(request.model, OptionalString(root, "", "model"));
  ASSIGN_OR_RETURN(out.profile, OptionalString(root, "", "profile"));
  ASSIGN_OR_RETURN(request.system_prompt, OptionalString(root, "", "systemPrompt"));
  if (const Json* stream = Member(root, "stream"); stream != nullptr) {
    if (!stream->is_boolean()) return WrongType("stream", "a boolean", *stream);
    out.stream = stream->get<bool>();
  }
  if (const Json* temperature = Member(root, "temperature"); temperature != nullptr) {
    if (!temperature->is_number()) return WrongType("temperature", "a number", *temperature);
    double value = temperature->get<double>();
    if (!std::isfinite(value) || value < 0 || value > 2) {
      return Invalid("temperature",
                     "expected a number between 0 and 2, got " + temperature->dump());
    }
    request.temperature = value;
  }
  if (const Json* max_tokens = Member(root, "maxTokens"); max_tokens != nullptr) {
    if (!max_tokens->is_number_integer()) return WrongType("maxTokens", "an integer", *max_tokens);
    int64_t value = max_tokens->get<int64_t>();
    if (value < 1 || value > 10'000'000) {
      return Invalid("maxTokens",
                     "expected an integer between 1 and 10000000, got " + std::to_string(value));
    }
    request.max_tokens = value;
  }
  if (const Json* tools = Member(root, "tools"); tools != nullptr) {
    ASSIGN_OR_RETURN(request.tools, ParseTools(*tools));
  }

  const Json* messages = Member(root, "messages");
  if (messages == nullptr) return Invalid("messages", "missing (expected an array of messages)");
  if (!messages->is_array()) return WrongType("messages", "an array of messages", *messages);
  if (messages->empty()) return Invalid("messages", "must hold at least one message");
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    std::string path = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return WrongType(path, "an object {role, content}", message);
    ASSIGN_OR_RETURN(std::string role, RequiredString(message, path, "role"));
    const Json* content = Member(message, "content");
    if (role == "tool") {
      llm::ContentPart result;
      result.kind = llm::ContentPart::Kind::kToolResult;
      ASSIGN_OR_RETURN(result.tool_call_id, RequiredString(message, path, "toolCallId"));
      if (content == nullptr) return Invalid(path + ".content", "missing (expected a string)");
      ASSIGN_OR_RETURN(std::vector<llm::ContentPart> parts,
                       ParseContent(*content, path + ".content", /*allow_images=*/false));
      result.text = JoinText(parts);
      if (const Json* is_error = Member(message, "isError"); is_error != nullptr) {
        if (!is_error->is_boolean()) return WrongType(path + ".isError", "a boolean", *is_error);
        result.is_error = is_error->get<bool>();
      }
      // The tool's name, from the assistant turn that called it (Gemini wants it).
      for (const llm::Message& earlier : request.messages) {
        for (const llm::ContentPart& part : earlier.parts) {
          if (part.kind == llm::ContentPart::Kind::kToolCall &&
              part.tool_call_id == result.tool_call_id) {
            result.tool_name = part.tool_name;
          }
        }
      }
      if (result.tool_name.empty()) {
        return Invalid(path + ".toolCallId", Clipped(result.tool_call_id, '\'') +
                                                 " matches no toolCalls[].id of an earlier "
                                                 "assistant message");
      }
      // Results of one assistant turn go back together, in one user message.
      bool appended = false;
      if (!request.messages.empty() && request.messages.back().role == llm::Role::kUser) {
        const std::vector<llm::ContentPart>& last = request.messages.back().parts;
        if (!last.empty() && last.back().kind == llm::ContentPart::Kind::kToolResult) {
          request.messages.back().parts.push_back(std::move(result));
          appended = true;
        }
      }
      if (!appended) {
        llm::Message user;
        user.role = llm::Role::kUser;
        user.parts.push_back(std::move(result));
        request.messages.push_back(std::move(user));
      }
      continue;
    }
    if (role != "user" && role != "assistant" && role != "system") {
      return Invalid(
          path + ".role",
          "expected \"user\", \"assistant\", \"system\" or \"tool\", got " + Clipped(role, '"'));
    }
    std::vector<llm::ContentPart> parts;
    if (content != nullptr) {
      ASSIGN_OR_RETURN(parts, ParseContent(*content, path + ".content", role == "user"));
    }
    if (role == "system") {
      if (!request.system_prompt.empty()) request.system_prompt += "\n\n";
      request.system_prompt += JoinText(parts);
      continue;
    }
    llm::Message out_message;
    out_message.role = role == "user" ? llm::Role::kUser : llm::Role::kAssistant;
    out_message.parts = std::move(parts);
    if (const Json* calls = Member(message, "toolCalls"); calls != nullptr) {
      if (role != "assistant")
        return Invalid(path + ".toolCalls", "only assistant messages call tools");
      if (!calls->is_array()) return WrongType(path + ".toolCalls", "an array", *calls);
      for (size_t j = 0; j < calls->size(); ++j) {
        const Json& call = (*calls)[j];
        std::string call_path = path + ".toolCalls[" + std::to_string(j) + "]";
        if (!call.is_object())
          return WrongType(call_path, "an object {name, parameters, id}", call);
        llm::ContentPart part;
        part.kind = llm::ContentPart::Kind::kToolCall;
        ASSIGN_OR_RETURN(part.tool_name, RequiredString(call, call_path, "name"));
        ASSIGN_OR_RETURN(part.tool_call_id, RequiredString(call, call_path, "id"));
        const Json* parameters = Member(call, "parameters");
        if (parameters == nullptr) {
          part.arguments_json = "{}";
        } else {
          ASSIGN_OR_RETURN(part.arguments_json,
                           ArgumentsJson(*parameters, call_path + ".parameters"));
        }
        out_message.parts.push_back(std::move(part));
      }
    }
    if (out_message.parts.empty()) {
      return Invalid(path + ".content", "missing (expected a string or an array of parts)");
    }
    request.messages.push_back(std::move(out_message));
  }
  if (request.messages.empty()) {
    return Invalid("messages", "holds only system messages; add a user message");
  }
  return out;
}

// The profile and model that answered (kDone), when the pool says: a fallback's when the
// requested one could not.
void AddAnswerer(Json& out, const std::string& profile, const std::string& model) {
  if (!profile.empty()) out["profile"] = profile;
  if (!model.empty()) out["model"] = model;
}

Json UsageJson(const llm::Usage& usage) {
  return Json{{"inputTokens", usage.input_tokens},
              {"outputTokens", usage.output_tokens},
              {"cacheWriteTokens", usage.cache_write_tokens},
              {"cacheReadTokens", usage.cache_read_tokens},
              {"reasoningTokens", usage.reasoning_tokens},
              {"cost", RoundForJson(usage.cost_usd)}};
}

// Tool arguments as a JSON value; a provider's broken JSON is passed on as a string.
Json ParametersJson(const std::string& arguments_json) {
  if (arguments_json.empty()) return Json::object();
  // Anything but an object (broken JSON, an array, a number) is the text as sent: a client
  // reading `parameters` as an object must never be handed another JSON type.
  Json parsed = Json::parse(arguments_json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return Json(arguments_json);
  return parsed;
}

std::string Dump(const Json& json) {
  // Replace invalid UTF-8 from a provider rather than throwing.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

Result<AiRequest> ParseAiRequest(std::string_view json) {
  Json root = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    // Parse again with exceptions for the position of the error. Only the position is told:
    // the parser's own message quotes the payload, which errors must never carry.
    try {
      Json ignored = Json::parse(json);
    } catch (const Json::parse_error& e) {
      return Error(ErrorCode::kInvalidArgument,
                   "AIRequest: not valid JSON: syntax error at byte " + std::to_string(e.byte) +
                       "; send one JSON object (docs/protocol.md, the completion service)");
    } catch (const std::exception&) {
    }
    return Error(ErrorCode::kInvalidArgument, "AIRequest: not valid JSON");
  }
  try {
    return ParseDocument(root);
  } catch (const std::exception& e) {
    return Error(ErrorCode::kInvalidArgument, std::string("AIRequest: ") + e.what());
  }
}

std::string_view ErrorKindName(llm::ErrorKind kind) {
  switch (kind) {
    case llm::ErrorKind::kInvalidKey:
      return "invalid_key";
    case llm::ErrorKind::kUnknownModel:
      return "unknown_model";
    case llm::ErrorKind::kContextTooLong:
      return "context_too_long";
    case llm::ErrorKind::kRateLimited:
      return "rate_limited";
    case llm::ErrorKind::kOverloaded:
      return "overloaded";
    case llm::ErrorKind::kTimeout:
      return "timeout";
    case llm::ErrorKind::kUnavailable:
      return "unavailable";
    case llm::ErrorKind::kBadResponse:
      return "bad_response";
    case llm::ErrorKind::kInvalidRequest:
      return "invalid_request";
    case llm::ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unavailable";
}

ErrorCode ErrorCodeFor(llm::ErrorKind kind) {
  switch (kind) {
    case llm::ErrorKind::kInvalidKey:
      return ErrorCode::kPermissionDenied;
    case llm::ErrorKind::kUnknownModel:
      return ErrorCode::kNotFound;
    case llm::ErrorKind::kContextTooLong:
    case llm::ErrorKind::kInvalidRequest:
      return ErrorCode::kInvalidArgument;
    case llm::ErrorKind::kRateLimited:
    case llm::ErrorKind::kOverloaded:
    case llm::ErrorKind::kUnavailable:
      return ErrorCode::kUnavailable;
    case llm::ErrorKind::kTimeout:
      return ErrorCode::kTimeout;
    case llm::ErrorKind::kBadResponse:
      return ErrorCode::kProtocol;
    case llm::ErrorKind::kCancelled:
      return ErrorCode::kCancelled;
  }
  return ErrorCode::kUnavailable;
}

std::string EventJson(const llm::StreamEvent& event, const llm::Usage& last_usage) {
  using Kind = llm::StreamEvent::Kind;
  // The kinds sent for every chunk are written directly (a JSON tree per chunk would cost more
  // than the rest of a chunk's way through the engine), with the keys in the order the tree
  // below would give them.
  if (event.kind == Kind::kTextDelta ||
      (event.kind == Kind::kReasoningDelta && event.signature.empty())) {
    std::string out = "{\"text\":";
    out.reserve(event.text.size() + 40);
    llm::AppendJsonString(out, event.text);
    out += event.kind == Kind::kTextDelta ? ",\"type\":\"text\"}" : ",\"type\":\"reasoning\"}";
    return out;
  }
  if (event.kind == Kind::kToolCallDelta) {
    std::string out = "{\"delta\":";
    llm::AppendJsonString(out, event.text);
    out += ",\"id\":";
    llm::AppendJsonString(out, event.tool_call_id);
    out += ",\"index\":" + std::to_string(event.index) + ",\"type\":\"tool_call_delta\"}";
    return out;
  }
  Json out;
  switch (event.kind) {
    case Kind::kTextDelta:
    case Kind::kToolCallDelta:
      break;  // Written above.
    case Kind::kReasoningDelta:
      out = {{"type", "reasoning"}, {"text", event.text}, {"signature", event.signature}};
      break;
    case Kind::kToolCallStart:
      out = {{"type", "tool_call_start"},
             {"index", event.index},
             {"id", event.tool_call_id},
             {"name", event.tool_name}};
      break;
    case Kind::kToolCallEnd:
      out = {{"type", "tool_call"},
             {"index", event.index},
             {"id", event.tool_call_id},
             {"name", event.tool_name},
             {"parameters", ParametersJson(event.arguments_json)}};
      break;
    case Kind::kUsage:
      out = UsageJson(event.usage);
      out["type"] = "usage";
      break;
    case Kind::kError:
      out = {{"type", "error"},
             {"kind", ErrorKindName(event.error.kind)},
             {"message", event.error.message}};
      if (event.error.retry_after) out["retryAfterMs"] = event.error.retry_after->count();
      if (event.error.http_status != 0) out["status"] = event.error.http_status;
      break;
    case Kind::kDone:
      out = {{"type", "done"}, {"stopReason", event.text}, {"usage", UsageJson(last_usage)}};
      AddAnswerer(out, event.profile, event.model);
      break;
    case Kind::kRetrying:
      out = {{"type", "retrying"}, {"message", event.text}};
      break;
  }
  return Dump(out);
}

void ReplyCollector::Add(const llm::StreamEvent& event) {
  using Kind = llm::StreamEvent::Kind;
  switch (event.kind) {
    case Kind::kTextDelta:
      text_ += event.text;
      break;
    case Kind::kReasoningDelta:
      reasoning_ += event.text;
      break;
    case Kind::kToolCallEnd:
      calls_.push_back({event.tool_call_id, event.tool_name, event.arguments_json});
      break;
    case Kind::kUsage:
      usage_ = event.usage;
      break;
    case Kind::kDone:
      stop_reason_ = event.text;
      profile_ = event.profile;
      model_ = event.model;
      break;
    case Kind::kToolCallStart:
    case Kind::kToolCallDelta:
    case Kind::kError:
    case Kind::kRetrying:
      break;
  }
}

std::string ReplyCollector::FinalJson() const {
  Json calls = Json::array();
  for (const Call& call : calls_) {
    calls.push_back({{"id", call.id},
                     {"name", call.name},
                     {"parameters", ParametersJson(call.arguments_json)}});
  }
  Json out = {{"type", "done"},     {"stopReason", stop_reason_},
              {"text", text_},      {"reasoning", reasoning_},
              {"toolCalls", calls}, {"usage", UsageJson(usage_)}};
  AddAnswerer(out, profile_, model_);
  return Dump(out);
}

}  // namespace lai::server
