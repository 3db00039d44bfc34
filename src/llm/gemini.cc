// Google Gemini streamGenerateContent (alt=sse).

#include <fmt/format.h>

#include <cctype>
#include <map>

#include "llm/internal/fast_json.h"
#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

// Gemini takes an OpenAPI subset of JSON Schema and rejects these keywords.
void SanitizeSchema(OrderedJson& schema) {
  if (schema.is_object()) {
    schema.erase("$schema");
    schema.erase("additionalProperties");
    for (auto& [key, value] : schema.items()) SanitizeSchema(value);
  } else if (schema.is_array()) {
    for (auto& value : schema) SanitizeSchema(value);
  }
}

int64_t BudgetForEffort(std::string_view effort) {
  if (effort == "low") return 1024;
  if (effort == "medium") return 8192;
  if (effort == "high") return 24576;
  return -1;
}

// The entry one message adds to "contents" (none when it has no parts for Gemini). A tool
// result that does not name its tool takes the name of the earlier call it answers, from
// `tool_names` (call id → name), to which this message's calls are added.
Status AppendContentEntry(const Message& message, ToolNames& tool_names, OrderedJson& entries) {
  OrderedJson parts = OrderedJson::array();
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
        parts.push_back({{"functionCall", {{"name", part.tool_name}, {"args", std::move(args)}}}});
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
        break;  // Thoughts are not sent back.
    }
  }
  if (parts.empty()) return OkStatus();
  entries.push_back(
      {{"role", message.role == Role::kUser ? "user" : "model"}, {"parts", std::move(parts)}});
  return OkStatus();
}

Result<OrderedJson> BuildContents(const CompletionRequest& request) {
  ASSIGN_OR_RETURN(auto entries,
                   EntriesNamingTools("gemini", request.messages, &AppendContentEntry));
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
          EmitCall(part.name, part.arguments);
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
      EmitCall(name, std::move(arguments));
      return;
    }
    std::string text = GetString(part, "text");
    if (auto it = part.find("thought"); it != part.end() && it->is_boolean() && it->get<bool>()) {
      EmitReasoning(std::move(text), GetString(part, "thoughtSignature"));
    } else {
      EmitText(std::move(text));
    }
  }

  // A whole function call, with a generated id.
  void EmitCall(const std::string& name, std::string arguments) {
    int index = tool_count_++;
    std::string id = fmt::format("{}_{}", tool_id_prefix_, index);
    EmitWholeToolCall(index, id, name, std::move(arguments));
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
                                         const ModelInfo* /*model*/) {
  std::string_view model = request.model;
  if (model.starts_with("models/")) model.remove_prefix(7);
  OrderedJson body;
  ASSIGN_OR_RETURN(body["contents"], BuildContents(request));
  if (!request.system_prompt.empty()) {
    body["systemInstruction"] = {
        {"parts", OrderedJson::array({{{"text", request.system_prompt}}})}};
  }
  if (!request.tools.empty()) {
    OrderedJson declarations = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson schema, ToolSchema(tool));
      SanitizeSchema(schema);
      declarations.push_back({{"name", tool.name},
                              {"description", tool.description},
                              {"parameters", std::move(schema)}});
    }
    body["tools"] = OrderedJson::array({{{"functionDeclarations", std::move(declarations)}}});
  }
  OrderedJson generation = OrderedJson::object();
  if (request.temperature) generation["temperature"] = *request.temperature;
  if (request.max_tokens) generation["maxOutputTokens"] = *request.max_tokens;
  int64_t budget =
      request.reasoning_budget_tokens.value_or(BudgetForEffort(request.reasoning_effort));
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
