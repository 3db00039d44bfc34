// Scripted model turns for agent tests and benchmarks: OpenAI Chat Completions SSE bodies (text,
// reasoning, one or more tool calls, usage) for the fake provider server to send. Free functions;
// thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "testing/fake_provider_server.h"

namespace lai::testing {

struct ScriptedCall {
  std::string id;              // "call_1"
  std::string name;            // "read_file"
  std::string arguments_json;  // A JSON object.
};

struct ScriptedTurn {
  std::string reasoning;  // Sent as `reasoning_content` deltas (DeepSeek / OpenRouter style).
  std::string text;       // Split into `text_chunks` deltas.
  std::vector<ScriptedCall> calls;
  int64_t input_tokens = 100;
  int64_t output_tokens = 20;
  int text_chunks = 3;
  std::string finish_reason;  // "" = "tool_calls" with calls, else "stop".
};

// The SSE body of one streamed chat completion (finish_reason as the turn says). Each event is
// its own body chunk.
FakeResponse OpenAiTurn(const ScriptedTurn& turn);
// Shorthands.
FakeResponse OpenAiText(std::string_view text);
FakeResponse OpenAiToolCall(std::string_view id, std::string_view name,
                            std::string_view arguments_json, std::string_view text = {});
// A 400 reply in OpenAI's shape saying the prompt is longer than the context window.
FakeResponse OpenAiContextTooLong();
// A reply whose role chunk and first half of `text` arrive at once; then the stream stalls for
// `stall` (until the client cancels, in a test).
FakeResponse OpenAiStalledText(std::string_view text, std::chrono::milliseconds stall);

}  // namespace lai::testing
