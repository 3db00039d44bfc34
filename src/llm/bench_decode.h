// Throughput of provider stream decoding through the real adapter path (SseDecoder + the
// provider's stream parser → StreamEvents) beside a naive baseline, for `lapce-ai bench
// providers`. Thread-compatible (each call uses only its own data).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace lai::llm {

struct DecodeThroughput {
  size_t openai_stream_bytes = 0;     // Size of the synthetic OpenAI stream decoded per pass.
  size_t anthropic_stream_bytes = 0;  // Same for Anthropic.
  size_t openai_events = 0;           // StreamEvents produced per pass.
  size_t anthropic_events = 0;
  double openai_mb_per_s = 0;              // SSE + simdjson adapter → StreamEvents.
  double anthropic_mb_per_s = 0;
  double baseline_openai_mb_per_s = 0;     // std::getline SSE split + nlohmann DOM per event.
  double baseline_anthropic_mb_per_s = 0;
};

// A realistic chat-completions stream (text deltas, a tool call whose arguments arrive in many
// fragments, a usage chunk, [DONE]) about `bytes` long; deterministic.
std::string MakeOpenAiBenchStream(size_t bytes);
// The same for the Messages API (message_start usage, text deltas, pings, a tool_use block with
// input_json_delta fragments, message_delta usage, message_stop).
std::string MakeAnthropicBenchStream(size_t bytes);

// Feeds each stream in `chunk_bytes` pieces (like socket reads) through the real parser, and
// through the baseline, repeating each for at least `min_time`. MB = 1e6 bytes.
DecodeThroughput MeasureStreamDecoding(size_t chunk_bytes = 1400,
                                       std::chrono::milliseconds min_time = std::chrono::seconds(1));

}  // namespace lai::llm
