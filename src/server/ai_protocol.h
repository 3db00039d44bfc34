// The JSON of the raw completion service: AIRequest parsing (with errors that name the field) and
// the JSON of each stream event, shared by the IPC service and `lapce-ai complete --json`.
// Free functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "llm/types.h"

namespace lai::server {

struct AiRequest {
  std::string profile;  // Empty = the default profile.
  bool stream = true;
  llm::CompletionRequest request;
};

// Parses and validates an AIRequest:
//   {messages:[{role, content, toolCalls?:[{name, parameters, id}]}], model?, temperature?,
//    maxTokens?, tools?, systemPrompt?, stream?, profile?}
// `role` is "user", "assistant", "system" (appended to the system prompt) or "tool" (a tool
// result: {role:"tool", toolCallId, content, isError?}). `content` is a string or an array of
// parts: {type:"text", text}, {type:"image", mediaType, data} (base64), {type:"image",
// source:{type:"base64", media_type, data}} or {type:"image_url", image_url:{url:"data:…"}}.
// `tools` items are {name, description?, parameters?} (or OpenAI's {type:"function",
// function:{…}}, or Anthropic's input_schema). Unknown top-level fields are ignored.
// Errors: kInvalidArgument "AIRequest messages[2].content: expected a string or an array of
// parts, got number".
Result<AiRequest> ParseAiRequest(std::string_view json);

// One stream event as its JSON object, e.g. {"type":"text","text":"Hi"}; kDone gives
// {"type":"done","stopReason":"stop","usage":{…}} with the last usage seen (pass it in `usage`).
std::string EventJson(const llm::StreamEvent& event, const llm::Usage& last_usage);

// "invalid_key", "rate_limited", … (the `kind` of an error event).
std::string_view ErrorKindName(llm::ErrorKind kind);
// The project-wide error code a caller should act on for a provider error.
ErrorCode ErrorCodeFor(llm::ErrorKind kind);

// Accumulates a stream into the single reply of a `stream:false` request:
// {"type":"done","stopReason","text","reasoning","toolCalls":[{id,name,parameters}],"usage"}.
// Thread-compatible.
class ReplyCollector {
 public:
  void Add(const llm::StreamEvent& event);
  std::string FinalJson() const;
  const llm::Usage& usage() const { return usage_; }

 private:
  std::string text_;
  std::string reasoning_;
  struct Call {
    std::string id;
    std::string name;
    std::string arguments_json;
  };
  std::vector<Call> calls_;
  llm::Usage usage_;
  std::string stop_reason_;
  std::string profile_;  // Who answered (kDone): a fallback's when the first profile could not.
  std::string model_;
};

}  // namespace lai::server
