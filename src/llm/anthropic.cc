// Anthropic Messages: request building with prompt caching and thinking, and the event stream.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include "llm/internal/fast_json.h"
#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

constexpr int64_t kDefaultMaxTokens = 8192;
// Anthropic requires max_tokens above the thinking budget; this much is left for the answer.
constexpr int64_t kAnswerTokensAboveBudget = 4096;

// A tool call id as Anthropic takes it (^[a-zA-Z0-9_-]+$): another provider's ids may hold
// '.', ':' or '/' ("functions.read_file:0"). A call and its result map alike.
std::string AnthropicToolId(const std::string& id) {
  std::string out = id.empty() ? std::string("call") : id;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  }
  return out;
}

// The entry one message adds to "messages" (none when it has no content for Anthropic).
// `origin`: the endpoint's ReasoningOrigin (thinking made elsewhere is not sent).
Status AppendMessageEntry(const Message& message, std::string_view origin, OrderedJson& entries) {
  OrderedJson content = OrderedJson::array();
  if (message.role == Role::kUser) {
    // tool_result blocks must come first in their user message.
    for (const ContentPart& part : message.parts) {
      if (part.kind != ContentPart::Kind::kToolResult) continue;
      OrderedJson block = {{"type", "tool_result"},
                           {"tool_use_id", AnthropicToolId(part.tool_call_id)},
                           {"content", part.text}};
      if (part.is_error) block["is_error"] = true;
      content.push_back(std::move(block));
    }
    for (const ContentPart& part : message.parts) {
      if (part.kind == ContentPart::Kind::kText && !part.text.empty()) {
        content.push_back({{"type", "text"}, {"text", part.text}});
      } else if (part.kind == ContentPart::Kind::kImage) {
        content.push_back(
            {{"type", "image"},
             {"source",
              {{"type", "base64"}, {"media_type", part.media_type}, {"data", part.data_base64}}}});
      }
    }
  } else {
    for (const ContentPart& part : message.parts) {
      switch (part.kind) {
        case ContentPart::Kind::kReasoning:
          // Thinking goes back verbatim with its signature; unsigned thinking cannot, nor a
          // signature another endpoint made (Anthropic refuses it).
          if (part.signature.empty() || !IsOwnReasoning(part, origin)) break;
          if (part.redacted) {
            content.push_back({{"type", "redacted_thinking"}, {"data", part.signature}});
          } else {
            content.push_back(
                {{"type", "thinking"}, {"thinking", part.text}, {"signature", part.signature}});
          }
          break;
        case ContentPart::Kind::kText:
          if (!part.text.empty()) content.push_back({{"type", "text"}, {"text", part.text}});
          break;
        case ContentPart::Kind::kToolCall: {
          ASSIGN_OR_RETURN(OrderedJson input, ToolCallArguments(part));
          content.push_back({{"type", "tool_use"},
                             {"id", AnthropicToolId(part.tool_call_id)},
                             {"name", part.tool_name},
                             {"input", std::move(input)}});
          break;
        }
        default:
          break;
      }
    }
  }
  if (content.empty()) return OkStatus();
  entries.push_back(
      {{"role", message.role == Role::kUser ? "user" : "assistant"}, {"content", content}});
  return OkStatus();
}

// "messages" as JSON text, from each message's cached entry. Like Kilo Code, when caching, the
// last two user messages get a cache breakpoint on their last block, so the next request reads
// the conversation so far from the cache: those two are built afresh with their marker.
// `messages` with tool call ids unique as Anthropic sees them (AnthropicToolId): a server that
// numbers its calls per reply ("call_0" each time), or two ids that differ only in characters
// Anthropic does not take, made a request it refuses. A repeated id becomes "<id>_<n>", and the
// results that follow take the new one. Nothing when the ids are unique (the usual case).
std::optional<std::vector<Message>> WithUniqueToolIds(const std::vector<Message>& messages) {
  std::set<std::string> seen;
  bool is_unique = true;
  for (const Message& message : messages) {
    for (const ContentPart& part : message.parts) {
      if (part.kind == ContentPart::Kind::kToolCall) {
        is_unique = is_unique && seen.insert(AnthropicToolId(part.tool_call_id)).second;
      }
    }
  }
  if (is_unique) return std::nullopt;
  std::vector<Message> renamed = messages;
  std::set<std::string> used;
  std::map<std::string, std::string> current;  // A call's id → the id it is sent with.
  for (Message& message : renamed) {
    for (ContentPart& part : message.parts) {
      if (part.kind == ContentPart::Kind::kToolCall) {
        std::string id = AnthropicToolId(part.tool_call_id);
        for (int n = 2; !used.insert(id).second; ++n) {
          id = AnthropicToolId(part.tool_call_id) + "_" + std::to_string(n);
        }
        current[part.tool_call_id] = id;
        part.tool_call_id = id;
      } else if (part.kind == ContentPart::Kind::kToolResult) {
        if (auto it = current.find(part.tool_call_id); it != current.end()) {
          part.tool_call_id = it->second;
        }
      }
    }
  }
  return renamed;
}

Result<OrderedJson> BuildMessages(const CompletionRequest& request, std::string_view origin,
                                  bool is_caching) {
  std::optional<std::vector<Message>> renamed = WithUniqueToolIds(request.messages);
  const std::vector<Message>& messages = renamed ? *renamed : request.messages;
  std::vector<std::shared_ptr<const std::string>> entries;
  entries.reserve(messages.size());
  const std::string format = "anthropic " + std::string(origin);
  auto build = [origin](const Message& message, OrderedJson& out) {
    return AppendMessageEntry(message, origin, out);
  };
  for (const Message& message : messages) {
    ASSIGN_OR_RETURN(entries.emplace_back(), CachedMessageJson(format, message, build));
  }
  int marked = 0;
  for (size_t i = entries.size(); is_caching && marked < 2 && i-- > 0;) {
    if (messages[i].role != Role::kUser || entries[i]->empty()) continue;
    OrderedJson entry = OrderedJson::array();
    RETURN_IF_ERROR(build(messages[i], entry));
    entry[0]["content"].back()["cache_control"] = {{"type", "ephemeral"}};
    entries[i] = std::make_shared<const std::string>(DumpRequestBody(entry[0]));
    ++marked;
  }
  return JoinEntries(entries);
}

std::string NormalizeStop(std::string_view reason) {
  if (reason == "end_turn" || reason == "stop_sequence" || reason.empty()) return "stop";
  if (reason == "max_tokens" || reason == "model_context_window_exceeded") return "length";
  return std::string(reason);  // tool_use, pause_turn, refusal, …
}

class AnthropicParser final : public SseParser {
 public:
  AnthropicParser(std::string provider, EventSink sink)
      : SseParser(std::move(provider), std::move(sink)) {}

  void OnFinish() override {
    if (is_terminated()) return;
    EmitError(ErrorKind::kUnavailable,
              fmt::format("the stream from {} ended before message_stop", provider_));
  }

 protected:
  void OnEvent(std::string_view event, std::string_view data) override {
    if (Equals(event, "ping")) return;
    if (ReadEvent(data) == simdjson::SUCCESS) {
      std::string_view type = event_.type.empty() ? event : std::string_view(event_.type);
      if (!Equals(type, "error")) {
        ApplyEvent(type);
        return;
      }
    }
    OnEventFullParse(event, data);
  }

 private:
  // The fields of one event the parser uses, read by simdjson into reused members.
  struct UsageFields {
    bool is_present = false;
    std::optional<int64_t> input;
    std::optional<int64_t> output;
    std::optional<int64_t> cache_write;
    std::optional<int64_t> cache_read;
  };
  // Its strings view the FastJson's buffer: valid until the next event is read.
  struct Event {
    std::string_view type;
    int64_t index = 0;
    UsageFields message_usage;  // message.usage of message_start.
    bool has_block = false;     // content_block.
    std::string_view block_type;
    std::string_view block_text;
    std::string_view block_thinking;
    std::string_view block_signature;
    std::string_view block_id;
    std::string_view block_name;
    std::string_view block_input;  // tool_use's input as raw JSON, when an object.
    bool has_delta = false;  // delta.
    std::string_view delta_type;
    std::string_view delta_text;  // text / thinking / signature / partial_json, by delta_type.
    std::string_view delta_stop_reason;
    UsageFields usage;  // usage of message_delta.
  };

  // The hot path: reads the event whole (emitting nothing) or fails, leaving it to
  // OnEventFullParse.
  simdjson::error_code ReadEvent(std::string_view data) {
    Event& event = event_;
    event.type = {};
    event.index = 0;
    event.message_usage.is_present = false;
    event.has_block = false;
    event.has_delta = false;
    event.usage.is_present = false;
    return json_.ForEachRootField(data, [&](std::string_view key, od::value value) {
      if (Equals(key, "type")) return ReadString(value, event.type);
      if (Equals(key, "index")) return ReadInt(value, event.index);
      if (Equals(key, "delta")) return ReadDelta(value);
      if (Equals(key, "content_block")) return ReadBlock(value);
      if (Equals(key, "usage")) return ReadUsage(value, event.usage);
      if (Equals(key, "message")) {
        event.message_usage.is_present = false;
        return ForEachFieldIfObject(value, [&](std::string_view name, od::value field) {
          if (Equals(name, "usage")) return ReadUsage(field, event.message_usage);
          return Consume(field);
        });
      }
      return Consume(value);
    });
  }

  static simdjson::error_code ReadUsage(od::value value, UsageFields& usage) {
    usage.is_present = false;
    bool is_object = false;
    if (auto error = IsObject(value, is_object); error || !is_object) return error;
    usage = UsageFields{.is_present = true};
    return ForEachField(value, [&](std::string_view key, od::value field) {
      std::optional<int64_t>* out = nullptr;
      if (Equals(key, "input_tokens")) out = &usage.input;
      if (Equals(key, "output_tokens")) out = &usage.output;
      if (Equals(key, "cache_creation_input_tokens")) out = &usage.cache_write;
      if (Equals(key, "cache_read_input_tokens")) out = &usage.cache_read;
      if (out == nullptr) return Consume(field);
      int64_t count = 0;
      auto error = ReadInt(field, count);
      *out = count;
      return error;
    });
  }

  simdjson::error_code ReadBlock(od::value value) {
    Event& event = event_;
    if (auto error = IsObject(value, event.has_block); error || !event.has_block) {
      return error;
    }
    for (std::string_view* text :
         {&event.block_type, &event.block_text, &event.block_thinking, &event.block_signature,
          &event.block_id, &event.block_name, &event.block_input}) {
      *text = {};
    }
    return ForEachField(value, [&](std::string_view key, od::value field) {
      if (Equals(key, "type")) return ReadString(field, event.block_type);
      if (Equals(key, "text")) return ReadString(field, event.block_text);
      if (Equals(key, "thinking")) return ReadString(field, event.block_thinking);
      if (Equals(key, "signature")) return ReadString(field, event.block_signature);
      // redacted_thinking's encrypted thinking goes back as its signature would.
      if (Equals(key, "data")) return ReadString(field, event.block_signature);
      if (Equals(key, "id")) return ReadString(field, event.block_id);
      if (Equals(key, "name")) return ReadString(field, event.block_name);
      if (Equals(key, "input")) {
        bool is_object = false;
        if (auto error = IsObject(field, is_object); error || !is_object) return error;
        return RawObject(field, event.block_input);
      }
      return Consume(field);
    });
  }

  // Reads every string field a delta may carry; the one delta.type names is used.
  simdjson::error_code ReadDelta(od::value value) {
    Event& event = event_;
    if (auto error = IsObject(value, event.has_delta); error || !event.has_delta) {
      return error;
    }
    event.delta_type = {};
    event.delta_stop_reason = {};
    std::string_view text, thinking, signature, partial_json;
    auto error = ForEachField(value, [&](std::string_view key, od::value field) {
      if (Equals(key, "type")) return ReadString(field, event.delta_type);
      if (Equals(key, "text")) return ReadString(field, text);
      if (Equals(key, "thinking")) return ReadString(field, thinking);
      if (Equals(key, "signature")) return ReadString(field, signature);
      if (Equals(key, "partial_json")) return ReadString(field, partial_json);
      if (Equals(key, "stop_reason")) return ReadString(field, event.delta_stop_reason);
      return Consume(field);
    });
    if (Equals(event.delta_type, "text_delta")) {
      event.delta_text = text;
    } else if (Equals(event.delta_type, "thinking_delta")) {
      event.delta_text = thinking;
    } else if (Equals(event.delta_type, "signature_delta")) {
      event.delta_text = signature;
    } else if (Equals(event.delta_type, "input_json_delta")) {
      event.delta_text = partial_json;
    } else {
      event.delta_text = {};
    }
    return error;
  }

  void ApplyUsage(const UsageFields& usage) {
    if (usage.input) usage_.input_tokens = *usage.input;
    if (usage.output) usage_.output_tokens = *usage.output;
    if (usage.cache_write) usage_.cache_write_tokens = *usage.cache_write;
    if (usage.cache_read) usage_.cache_read_tokens = *usage.cache_read;
    EmitUsage(usage_);
  }

  // Emits what ReadEvent read, exactly as OnEventFullParse would.
  void ApplyEvent(std::string_view type) {
    const Event& event = event_;
    int index = static_cast<int>(event.index);
    if (Equals(type, "message_start")) {
      if (event.message_usage.is_present) ApplyUsage(event.message_usage);
    } else if (Equals(type, "content_block_start")) {
      if (!event.has_block) {
        EmitBadResponse("content_block_start without content_block");
        return;
      }
      StartBlock(index, event.block_type, event.block_text, event.block_thinking,
                 event.block_signature, event.block_id, event.block_name, event.block_input);
    } else if (Equals(type, "content_block_delta")) {
      if (!event.has_delta) return;
      std::string_view delta_type = event.delta_type;
      if (Equals(delta_type, "text_delta")) {
        has_text_ = has_text_ || !event.delta_text.empty();
        EmitText(event.delta_text);
      } else if (Equals(delta_type, "thinking_delta")) {
        EmitReasoning(event.delta_text, {}, index);
      } else if (Equals(delta_type, "signature_delta")) {
        EmitReasoning("", event.delta_text, index);
      } else if (Equals(delta_type, "input_json_delta")) {
        InputDelta(index, event.delta_text);
      }
    } else if (Equals(type, "content_block_stop")) {
      StopBlock(index);
    } else if (Equals(type, "message_delta")) {
      if (event.has_delta && !event.delta_stop_reason.empty()) {
        stop_reason_ = event.delta_stop_reason;
      }
      if (event.usage.is_present) ApplyUsage(event.usage);
    } else if (Equals(type, "message_stop")) {
      EmitDone(NormalizeStop(stop_reason_));
    }
  }

  // The nlohmann DOM path: error events, and any event the fast path could not read (it then
  // decides, e.g. that the JSON is malformed, and words the error).
  void OnEventFullParse(std::string_view event, std::string_view data) {
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

  struct Block {
    std::string type;
    int tool_index = 0;
    std::string id;
    std::string name;
    std::string input;
    bool is_input_from_start = false;  // `input` is content_block_start's, until a delta comes.
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
    std::string type = GetString(*content, "type");
    const Json* input = GetObject(*content, "input");
    StartBlock(index, type, GetString(*content, "text"), GetString(*content, "thinking"),
               GetString(*content, type == "redacted_thinking" ? "data" : "signature"),
               GetString(*content, "id"), GetString(*content, "name"),
               input != nullptr ? input->dump() : std::string());
  }

  // `input`: tool_use's input as the start event gives it (Anthropic's own is {}, filled by
  // input_json_delta events; a gateway may send it whole here and no deltas).
  void StartBlock(int index, std::string_view type, std::string_view text,
                  std::string_view thinking, std::string_view signature, std::string_view id,
                  std::string_view name, std::string_view input) {
    Block& block = blocks_[index];
    block.type = type;
    if (block.type == "text") {
      // Text blocks are paragraphs of one reply: they do not run into each other.
      if (has_text_) EmitText("\n\n");
      has_text_ = has_text_ || !text.empty();
      EmitText(text);
    } else if (block.type == "thinking") {
      EmitReasoning(thinking, signature, index);
    } else if (block.type == "redacted_thinking") {
      EmitReasoning("", signature, index, /*redacted=*/true);
    } else if (block.type == "tool_use") {
      block.tool_index = next_tool_index_++;
      block.id = id;
      block.name = name;
      // A start whose input is not the empty object carries the input whole; deltas, should
      // any follow, replace it.
      std::string compact;
      for (char c : input) {
        if (!std::isspace(static_cast<unsigned char>(c))) compact += c;
      }
      if (!compact.empty() && compact != "{}") {
        block.input = input;
        block.is_input_from_start = true;
      }
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
      std::string text = GetString(*delta, "text");
      has_text_ = has_text_ || !text.empty();
      EmitText(text);
    } else if (type == "thinking_delta") {
      EmitReasoning(GetString(*delta, "thinking"), {}, index);
    } else if (type == "signature_delta") {
      EmitReasoning("", GetString(*delta, "signature"), index);
    } else if (type == "input_json_delta") {
      InputDelta(index, GetString(*delta, "partial_json"));
    }
  }

  void InputDelta(int index, std::string_view fragment) {
    auto it = blocks_.find(index);
    if (it == blocks_.end() || it->second.type != "tool_use") {
      EmitBadResponse(fmt::format("input_json_delta for block {} that is not a tool_use", index));
      return;
    }
    if (it->second.is_input_from_start) {
      it->second.input.clear();
      it->second.is_input_from_start = false;
    }
    it->second.input += fragment;
    EmitToolCallDelta(it->second.tool_index, it->second.id, fragment);
  }

  void BlockStop(const Json& payload) { StopBlock(static_cast<int>(GetInt(payload, "index"))); }

  void StopBlock(int index) {
    auto it = blocks_.find(index);
    if (it == blocks_.end()) return;
    Block block = std::move(it->second);
    blocks_.erase(it);
    if (block.type != "tool_use") return;
    // Input that is not a JSON object is the model's mistake, passed on as sent (see
    // StreamEvent::arguments_json).
    Result<OrderedJson> input = ParseJsonObject(block.input.empty() ? "{}" : block.input,
                                                fmt::format("input of tool call '{}'", block.name));
    StreamEvent end;
    end.kind = StreamEvent::Kind::kToolCallEnd;
    end.index = block.tool_index;
    end.tool_call_id = block.id;
    end.tool_name = block.name;
    end.arguments_json = input.ok() ? input->dump() : block.input;
    Emit(std::move(end));
  }

  std::map<int, Block> blocks_;
  bool has_text_ = false;  // A text block said something.
  int next_tool_index_ = 0;
  Usage usage_;
  std::string stop_reason_;
  FastJson json_;
  Event event_;
};

}  // namespace

namespace {

OrderedJson AnthropicTool(const ToolDefinition& tool, OrderedJson schema) {
  return {
      {"name", tool.name}, {"description", tool.description}, {"input_schema", std::move(schema)}};
}

}  // namespace

namespace {

// Whether the conversation ends in tool results whose calls' message has none of this
// endpoint's signed thinking.
bool LastToolTurnLacksThinking(const std::vector<Message>& messages, const std::string& origin) {
  if (messages.empty() || messages.back().role != Role::kUser) return false;
  const std::vector<ContentPart>& last = messages.back().parts;
  bool has_results = std::any_of(last.begin(), last.end(), [](const ContentPart& part) {
    return part.kind == ContentPart::Kind::kToolResult;
  });
  if (!has_results) return false;
  for (size_t i = messages.size() - 1; i-- > 0;) {
    if (messages[i].role != Role::kAssistant) continue;
    return std::none_of(messages[i].parts.begin(), messages[i].parts.end(),
                        [&](const ContentPart& part) {
                          return part.kind == ContentPart::Kind::kReasoning &&
                                 !part.signature.empty() && IsOwnReasoning(part, origin);
                        });
  }
  return false;
}

}  // namespace

Result<http::Request> BuildAnthropicRequest(const Endpoint& endpoint,
                                            const CompletionRequest& request,
                                            const ModelInfo* model) {
  if (request.temperature && (*request.temperature < 0 || *request.temperature > 1)) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("temperature {} is out of range for {}: Anthropic's models take 0 "
                             "to 1",
                             *request.temperature, endpoint.provider));
  }
  bool is_caching = model == nullptr || model->supports_prompt_cache;
  OrderedJson body;
  body["model"] = request.model;
  int64_t max_tokens = request.max_tokens.value_or(model != nullptr && model->max_output_tokens > 0
                                                       ? model->max_output_tokens
                                                       : kDefaultMaxTokens);
  // Extended thinking: a budget, or one for the effort asked for; not for a model the catalog
  // says cannot think (it refuses the request), and within the model's output limit, which the
  // budget counts against.
  std::optional<int64_t> budget = request.reasoning_budget_tokens;
  if (!budget && ThinkingBudgetForEffort(request.reasoning_effort) > 0) {
    budget = ThinkingBudgetForEffort(request.reasoning_effort);
  }
  if (model != nullptr && !model->supports_reasoning) budget.reset();
  // With thinking on, the assistant message whose tool calls the last results answer must start
  // with its thinking; one made without (thinking was off then, or another endpoint answered)
  // cannot get it, so this request goes without, as Anthropic advises (and so on until a
  // message of the user's own starts a turn that can think again).
  if (budget && LastToolTurnLacksThinking(request.messages, OriginOf(endpoint))) budget.reset();
  if (budget) {
    max_tokens = std::max(max_tokens, *budget + kAnswerTokensAboveBudget);
    if (model != nullptr && model->max_output_tokens > 0) {
      max_tokens = std::min(max_tokens, model->max_output_tokens);
      budget = std::min(*budget, max_tokens - kAnswerTokensAboveBudget);
      if (*budget < 1024) budget.reset();  // Anthropic's least.
    }
  }
  body["max_tokens"] = max_tokens;
  if (!request.system_prompt.empty()) {
    OrderedJson system = {{"type", "text"}, {"text", request.system_prompt}};
    if (is_caching) system["cache_control"] = {{"type", "ephemeral"}};
    body["system"] = OrderedJson::array({std::move(system)});
  }
  ASSIGN_OR_RETURN(body["messages"], BuildMessages(request, OriginOf(endpoint), is_caching));
  if (!request.tools.empty()) {
    OrderedJson tools = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson entry, CachedToolEntry("anthropic", tool, &AnthropicTool));
      tools.push_back(std::move(entry));
    }
    body["tools"] = std::move(tools);
  }
  if (budget) {
    // Extended thinking requires the default temperature.
    body["thinking"] = {{"type", "enabled"}, {"budget_tokens", *budget}};
  } else if (request.temperature) {
    body["temperature"] = *request.temperature;
  }
  body["stream"] = true;

  http::Request out = BaseRequest(endpoint, endpoint.base_url + "/v1/messages");
  out.headers.push_back({"Accept", "text/event-stream"});
  out.headers.push_back({"anthropic-version", "2023-06-01"});
  if (!endpoint.api_key.empty()) out.headers.push_back({"x-api-key", endpoint.api_key});
  out.body = DumpRequestBody(body);
  return out;
}

std::unique_ptr<StreamParser> NewAnthropicParser(std::string provider, EventSink sink) {
  return std::make_unique<AnthropicParser>(std::move(provider), std::move(sink));
}

}  // namespace lai::llm::internal
