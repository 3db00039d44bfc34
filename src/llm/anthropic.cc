// Anthropic Messages: request building with prompt caching and thinking, and the event stream.

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

constexpr int64_t kDefaultMaxTokens = 8192;
// Anthropic requires max_tokens above the thinking budget; this much is left for the answer.
constexpr int64_t kAnswerTokensAboveBudget = 4096;

Result<OrderedJson> BuildMessages(const CompletionRequest& request) {
  OrderedJson messages = OrderedJson::array();
  for (const Message& message : request.messages) {
    OrderedJson content = OrderedJson::array();
    if (message.role == Role::kUser) {
      // tool_result blocks must come first in their user message.
      for (const ContentPart& part : message.parts) {
        if (part.kind != ContentPart::Kind::kToolResult) continue;
        OrderedJson block = {
            {"type", "tool_result"}, {"tool_use_id", part.tool_call_id}, {"content", part.text}};
        if (part.is_error) block["is_error"] = true;
        content.push_back(std::move(block));
      }
      for (const ContentPart& part : message.parts) {
        if (part.kind == ContentPart::Kind::kText && !part.text.empty()) {
          content.push_back({{"type", "text"}, {"text", part.text}});
        } else if (part.kind == ContentPart::Kind::kImage) {
          content.push_back({{"type", "image"},
                             {"source",
                              {{"type", "base64"},
                               {"media_type", part.media_type},
                               {"data", part.data_base64}}}});
        }
      }
    } else {
      for (const ContentPart& part : message.parts) {
        switch (part.kind) {
          case ContentPart::Kind::kReasoning:
            // Thinking goes back verbatim with its signature; unsigned thinking cannot.
            if (!part.signature.empty()) {
              content.push_back(
                  {{"type", "thinking"}, {"thinking", part.text}, {"signature", part.signature}});
            }
            break;
          case ContentPart::Kind::kText:
            if (!part.text.empty()) content.push_back({{"type", "text"}, {"text", part.text}});
            break;
          case ContentPart::Kind::kToolCall: {
            ASSIGN_OR_RETURN(
                OrderedJson input,
                ParseJsonObject(part.arguments_json.empty() ? "{}" : part.arguments_json,
                                fmt::format("arguments of tool call '{}' ({})", part.tool_name,
                                            part.tool_call_id)));
            content.push_back({{"type", "tool_use"},
                               {"id", part.tool_call_id},
                               {"name", part.tool_name},
                               {"input", std::move(input)}});
            break;
          }
          default:
            break;
        }
      }
    }
    if (content.empty()) continue;
    messages.push_back(
        {{"role", message.role == Role::kUser ? "user" : "assistant"}, {"content", content}});
  }
  return messages;
}

// Like Kilo Code: the last two user messages get a cache breakpoint on their last block, so the
// next request reads the conversation so far from the cache.
void AddCacheBreakpoints(OrderedJson& messages) {
  int marked = 0;
  for (auto it = messages.rbegin(); it != messages.rend() && marked < 2; ++it) {
    if ((*it)["role"] != "user") continue;
    OrderedJson& content = (*it)["content"];
    if (content.empty()) continue;
    content.back()["cache_control"] = {{"type", "ephemeral"}};
    ++marked;
  }
}

std::string NormalizeStop(std::string_view reason) {
  if (reason == "end_turn" || reason == "stop_sequence" || reason.empty()) return "stop";
  if (reason == "max_tokens") return "length";
  return std::string(reason);  // tool_use, pause_turn, refusal, …
}

class AnthropicParser final : public SseParser {
 public:
  AnthropicParser(std::string provider, EventSink sink)
      : SseParser(std::move(provider), std::move(sink)) {}

  void Finish() override {
    if (is_terminated()) return;
    EmitError(ErrorKind::kUnavailable,
              fmt::format("the stream from {} ended before message_stop", provider_));
  }

 protected:
  void OnEvent(std::string_view event, std::string_view data) override {
    if (event == "ping") return;
    std::optional<Json> payload = ParseJson(data);
    if (!payload || !payload->is_object()) {
      EmitBadResponse(
          fmt::format("malformed JSON in the '{}' event: '{}'", event, data.substr(0, 80)));
      return;
    }
    std::string type = GetString(*payload, "type");
    if (type.empty()) type = std::string(event);
    if (type == "message_start") {
      if (const Json* message = GetObject(*payload, "message")) {
        if (const Json* usage = GetObject(*message, "usage")) {
          UpdateUsage(*usage);
          EmitUsage(usage_);
        }
      }
    } else if (type == "content_block_start") {
      BlockStart(*payload);
    } else if (type == "content_block_delta") {
      BlockDelta(*payload);
    } else if (type == "content_block_stop") {
      BlockStop(*payload);
    } else if (type == "message_delta") {
      if (const Json* delta = GetObject(*payload, "delta")) {
        std::string reason = GetString(*delta, "stop_reason");
        if (!reason.empty()) stop_reason_ = reason;
      }
      if (const Json* usage = GetObject(*payload, "usage")) {
        UpdateUsage(*usage);
        EmitUsage(usage_);
      }
    } else if (type == "message_stop") {
      EmitDone(NormalizeStop(stop_reason_));
    } else if (type == "error") {
      const Json* error = GetObject(*payload, "error");
      std::string error_type = error ? GetString(*error, "type") : "";
      std::string message = ErrorMessageOf(*payload);
      EmitError(KindOfErrorText(error_type, message),
                fmt::format("error from {} during the stream: {}{}", provider_,
                            error_type.empty() ? "" : error_type + ": ", message));
    }
    // Other event types may be added by Anthropic; they are ignored.
  }

 private:
  struct Block {
    std::string type;
    int tool_index = 0;
    std::string id;
    std::string name;
    std::string input;
  };

  // Usage counts in message_delta are cumulative; a field that is absent keeps its value.
  void UpdateUsage(const Json& usage) {
    if (usage.contains("input_tokens")) usage_.input_tokens = GetInt(usage, "input_tokens");
    if (usage.contains("output_tokens")) usage_.output_tokens = GetInt(usage, "output_tokens");
    if (usage.contains("cache_creation_input_tokens")) {
      usage_.cache_write_tokens = GetInt(usage, "cache_creation_input_tokens");
    }
    if (usage.contains("cache_read_input_tokens")) {
      usage_.cache_read_tokens = GetInt(usage, "cache_read_input_tokens");
    }
  }

  void BlockStart(const Json& payload) {
    int index = static_cast<int>(GetInt(payload, "index"));
    const Json* content = GetObject(payload, "content_block");
    if (content == nullptr) {
      EmitBadResponse("content_block_start without content_block");
      return;
    }
    Block& block = blocks_[index];
    block.type = GetString(*content, "type");
    if (block.type == "text") {
      EmitText(GetString(*content, "text"));
    } else if (block.type == "thinking") {
      EmitReasoning(GetString(*content, "thinking"), GetString(*content, "signature"));
    } else if (block.type == "tool_use") {
      block.tool_index = next_tool_index_++;
      block.id = GetString(*content, "id");
      block.name = GetString(*content, "name");
      StreamEvent start;
      start.kind = StreamEvent::Kind::kToolCallStart;
      start.index = block.tool_index;
      start.tool_call_id = block.id;
      start.tool_name = block.name;
      Emit(std::move(start));
    }
  }

  void BlockDelta(const Json& payload) {
    int index = static_cast<int>(GetInt(payload, "index"));
    const Json* delta = GetObject(payload, "delta");
    if (delta == nullptr) return;
    std::string type = GetString(*delta, "type");
    if (type == "text_delta") {
      EmitText(GetString(*delta, "text"));
    } else if (type == "thinking_delta") {
      EmitReasoning(GetString(*delta, "thinking"));
    } else if (type == "signature_delta") {
      EmitReasoning("", GetString(*delta, "signature"));
    } else if (type == "input_json_delta") {
      auto it = blocks_.find(index);
      if (it == blocks_.end() || it->second.type != "tool_use") {
        EmitBadResponse(fmt::format("input_json_delta for block {} that is not a tool_use", index));
        return;
      }
      std::string fragment = GetString(*delta, "partial_json");
      if (fragment.empty()) return;
      it->second.input += fragment;
      StreamEvent event;
      event.kind = StreamEvent::Kind::kToolCallDelta;
      event.index = it->second.tool_index;
      event.tool_call_id = it->second.id;
      event.text = std::move(fragment);
      Emit(std::move(event));
    }
  }

  void BlockStop(const Json& payload) {
    int index = static_cast<int>(GetInt(payload, "index"));
    auto it = blocks_.find(index);
    if (it == blocks_.end()) return;
    Block block = std::move(it->second);
    blocks_.erase(it);
    if (block.type != "tool_use") return;
    Result<OrderedJson> input = ParseJsonObject(block.input.empty() ? "{}" : block.input,
                                                fmt::format("input of tool call '{}'", block.name));
    if (!input.ok()) {
      EmitBadResponse(input.error().message());
      return;
    }
    StreamEvent end;
    end.kind = StreamEvent::Kind::kToolCallEnd;
    end.index = block.tool_index;
    end.tool_call_id = block.id;
    end.tool_name = block.name;
    end.arguments_json = input->dump();
    Emit(std::move(end));
  }

  std::map<int, Block> blocks_;
  int next_tool_index_ = 0;
  Usage usage_;
  std::string stop_reason_;
};

}  // namespace

Result<http::Request> BuildAnthropicRequest(const Endpoint& endpoint,
                                            const CompletionRequest& request,
                                            const ModelInfo* model) {
  bool is_caching = model == nullptr || model->supports_prompt_cache;
  OrderedJson body;
  body["model"] = request.model;
  int64_t max_tokens = request.max_tokens.value_or(model != nullptr && model->max_output_tokens > 0
                                                       ? model->max_output_tokens
                                                       : kDefaultMaxTokens);
  if (request.reasoning_budget_tokens) {
    max_tokens = std::max(max_tokens, *request.reasoning_budget_tokens + kAnswerTokensAboveBudget);
  }
  body["max_tokens"] = max_tokens;
  if (!request.system_prompt.empty()) {
    OrderedJson system = {{"type", "text"}, {"text", request.system_prompt}};
    if (is_caching) system["cache_control"] = {{"type", "ephemeral"}};
    body["system"] = OrderedJson::array({std::move(system)});
  }
  ASSIGN_OR_RETURN(OrderedJson messages, BuildMessages(request));
  if (is_caching) AddCacheBreakpoints(messages);
  body["messages"] = std::move(messages);
  if (!request.tools.empty()) {
    OrderedJson tools = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson schema, ToolSchema(tool));
      tools.push_back({{"name", tool.name},
                       {"description", tool.description},
                       {"input_schema", std::move(schema)}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.reasoning_budget_tokens) {
    // Extended thinking requires the default temperature.
    body["thinking"] = {{"type", "enabled"}, {"budget_tokens", *request.reasoning_budget_tokens}};
  } else if (request.temperature) {
    body["temperature"] = *request.temperature;
  }
  body["stream"] = true;

  http::Request out = BaseRequest(endpoint, endpoint.base_url + "/v1/messages");
  out.headers.push_back({"Accept", "text/event-stream"});
  out.headers.push_back({"anthropic-version", "2023-06-01"});
  if (!endpoint.api_key.empty()) out.headers.push_back({"x-api-key", endpoint.api_key});
  out.body = body.dump();
  return out;
}

std::unique_ptr<StreamParser> NewAnthropicParser(std::string provider, EventSink sink) {
  return std::make_unique<AnthropicParser>(std::move(provider), std::move(sink));
}

}  // namespace lai::llm::internal
