// OpenAI Chat Completions, for api.openai.com and every OpenAI-compatible server.

#include <fmt/format.h>

#include <map>

#include "llm/internal/fast_json.h"
#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

// o1/o3/o4 and gpt-5 reject temperature and take reasoning_effort.
bool IsOpenAiReasoningModel(std::string_view model) {
  return (model.size() >= 2 && model[0] == 'o' && model[1] >= '1' && model[1] <= '9') ||
         model.starts_with("gpt-5");
}

std::string DataUrl(const ContentPart& part) {
  return "data:" + part.media_type + ";base64," + part.data_base64;
}

// How an endpoint takes a model's reasoning back, when it is its own (`origin` below).
enum class ReasoningBack {
  kNone,     // Not at all (most refuse or ignore it).
  kContent,  // "reasoning_content" on tool-calling messages (DeepSeek, Moonshot).
  kDetails,  // "reasoning_details" as streamed (OpenRouter; its Gemini 3 models need them).
};

// The entries one history message adds to "messages": its tool results first, as role "tool"
// messages (they must directly follow the assistant's tool_calls), then the user or assistant
// message itself. An assistant message takes its reasoning back as `back` says when this
// endpoint (`origin`) made it: servers that think and call tools refuse the next request
// without it.
Status AppendMessageEntries(const Message& message, std::string_view origin, ReasoningBack back,
                            OrderedJson& entries) {
  if (message.role == Role::kUser) {
    OrderedJson content = OrderedJson::array();
    bool has_image = false;
    std::string text;
    for (const ContentPart& part : message.parts) {
      switch (part.kind) {
        case ContentPart::Kind::kToolResult:
          entries.push_back(
              {{"role", "tool"}, {"tool_call_id", part.tool_call_id}, {"content", part.text}});
          break;
        case ContentPart::Kind::kText:
          content.push_back({{"type", "text"}, {"text", part.text}});
          if (!text.empty()) text += "\n\n";
          text += part.text;
          break;
        case ContentPart::Kind::kImage:
          has_image = true;
          content.push_back({{"type", "image_url"}, {"image_url", {{"url", DataUrl(part)}}}});
          break;
        default:
          break;
      }
    }
    if (content.empty()) return OkStatus();
    if (has_image) {
      entries.push_back({{"role", "user"}, {"content", std::move(content)}});
    } else {
      entries.push_back({{"role", "user"}, {"content", text}});
    }
    return OkStatus();
  }
  OrderedJson out = {{"role", "assistant"}};
  std::string text;
  std::string reasoning;
  OrderedJson details;
  OrderedJson tool_calls = OrderedJson::array();
  for (const ContentPart& part : message.parts) {
    if (part.kind == ContentPart::Kind::kText) {
      // Parts merged from two messages (a summary, then the reply after it) stay apart.
      if (!text.empty() && !part.text.empty()) text += "\n\n";
      text += part.text;
    } else if (part.kind == ContentPart::Kind::kReasoning) {
      if (!IsOwnReasoning(part, origin)) continue;
      reasoning += part.text;
      // OpenRouter's reasoning_details travel as the part's signature (a JSON array).
      if (part.signature.starts_with('[')) {
        details = OrderedJson::parse(part.signature, nullptr, /*allow_exceptions=*/false);
      }
    } else if (part.kind == ContentPart::Kind::kToolCall) {
      // Validated so a broken history fails here, not as a 400 from the provider.
      RETURN_IF_ERROR(ToolCallArguments(part).status());
      tool_calls.push_back(
          {{"id", part.tool_call_id},
           {"type", "function"},
           {"function",
            {{"name", part.tool_name},
             {"arguments", part.arguments_json.empty() ? "{}" : part.arguments_json}}}});
    }
  }
  if (text.empty() && !tool_calls.empty()) {
    out["content"] = nullptr;
  } else {
    out["content"] = text;
  }
  if (back == ReasoningBack::kContent && !tool_calls.empty() && !reasoning.empty()) {
    out["reasoning_content"] = std::move(reasoning);
  }
  if (back == ReasoningBack::kDetails && details.is_array() && !details.empty()) {
    out["reasoning_details"] = std::move(details);
  }
  if (!tool_calls.empty()) out["tool_calls"] = std::move(tool_calls);
  entries.push_back(std::move(out));
  return OkStatus();
}

// How the endpoint wants a model's reasoning back: DeepSeek's and Moonshot's thinking models
// refuse the next request without a tool-calling message's reasoning_content; OpenRouter needs
// reasoning_details (its Gemini 3 models refuse calls without their signatures); others refuse
// the field (Groq) or ignore it.
ReasoningBack ReasoningBackOf(const Endpoint& endpoint) {
  const std::string& url = endpoint.base_url;
  if (endpoint.provider == "openrouter" || url.find("openrouter.ai") != std::string::npos) {
    return ReasoningBack::kDetails;
  }
  if (endpoint.provider == "deepseek" || url.find("deepseek.com") != std::string::npos ||
      url.find("moonshot.") != std::string::npos || url.find("kimi.") != std::string::npos) {
    return ReasoningBack::kContent;
  }
  return ReasoningBack::kNone;
}

// Anthropic's models through OpenRouter cache a prompt only where it is marked (Kilo Code marks
// the system prompt and the last two user messages): `entries_text` (one message's entries)
// with the text of its user (or system) entry as a block marked for caching; unchanged when it
// has none (only tool results).
std::string WithCacheMarker(const std::string& entries_text) {
  OrderedJson entries = OrderedJson::parse("[" + entries_text + "]", nullptr, false);
  if (!entries.is_array() || entries.empty()) return entries_text;
  OrderedJson& entry = entries.back();
  if (entry.value("role", "") != "user" && entry.value("role", "") != "system") {
    return entries_text;
  }
  OrderedJson& content = entry["content"];
  if (content.is_string()) {
    content = OrderedJson::array({{{"type", "text"}, {"text", content.get<std::string>()}}});
  }
  for (auto it = content.rbegin(); it != content.rend(); ++it) {
    if (it->value("type", "") == "text") {
      (*it)["cache_control"] = {{"type", "ephemeral"}};
      break;
    }
  }
  return EntriesText(entries);
}

// "messages" as JSON text, from each message's cached entries.
Result<OrderedJson> BuildMessages(const ProviderSpec& spec, const CompletionRequest& request,
                                  const Endpoint& endpoint) {
  const ReasoningBack back = ReasoningBackOf(endpoint);
  // Reasoning goes back only where it is wanted: for others the origin matches no part.
  const std::string origin = back == ReasoningBack::kNone ? "" : OriginOf(endpoint);
  std::vector<std::shared_ptr<const std::string>> parts;
  parts.reserve(request.messages.size() + 1);
  if (!request.system_prompt.empty()) {
    bool is_developer = spec.is_openai && IsOpenAiReasoningModel(request.model);
    Message prompt;
    prompt.parts.push_back({.kind = ContentPart::Kind::kText, .text = request.system_prompt});
    // "developer" for OpenAI's reasoning models, "system" otherwise.
    const char* role = is_developer ? "developer" : "system";
    ASSIGN_OR_RETURN(
        parts.emplace_back(),
        CachedMessageJson(is_developer ? "openai-developer" : "openai-system", prompt,
                          [role](const Message& m, OrderedJson& entries) {
                            entries.push_back({{"role", role}, {"content", m.parts.front().text}});
                            return OkStatus();
                          }));
  }
  const std::string format = "openai " + std::to_string(static_cast<int>(back)) + " " + origin;
  auto build = [&origin, back](const Message& message, OrderedJson& entries) {
    return AppendMessageEntries(message, origin, back, entries);
  };
  for (const Message& message : request.messages) {
    ASSIGN_OR_RETURN(parts.emplace_back(), CachedMessageJson(format, message, build));
  }
  if (spec.name == "openrouter" && request.model.starts_with("anthropic/")) {
    // The system prompt and the last two user messages, marked.
    const size_t first_message = request.system_prompt.empty() ? 0 : 1;
    if (first_message == 1) {
      parts[0] = std::make_shared<const std::string>(WithCacheMarker(*parts[0]));
    }
    int marked = 0;
    for (size_t i = request.messages.size(); marked < 2 && i-- > 0;) {
      if (request.messages[i].role != Role::kUser) continue;
      std::shared_ptr<const std::string>& entry = parts[first_message + i];
      std::string with_marker = WithCacheMarker(*entry);
      if (with_marker == *entry) continue;
      entry = std::make_shared<const std::string>(std::move(with_marker));
      ++marked;
    }
  }
  return JoinEntries(parts);
}

std::string NormalizeStop(std::string_view reason) {
  if (reason == "tool_calls" || reason == "function_call") return "tool_use";
  if (reason.empty()) return "stop";
  if (reason == "content_filter") return "refusal";
  return std::string(reason);
}

class OpenAiParser final : public SseParser {
 public:
  OpenAiParser(std::string provider, std::string tool_id_prefix, EventSink sink)
      : SseParser(std::move(provider), std::move(sink)),
        tool_id_prefix_(std::move(tool_id_prefix)) {}

  void OnFinish() override {
    if (is_terminated()) return;
    if (!finish_reason_.empty()) {
      // Some compatible servers end without [DONE]; the finish_reason says the answer is whole.
      EndToolCalls();
      EmitDone(NormalizeStop(finish_reason_));
      return;
    }
    EmitError(ErrorKind::kUnavailable,
              fmt::format("the stream from {} ended before the answer was complete", provider_));
  }

 protected:
  void OnEvent(std::string_view event, std::string_view data) override {
    if (Equals(data, "[DONE]")) {
      EndToolCalls();
      EmitDone(NormalizeStop(finish_reason_));
      return;
    }
    if (!Equals(event, "error") && ReadChunk(data) == simdjson::SUCCESS) {
      ApplyChunk();
      return;
    }
    OnEventFullParse(event, data);
  }

 private:
  // The fields of one chunk the parser uses, read by simdjson into reused members. The strings
  // view the FastJson's buffer: valid until the next chunk is read.
  struct CallDelta {
    int64_t index = -1;  // -1: the delta had none.
    std::string_view id;
    std::string_view name;
    std::string_view arguments;
  };
  struct Chunk {
    bool has_delta = false;
    std::string_view reasoning_content;
    std::string_view reasoning;
    std::string_view content;
    size_t call_count = 0;
    std::vector<CallDelta> calls;  // The first call_count are this chunk's.
    std::string_view finish_reason;
    bool has_usage = false;
    Usage usage;
  };

  // The hot path: reads the chunk whole (emitting nothing) or fails, leaving it to
  // OnEventFullParse.
  simdjson::error_code ReadChunk(std::string_view data) {
    Chunk& chunk = chunk_;
    chunk.has_delta = false;
    chunk.call_count = 0;
    chunk.finish_reason = {};
    chunk.has_usage = false;
    return json_.ForEachRootField(data, [&](std::string_view key, od::value value) {
      if (Equals(key, "choices")) return ReadChoices(value);
      if (Equals(key, "usage")) return ReadUsage(value);
      if (Equals(key, "error")) return kUseFullParse;
      return Consume(value);
    });
  }

  simdjson::error_code ReadChoices(od::value value) {
    Chunk& chunk = chunk_;
    chunk.has_delta = false;
    chunk.call_count = 0;
    chunk.finish_reason = {};
    return ForEachElementIfArray(value, [&](size_t i, od::value choice) -> simdjson::error_code {
      if (i > 0) return Consume(choice);
      return ForEachFieldIfObject(choice, [&](std::string_view key, od::value field) {
        if (Equals(key, "delta")) return ReadDelta(field);
        if (Equals(key, "finish_reason")) return ReadString(field, chunk.finish_reason);
        return Consume(field);
      });
    });
  }

  simdjson::error_code ReadDelta(od::value value) {
    Chunk& chunk = chunk_;
    chunk.has_delta = false;
    chunk.call_count = 0;
    if (auto error = IsObject(value, chunk.has_delta); error || !chunk.has_delta) {
      return error;
    }
    chunk.reasoning_content = {};
    chunk.reasoning = {};
    chunk.content = {};
    return ForEachField(value, [&](std::string_view key, od::value field) {
      if (Equals(key, "content")) {
        // Content as blocks (Mistral's thinking models): the full parse.
        od::json_type type;
        if (auto error = field.type().get(type)) return error;
        if (type == od::json_type::array) return kUseFullParse;
        return ReadString(field, chunk.content);
      }
      if (Equals(key, "reasoning_content")) return ReadString(field, chunk.reasoning_content);
      if (Equals(key, "reasoning")) return ReadString(field, chunk.reasoning);
      if (Equals(key, "tool_calls")) return ReadToolCalls(field);
      // OpenRouter's reasoning_details (rare, and merged by index): the full parse.
      if (Equals(key, "reasoning_details")) return kUseFullParse;
      return Consume(field);
    });
  }

  simdjson::error_code ReadToolCalls(od::value value) {
    Chunk& chunk = chunk_;
    chunk.call_count = 0;
    return ForEachElementIfArray(value, [&](size_t, od::value element) -> simdjson::error_code {
      if (chunk.calls.size() <= chunk.call_count) chunk.calls.emplace_back();
      CallDelta& call = chunk.calls[chunk.call_count++];
      call = CallDelta{};
      return ForEachFieldIfObject(element, [&](std::string_view key, od::value field) {
        if (Equals(key, "index")) return ReadInt(field, call.index);
        if (Equals(key, "id")) return ReadString(field, call.id);
        if (Equals(key, "function")) {
          call.name = {};
          call.arguments = {};
          return ForEachFieldIfObject(field, [&](std::string_view name, od::value item) {
            if (Equals(name, "name")) return ReadString(item, call.name);
            if (Equals(name, "arguments")) {
              // Some compatible servers send the arguments as an object, not as its text.
              od::json_type type;
              if (auto error = item.type().get(type)) return error;
              if (type == od::json_type::object) return kUseFullParse;
              return ReadString(item, call.arguments);
            }
            return Consume(item);
          });
        }
        return Consume(field);
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
      if (Equals(key, "prompt_tokens")) return ReadInt(field, usage.input_tokens);
      if (Equals(key, "completion_tokens")) return ReadInt(field, usage.output_tokens);
      if (Equals(key, "prompt_tokens_details") || Equals(key, "completion_tokens_details")) {
        bool is_prompt = Equals(key, "prompt_tokens_details");
        int64_t& out = is_prompt ? usage.cache_read_tokens : usage.reasoning_tokens;
        out = 0;
        return ForEachFieldIfObject(field, [&](std::string_view name, od::value item) {
          if (name == (is_prompt ? "cached_tokens" : "reasoning_tokens")) {
            return ReadInt(item, out);
          }
          return Consume(item);
        });
      }
      return Consume(field);
    });
  }

  // Emits what ReadChunk read, in the order OnEventFullParse would.
  void ApplyChunk() {
    const Chunk& chunk = chunk_;
    if (chunk.has_delta) {
      EmitReasoning(chunk.reasoning_content.empty() ? chunk.reasoning : chunk.reasoning_content);
      EmitText(chunk.content);
      for (size_t i = 0; i < chunk.call_count; ++i) {
        const CallDelta& call = chunk.calls[i];
        OnCallDelta(call.index, call.id, call.name, call.arguments);
      }
      if (is_terminated()) return;
    }
    if (!chunk.finish_reason.empty()) {
      finish_reason_ = chunk.finish_reason;
      if (!EndReasoningDetails() || !EndToolCalls()) return;
    }
    if (chunk.has_usage) EmitUsage(chunk.usage);
  }

  // Which call a delta continues, as the numbers of the calls in this reply: the provider's
  // index says, but some compatible servers and gateways send none, or the same index for
  // every call: there a new id starts a new call, and a delta without one continues the last.
  int CallNumber(int64_t provider_index, std::string_view id) {
    auto known =
        provider_index < 0 ? by_provider_index_.end() : by_provider_index_.find(provider_index);
    int continued = provider_index < 0                  ? last_call_
                    : known != by_provider_index_.end() ? known->second
                                                        : -1;
    if (continued >= 0) {
      const ToolCall& call = tool_calls_[continued];
      if (id.empty() || !call.has_provider_id || id == call.id) return last_call_ = continued;
    }
    int number = static_cast<int>(tool_calls_.size());
    if (provider_index >= 0) by_provider_index_[provider_index] = number;
    return last_call_ = number;
  }

  void OnCallDelta(int64_t provider_index, std::string_view id, std::string_view name,
                   std::string_view fragment) {
    const int index = CallNumber(provider_index, id);
    auto [it, is_new] = tool_calls_.try_emplace(index);
    ToolCall& tool = it->second;
    if (!is_new && !name.empty() && name != tool.name) {
      tool.name += name;  // A name split across deltas (a server repeating it whole is skipped).
    }
    if (is_new) {
      tool.id = id;
      tool.has_provider_id = !id.empty();
      // A server that sends no id (some local ones): one unique across the session, so that
      // no two calls of the history share one.
      if (tool.id.empty()) tool.id = fmt::format("{}_{}", tool_id_prefix_, index);
      tool.name = name;
      StreamEvent start;
      start.kind = StreamEvent::Kind::kToolCallStart;
      start.index = index;
      start.tool_call_id = tool.id;
      start.tool_name = tool.name;
      Emit(std::move(start));
    }
    tool.arguments += fragment;
    EmitToolCallDelta(index, tool.id, fragment);
  }

  // The nlohmann DOM path: error bodies, and any chunk the fast path could not read (it then
  // decides, e.g. that the JSON is malformed, and words the error).
  void OnEventFullParse(std::string_view event, std::string_view data) {
    std::optional<Json> chunk = ParseJson(data);
    if (!chunk || !chunk->is_object()) {
      EmitBadResponse(fmt::format("malformed JSON in the stream: '{}'", data.substr(0, 80)));
      return;
    }
    if (chunk->contains("error") || event == "error") {
      const Json* error = GetObject(*chunk, "error");
      std::string type = error ? GetString(*error, "type") : "";
      if (type.empty() && error) type = GetString(*error, "code");
      std::string message = ErrorMessageOf(*chunk);
      EmitError(KindOfErrorText(type, message),
                fmt::format("error from {} during the stream: {}", provider_, message));
      return;
    }
    if (const Json* choices = GetArray(*chunk, "choices"); choices && !choices->empty()) {
      const Json& choice = choices->front();
      if (const Json* delta = GetObject(choice, "delta")) {
        if (!HandleDelta(*delta)) return;
      }
      std::string reason = GetString(choice, "finish_reason");
      if (!reason.empty()) {
        finish_reason_ = reason;
        if (!EndReasoningDetails() || !EndToolCalls()) return;
      }
    }
    if (const Json* usage = GetObject(*chunk, "usage")) {
      Usage out;
      out.input_tokens = GetInt(*usage, "prompt_tokens");
      out.output_tokens = GetInt(*usage, "completion_tokens");
      if (const Json* details = GetObject(*usage, "prompt_tokens_details")) {
        out.cache_read_tokens = GetInt(*details, "cached_tokens");
      }
      if (const Json* details = GetObject(*usage, "completion_tokens_details")) {
        out.reasoning_tokens = GetInt(*details, "reasoning_tokens");
      }
      EmitUsage(out);
    }
  }

  struct ToolCall {
    std::string id;
    std::string name;
    std::string arguments;
    bool is_ended = false;
    bool has_provider_id = false;  // Else the id was made up here.
  };

  // False once a terminal event was emitted.
  bool HandleDelta(const Json& delta) {
    std::string reasoning = GetString(delta, "reasoning_content");
    if (reasoning.empty()) reasoning = GetString(delta, "reasoning");
    EmitReasoning(std::move(reasoning));
    if (const Json* details = GetArray(delta, "reasoning_details")) AddReasoningDetails(*details);
    if (const Json* blocks = GetArray(delta, "content")) {
      // Content as blocks (Mistral's Magistral: its thinking and its text), in order.
      for (const Json& block : *blocks) {
        std::string type = GetString(block, "type");
        if (type == "text") {
          EmitText(GetString(block, "text"));
        } else if (type == "thinking") {
          const Json* thought = GetArray(block, "thinking");
          if (thought == nullptr) {
            EmitReasoning(GetString(block, "thinking"));
            continue;
          }
          for (const Json& piece : *thought) EmitReasoning(GetString(piece, "text"));
        }
      }
    } else {
      EmitText(GetString(delta, "content"));
    }
    const Json* calls = GetArray(delta, "tool_calls");
    if (calls == nullptr) return !is_terminated();
    for (const Json& call : *calls) {
      const Json* function = GetObject(call, "function");
      const Json* object = function ? GetObject(*function, "arguments") : nullptr;
      OnCallDelta(call.contains("index") ? GetInt(call, "index") : -1, GetString(call, "id"),
                  function ? GetString(*function, "name") : "",
                  object     ? object->dump()
                  : function ? GetString(*function, "arguments")
                             : "");
    }
    return !is_terminated();
  }

  // OpenRouter streams reasoning_details (thought text, summaries, encrypted thoughts and
  // signatures) in pieces, each naming the detail it continues by index: merged here, the text
  // fields appended, the others as last sent.
  void AddReasoningDetails(const Json& details) {
    for (const Json& detail : details) {
      if (!detail.is_object()) continue;
      int64_t index = detail.contains("index") ? GetInt(detail, "index")
                                               : static_cast<int64_t>(details_.size());
      Json& merged = details_[index];
      for (auto it = detail.begin(); it != detail.end(); ++it) {
        const bool appends = it.key() == "text" || it.key() == "summary" || it.key() == "data" ||
                             it.key() == "signature";
        if (appends && it->is_string() && merged.contains(it.key()) &&
            merged[it.key()].is_string()) {
          merged[it.key()] = merged[it.key()].get<std::string>() + it->get<std::string>();
        } else {
          merged[it.key()] = *it;
        }
      }
    }
  }

  // The merged reasoning_details, as the reasoning's signature (sent back as they came).
  bool EndReasoningDetails() {
    if (details_.empty()) return !is_terminated();
    Json array = Json::array();
    for (auto& [index, detail] : details_) array.push_back(std::move(detail));
    details_.clear();
    EmitReasoning("", array.dump());
    return !is_terminated();
  }

  // Emits kToolCallEnd for each open call. Arguments that are not a JSON object are the model's
  // mistake, not the stream's: they are passed on as sent (see StreamEvent::arguments_json).
  bool EndToolCalls() {
    for (auto& [index, tool] : tool_calls_) {
      if (tool.is_ended) continue;
      tool.is_ended = true;
      Result<OrderedJson> arguments =
          ParseJsonObject(tool.arguments.empty() ? "{}" : tool.arguments,
                          fmt::format("arguments of tool call '{}'", tool.name));
      StreamEvent end;
      end.kind = StreamEvent::Kind::kToolCallEnd;
      end.index = index;
      end.tool_call_id = tool.id;
      end.tool_name = tool.name;
      end.arguments_json = arguments.ok() ? arguments->dump() : tool.arguments;
      Emit(std::move(end));
    }
    return !is_terminated();
  }

  std::map<int64_t, Json> details_;     // reasoning_details by index (AddReasoningDetails).
  std::map<int, ToolCall> tool_calls_;  // By CallNumber().
  std::map<int64_t, int> by_provider_index_;
  int last_call_ = -1;
  const std::string tool_id_prefix_;
  std::string finish_reason_;
  FastJson json_;
  Chunk chunk_;
};

}  // namespace

Result<http::Request> BuildOpenAiRequest(const ProviderSpec& spec, const Endpoint& endpoint,
                                         const CompletionRequest& request, const ModelInfo* model) {
  OrderedJson body;
  body["model"] = request.model;
  ASSIGN_OR_RETURN(body["messages"], BuildMessages(spec, request, endpoint));
  body["stream"] = true;
  if (!spec.refuses_stream_options) body["stream_options"] = {{"include_usage", true}};
  if (!request.tools.empty()) {
    OrderedJson tools = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson entry, CachedToolEntry("openai", tool, &FunctionTool));
      tools.push_back(std::move(entry));
    }
    body["tools"] = std::move(tools);
  }
  bool is_reasoning_model = spec.is_openai && (IsOpenAiReasoningModel(request.model) ||
                                               (model != nullptr && model->supports_reasoning));
  if (request.temperature && !is_reasoning_model) body["temperature"] = *request.temperature;
  if (request.max_tokens) {
    body[spec.is_openai ? "max_completion_tokens" : "max_tokens"] = *request.max_tokens;
  }
  if (!request.reasoning_effort.empty()) {
    if (spec.name == "openrouter") {
      body["reasoning"] = {{"effort", request.reasoning_effort}};
    } else if (!spec.is_openai || is_reasoning_model) {
      body["reasoning_effort"] = request.reasoning_effort;
    }
  }
  http::Request out = BaseRequest(endpoint, endpoint.base_url + "/chat/completions");
  out.headers.push_back({"Accept", "text/event-stream"});
  if (!endpoint.api_key.empty()) {
    out.headers.push_back({"Authorization", "Bearer " + endpoint.api_key});
  }
  if (spec.name == "openrouter") {
    out.headers.push_back({"HTTP-Referer", "https://github.com/lapce/lapce-ai"});
    out.headers.push_back({"X-Title", "lapce-ai"});
  }
  out.body = DumpRequestBody(body);
  return out;
}

std::unique_ptr<StreamParser> NewOpenAiParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink) {
  return std::make_unique<OpenAiParser>(std::move(provider), std::move(tool_id_prefix),
                                        std::move(sink));
}

}  // namespace lai::llm::internal
