// Shared pieces of the four stream parsers and request builders (JSON helpers, event emission,
// the one-terminal-event rule). Includes nlohmann/json: only the adapters' .cc files include it.
// ParserBase is confined to the thread that feeds it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/sse.h"
#include "llm/internal/adapter.h"

namespace lai::llm::internal {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Compact JSON text of a request body. Strings are escaped in bulk (the body holds the whole
// conversation, so this is most of a request's CPU time) and invalid UTF-8 is replaced with
// U+FFFD instead of throwing. A binary value is JSON text already (RawJson) and is copied as is.
std::string DumpRequestBody(const OrderedJson& body);

// Parses `text`; nullopt when it is not JSON.
std::optional<Json> ParseJson(std::string_view text);
// Parses `text` as a JSON object; errors name `what` (e.g. "arguments of tool call 'read_file'").
Result<OrderedJson> ParseJsonObject(std::string_view text, std::string_view what);
// A tool call's arguments from the history ("{}" when empty) as a JSON object; the error names
// the tool and the call, so a broken history fails here rather than as a provider's 400.
Result<OrderedJson> ToolCallArguments(const ContentPart& call);

// Field accessors that never throw: a missing or wrong-typed field is the fallback.
std::string GetString(const Json& object, std::string_view key);
int64_t GetInt(const Json& object, std::string_view key);
const Json* GetObject(const Json& object, std::string_view key);
const Json* GetArray(const Json& object, std::string_view key);

// The message a provider put in an error body: {"error":{"message"}}, {"error":"…"},
// [{"error":…}] (Gemini); empty when none.
std::string ErrorMessageOf(const Json& body);
// Maps an error type/status word from a provider ("overloaded_error", "rate_limit_error",
// "RESOURCE_EXHAUSTED", …) plus its message to a kind; kUnavailable when nothing fits.
ErrorKind KindOfErrorText(std::string_view type, std::string_view message);
// As KindOfErrorText, for an error a server sent in place of an answer: retried only when it says
// something retryable (overloaded, rate limited, …), kInvalidRequest when nothing fits.
ErrorKind KindOfAnswerError(std::string_view type, std::string_view message);
// Whether a message says the prompt is too long for the model.
bool SaysContextTooLong(std::string_view message);

class ParserBase : public StreamParser {
 public:
  ParserBase(std::string provider, EventSink sink)
      : provider_(std::move(provider)), sink_(std::move(sink)) {}

  bool is_terminated() const override { return is_terminated_; }
  bool has_output() const override { return has_output_; }

 protected:
  void Emit(const StreamEvent& event);
  // The deltas, one per provider chunk, go through events kept for reuse: no event is built or
  // freed per chunk.
  void EmitText(std::string_view text);
  // `block`: which reasoning block of the reply (see StreamEvent::kReasoningDelta).
  void EmitReasoning(std::string_view text, std::string_view signature = {}, int block = 0,
                     bool redacted = false);
  // A fragment of tool call `index`'s arguments.
  void EmitToolCallDelta(int index, std::string_view tool_call_id, std::string_view fragment);
  void EmitUsage(const Usage& usage);
  void EmitDone(std::string stop_reason);
  void EmitError(ErrorKind kind, std::string message, int http_status = 0);
  // "bad response from <provider>: <what>" as kBadResponse.
  void EmitBadResponse(std::string_view what);
  // A whole tool call at once (Gemini, Ollama): start, one delta with all arguments, end.
  // `signature`: Gemini's thoughtSignature of the call.
  void EmitWholeToolCall(int index, const std::string& id, const std::string& name,
                         std::string arguments, std::string signature = {});

  const std::string provider_;

 private:
  EventSink sink_;
  StreamEvent text_delta_{.kind = StreamEvent::Kind::kTextDelta};
  StreamEvent reasoning_delta_{.kind = StreamEvent::Kind::kReasoningDelta};
  StreamEvent tool_call_delta_{.kind = StreamEvent::Kind::kToolCallDelta};
  bool is_terminated_ = false;
  bool has_output_ = false;
};

// A parser of a text/event-stream body: subclasses see whole events.
class SseParser : public ParserBase {
 public:
  using ParserBase::ParserBase;
  void Feed(std::string_view bytes) override;
  // A body that held no event but a JSON error (servers and proxies that answer 200 with
  // {"error":{"message":…}}) ends with that message; otherwise OnFinish decides.
  void Finish() final;

 protected:
  // `event` is "message" when the event had no name.
  virtual void OnEvent(std::string_view event, std::string_view data) = 0;
  // The body ended (its last event was passed to OnEvent).
  virtual void OnFinish() = 0;

 private:
  static constexpr size_t kMaxHeadBytes = 4096;

  http::SseDecoder decoder_;
  bool saw_event_ = false;
  std::string head_;  // The body's first bytes, while no event has come.
};

// A parser of an NDJSON body: subclasses see whole lines.
class NdjsonParser : public ParserBase {
 public:
  using ParserBase::ParserBase;
  void Feed(std::string_view bytes) override;
  void Finish() override;

 protected:
  virtual void OnLine(std::string_view line) = 0;
  // The body ended and OnLine saw its last line.
  virtual void OnEnd() = 0;

 private:
  http::NdjsonDecoder decoder_;
};

}  // namespace lai::llm::internal

namespace lai::llm::internal {

// The per-wire halves, dispatched to by BuildRequest and NewStreamParser.
Result<http::Request> BuildOpenAiRequest(const ProviderSpec& spec, const Endpoint& endpoint,
                                         const CompletionRequest& request, const ModelInfo* model);
Result<http::Request> BuildAnthropicRequest(const Endpoint& endpoint,
                                            const CompletionRequest& request,
                                            const ModelInfo* model);
Result<http::Request> BuildGeminiRequest(const Endpoint& endpoint, const CompletionRequest& request,
                                         const ModelInfo* model);
Result<http::Request> BuildOllamaRequest(const Endpoint& endpoint, const CompletionRequest& request,
                                         const ModelInfo* model);
std::unique_ptr<StreamParser> NewOpenAiParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink);
std::unique_ptr<StreamParser> NewAnthropicParser(std::string provider, EventSink sink);
std::unique_ptr<StreamParser> NewGeminiParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink);
std::unique_ptr<StreamParser> NewOllamaParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink);

// Common request parts.
http::Request BaseRequest(const Endpoint& endpoint, std::string url);
// Tool schema text → JSON object; errors name the tool.
Result<OrderedJson> ToolSchema(const ToolDefinition& tool);
// JSON text in a binary value, which only DumpRequestBody understands (it copies it as is): an
// agent sends the same tools with every request, and copying text is far cheaper than building,
// copying and walking a tree.
OrderedJson RawJson(std::string_view text);
// A tool's entry in a request, built by `build` (from the tool and its parsed schema) once per
// distinct tool and wire format, then kept as RawJson. For builders that do not change it later.
// {"type": "function", "function": {name, description, parameters}}: OpenAI's and Ollama's entry.
OrderedJson FunctionTool(const ToolDefinition& tool, OrderedJson schema);
Result<OrderedJson> CachedToolEntry(std::string_view format, const ToolDefinition& tool,
                                    OrderedJson (*build)(const ToolDefinition& tool,
                                                         OrderedJson schema));
// The entries one conversation message adds to a request's message list, as JSON text
// ("{…},{…}"; empty when it adds none), built by `build` (which appends them to a JSON array)
// once per distinct message and wire format. An agent resends every earlier message with each
// request: copying their text is far cheaper than rebuilding and escaping it every turn. For
// formats whose entries depend on the message alone (not on its neighbours or position).
// Errors from `build` are returned and not kept. Thread-safe; bounded (see adapter.cc).
Result<std::shared_ptr<const std::string>> CachedMessageJson(
    std::string_view format, const Message& message,
    const std::function<Status(const Message& message, OrderedJson& entries)>& build);
// The items of a JSON array as text, comma-separated, without the brackets (as
// CachedMessageJson keeps a message's entries).
std::string EntriesText(const OrderedJson& entries);
// A JSON array (as RawJson) of CachedMessageJson texts, skipping empty ones.
OrderedJson JoinEntries(const std::vector<std::shared_ptr<const std::string>>& entries);
// For formats where a tool result needs the name of the call it answers (Gemini, Ollama): each
// message's entries as CachedMessageJson text. A message whose tool results all name their tool
// (the agent's always do) comes from the cache; any other is built afresh with `tool_names`
// holding the calls of the messages before it. `build` adds the message's own calls to the map.
using ToolNames = std::map<std::string, std::string>;  // Call id → tool name.
using NamingBuild =
    std::function<Status(const Message& message, ToolNames& tool_names, OrderedJson& entries)>;
Result<std::vector<std::shared_ptr<const std::string>>> EntriesNamingTools(
    std::string_view format, const std::vector<Message>& messages, const NamingBuild& build);
// Whether a reasoning part or signature made by `part.origin` may go to the endpoint whose
// ReasoningOrigin is `origin`: its own only. One of unknown origin (stored before origins were)
// may be another provider's, which would refuse the request: it is not sent.
inline bool IsOwnReasoning(const ContentPart& part, std::string_view origin) {
  return !part.origin.empty() && part.origin == origin;
}
// The thinking budget a reasoning effort stands for where a provider takes only a budget
// (Anthropic, Gemini): "low" 1024, "medium" 8192, "high" 24576 tokens; -1 for none.
inline int64_t ThinkingBudgetForEffort(std::string_view effort) {
  if (effort == "low") return 1024;
  if (effort == "medium") return 8192;
  if (effort == "high") return 24576;
  return -1;
}
// ReasoningOrigin of `endpoint`.
inline std::string OriginOf(const Endpoint& endpoint) {
  return ReasoningOrigin(endpoint.provider, endpoint.base_url);
}

}  // namespace lai::llm::internal
