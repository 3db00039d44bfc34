// The provider-neutral conversation and stream types every adapter translates to and from.
// No JSON crosses this boundary except tool-call arguments and tool schemas, kept as text.
// Value types; thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lai::llm {

enum class Role { kUser, kAssistant };

struct ContentPart {
  enum class Kind { kText, kImage, kReasoning, kToolCall, kToolResult };
  Kind kind = Kind::kText;
  std::string text;            // kText; kReasoning; kToolResult's content.
  std::string media_type;      // kImage: "image/png".
  std::string data_base64;     // kImage.
  // Sent back verbatim: kReasoning, Anthropic's thinking signature or Gemini's thought
  // signature; kToolCall, Gemini's thoughtSignature of the call.
  std::string signature;
  std::string tool_call_id;    // kToolCall, kToolResult.
  std::string tool_name;       // kToolCall (and kToolResult, for providers that want the name).
  std::string arguments_json;  // kToolCall: a complete JSON object.
  bool is_error = false;       // kToolResult.
  // kReasoning, and a kToolCall with a signature: ReasoningOrigin() of the endpoint that made
  // them. Reasoning and signatures go back only to it (another endpoint refuses a signature it
  // did not make); "" = not known (kept from before origins were recorded).
  std::string origin;
  // kReasoning: Anthropic's redacted_thinking, whose encrypted data is `signature` (no text).
  bool redacted = false;
};

// Who made a reasoning part or signature: the provider and its base URL (as ProfileInfo and
// the request's endpoint have them).
inline std::string ReasoningOrigin(std::string_view provider, std::string_view base_url) {
  std::string origin(provider);
  origin += ' ';
  origin += base_url;
  return origin;
}

struct Message {
  Role role = Role::kUser;
  std::vector<ContentPart> parts;
};

struct ToolDefinition {
  std::string name;
  std::string description;
  std::string parameters_schema_json;  // A JSON Schema object.
};

struct CompletionRequest {
  std::string model;  // Empty = the profile's model.
  std::string system_prompt;
  std::vector<Message> messages;
  std::vector<ToolDefinition> tools;
  std::optional<double> temperature;
  std::optional<int64_t> max_tokens;
  std::string reasoning_effort;                    // "", "low", "medium", "high".
  std::optional<int64_t> reasoning_budget_tokens;  // Anthropic/Gemini thinking budget.
  // One attempt on the profile alone, whose failure does not count against its endpoint's
  // circuit: a request the caller can do without (a summary of older messages).
  bool best_effort = false;
};

struct Usage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_write_tokens = 0;
  int64_t cache_read_tokens = 0;
  int64_t reasoning_tokens = 0;
  double cost_usd = 0;  // Computed from the catalog's prices.
};

// What a user can do about a failed request; every message names the provider and never holds
// the API key.
enum class ErrorKind {
  kInvalidKey,      // 401/403: "401 from anthropic: the API key in ANTHROPIC_API_KEY was rejected"
  kUnknownModel,    // 404 / model not found.
  kContextTooLong,  // The prompt exceeds the model's context window.
  kRateLimited,     // 429; retry_after says when.
  kOverloaded,      // 529 / 503 overloaded.
  kTimeout,         // Connect, first-byte or idle timeout.
  kUnavailable,     // Connection failed, 5xx, circuit open.
  kBadResponse,     // The provider broke its own wire format.
  kInvalidRequest,  // 400 other than context length: our request or its parameters.
  kCancelled,
};

struct StreamError {
  ErrorKind kind = ErrorKind::kUnavailable;
  std::string message;
  std::optional<std::chrono::milliseconds> retry_after;  // kRateLimited / kOverloaded.
  int http_status = 0;                                   // 0 when no response.
};

struct StreamEvent {
  enum class Kind {
    kTextDelta,  // text
    // text (+ signature when the provider sends one); index = the reasoning block (Anthropic
    // sends several, each signed, which go back as they came); redacted = Anthropic's
    // redacted_thinking, its data in signature.
    kReasoningDelta,
    kToolCallStart,  // index, tool_call_id, tool_name
    kToolCallDelta,  // index, tool_call_id, text = a fragment of the arguments
    kToolCallEnd,    // index, tool_call_id, tool_name, arguments_json (see below)
    kUsage,          // usage (may come more than once; each carries the running totals)
    kError,          // error; the last event before nothing (no kDone follows an error)
    kDone,  // text = stop reason: "stop", "tool_use", "length", "refusal" (the model's or a
            // content filter's), or the provider's own word for another
    // text = why the request is sent again, and when ("429 from openai: rate limited …;
    // retrying in 3 s (attempt 2 of 5)"), or to a fallback profile. Not output: nothing of
    // the answer has come. For front ends, so that a wait does not look like a hang.
    kRetrying,
  };
  Kind kind = Kind::kTextDelta;
  std::string text;
  std::string signature;
  int index = 0;
  std::string tool_call_id;
  std::string tool_name;
  // kToolCallEnd: the complete arguments, a JSON object; or, when the model sent something else
  // (broken or truncated JSON), exactly what it sent: its mistake, for the caller to answer.
  std::string arguments_json;
  bool redacted = false;
  Usage usage;
  StreamError error;
  // kDone: the profile and model that answered (a fallback profile's, when the first one could
  // not; see ProviderPool).
  std::string profile;
  std::string model;
};

// Called on the HTTP I/O thread, in order, never concurrently for one stream; must not block.
using EventSink = std::function<void(const StreamEvent& event)>;

}  // namespace lai::llm
