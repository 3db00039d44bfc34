#include "agent/message_json.h"

#include <simdjson.h>

#include <string>
#include <utility>

#include "agent/internal/message_json_value.h"

namespace lai::agent {
namespace {

using Json = nlohmann::ordered_json;
using Kind = llm::ContentPart::Kind;

Error FieldError(std::string_view field, std::string_view problem) {
  return Error(ErrorCode::kInvalidArgument,
               "message JSON: " + std::string(field) + ": " + std::string(problem));
}

// Reads object[key] as a string into out. A missing key is an error when required, else "".
Status ReadString(const Json& object, const char* key, const std::string& path, bool required,
                  std::string& out) {
  const std::string field = path.empty() ? std::string(key) : path + "." + key;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (required) return FieldError(field, "missing (expected a string)");
    out.clear();
    return OkStatus();
  }
  if (!it->is_string()) {
    return FieldError(field, std::string("expected a string, got ") + it->type_name());
  }
  out = it->get<std::string>();
  return OkStatus();
}

Result<llm::ContentPart> PartFromJson(const Json& value, const std::string& path) {
  if (!value.is_object()) {
    return FieldError(path, std::string("expected an object, got ") + value.type_name());
  }
  std::string type;
  RETURN_IF_ERROR(ReadString(value, "type", path, /*required=*/true, type));
  llm::ContentPart part;
  if (type == "text") {
    part.kind = Kind::kText;
    RETURN_IF_ERROR(ReadString(value, "text", path, true, part.text));
  } else if (type == "thinking") {
    part.kind = Kind::kReasoning;
    RETURN_IF_ERROR(ReadString(value, "thinking", path, true, part.text));
    RETURN_IF_ERROR(ReadString(value, "signature", path, false, part.signature));
    RETURN_IF_ERROR(ReadString(value, "origin", path, false, part.origin));
  } else if (type == "redacted_thinking") {
    part.kind = Kind::kReasoning;
    part.redacted = true;
    RETURN_IF_ERROR(ReadString(value, "data", path, true, part.signature));
    RETURN_IF_ERROR(ReadString(value, "origin", path, false, part.origin));
  } else if (type == "tool_use") {
    part.kind = Kind::kToolCall;
    RETURN_IF_ERROR(ReadString(value, "id", path, true, part.tool_call_id));
    RETURN_IF_ERROR(ReadString(value, "name", path, true, part.tool_name));
    RETURN_IF_ERROR(ReadString(value, "signature", path, false, part.signature));
    RETURN_IF_ERROR(ReadString(value, "origin", path, false, part.origin));
    auto input = value.find("input");
    if (input == value.end()) return FieldError(path + ".input", "missing (expected an object)");
    part.arguments_json = input->is_string() ? input->get<std::string>() : input->dump();
  } else if (type == "tool_result") {
    part.kind = Kind::kToolResult;
    RETURN_IF_ERROR(ReadString(value, "tool_use_id", path, true, part.tool_call_id));
    RETURN_IF_ERROR(ReadString(value, "content", path, true, part.text));
    RETURN_IF_ERROR(ReadString(value, "name", path, false, part.tool_name));
    auto is_error = value.find("is_error");
    if (is_error != value.end() && !is_error->is_null()) {
      if (!is_error->is_boolean()) {
        return FieldError(path + ".is_error",
                          std::string("expected true or false, got ") + is_error->type_name());
      }
      part.is_error = is_error->get<bool>();
    }
  } else if (type == "image") {
    part.kind = Kind::kImage;
    auto source = value.find("source");
    if (source == value.end() || !source->is_object()) {
      return FieldError(path + ".source", "missing (expected {\"type\":\"base64\",…})");
    }
    std::string source_type;
    RETURN_IF_ERROR(ReadString(*source, "type", path + ".source", true, source_type));
    if (source_type != "base64") {
      return FieldError(path + ".source.type",
                        "'" + source_type + "' is not supported (only \"base64\")");
    }
    RETURN_IF_ERROR(ReadString(*source, "media_type", path + ".source", true, part.media_type));
    RETURN_IF_ERROR(ReadString(*source, "data", path + ".source", true, part.data_base64));
  } else {
    return FieldError(path + ".type", "unknown part type '" + type +
                                          "' (expected text, thinking, tool_use, tool_result "
                                          "or image)");
  }
  return part;
}

}  // namespace

namespace internal {

Json ArgumentsToJsonValue(const std::string& arguments_json) {
  Json parsed = Json::parse(arguments_json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) return parsed;
  return Json(arguments_json);
}

Json MessageToJsonValue(const llm::Message& message) {
  Json content = Json::array();
  for (const llm::ContentPart& part : message.parts) {
    Json item = Json::object();
    switch (part.kind) {
      case Kind::kText:
        item["type"] = "text";
        item["text"] = part.text;
        break;
      case Kind::kReasoning:
        if (part.redacted) {
          item["type"] = "redacted_thinking";
          item["data"] = part.signature;
          if (!part.origin.empty()) item["origin"] = part.origin;
          break;
        }
        item["type"] = "thinking";
        item["thinking"] = part.text;
        if (!part.signature.empty()) item["signature"] = part.signature;
        if (!part.origin.empty()) item["origin"] = part.origin;
        break;
      case Kind::kToolCall:
        item["type"] = "tool_use";
        item["id"] = part.tool_call_id;
        item["name"] = part.tool_name;
        item["input"] = ArgumentsToJsonValue(part.arguments_json);
        if (!part.signature.empty()) item["signature"] = part.signature;
        if (!part.origin.empty()) item["origin"] = part.origin;
        break;
      case Kind::kToolResult:
        item["type"] = "tool_result";
        item["tool_use_id"] = part.tool_call_id;
        item["content"] = part.text;
        item["is_error"] = part.is_error;
        if (!part.tool_name.empty()) item["name"] = part.tool_name;
        break;
      case Kind::kImage:
        item["type"] = "image";
        item["source"] =
            Json{{"type", "base64"}, {"media_type", part.media_type}, {"data", part.data_base64}};
        break;
    }
    content.push_back(std::move(item));
  }
  Json out = Json::object();
  out["role"] = message.role == llm::Role::kUser ? "user" : "assistant";
  out["content"] = std::move(content);
  return out;
}

Result<llm::Message> MessageFromJsonValue(const Json& value) {
  if (!value.is_object()) {
    return FieldError("(top level)", std::string("expected an object, got ") + value.type_name());
  }
  llm::Message message;
  std::string role;
  RETURN_IF_ERROR(ReadString(value, "role", "", /*required=*/true, role));
  if (role == "user") {
    message.role = llm::Role::kUser;
  } else if (role == "assistant") {
    message.role = llm::Role::kAssistant;
  } else {
    return FieldError("role", "'" + role + "' is not a role (expected user or assistant)");
  }
  auto content = value.find("content");
  if (content == value.end()) return FieldError("content", "missing (expected an array)");
  if (content->is_string()) {
    llm::ContentPart part;
    part.text = content->get<std::string>();
    message.parts.push_back(std::move(part));
    return message;
  }
  if (!content->is_array()) {
    return FieldError("content",
                      std::string("expected an array or a string, got ") + content->type_name());
  }
  message.parts.reserve(content->size());
  for (size_t i = 0; i < content->size(); ++i) {
    ASSIGN_OR_RETURN(llm::ContentPart part,
                     PartFromJson((*content)[i], "content[" + std::to_string(i) + "]"));
    message.parts.push_back(std::move(part));
  }
  return message;
}

}  // namespace internal

std::string MessageToJson(const llm::Message& message) {
  // Strings that are not valid UTF-8 (bytes of a binary file a tool read) are replaced, not
  // thrown on.
  return internal::MessageToJsonValue(message).dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<llm::Message> MessageFromJson(std::string_view json) {
  Json value = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return Error(ErrorCode::kInvalidArgument,
                 "message JSON: not valid JSON (" + std::to_string(json.size()) +
                     " bytes starting '" + std::string(json.substr(0, 40)) + "')");
  }
  return internal::MessageFromJsonValue(value);
}

bool IsValidJson(std::string_view text) {
  // Events and session fields are small; a large text goes straight to nlohmann, so that the
  // parser and padded copy each thread keeps stay small.
  constexpr size_t kFastPathBytes = 64 * 1024;
  if (text.size() > kFastPathBytes) return nlohmann::json::accept(text);
  thread_local simdjson::dom::parser parser;
  thread_local std::string padded;
  padded.assign(text);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::element root;
  if (parser.parse(padded.data(), text.size(), false).get(root) == simdjson::SUCCESS) return true;
  return nlohmann::json::accept(text);
}

}  // namespace lai::agent
