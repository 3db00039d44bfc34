// Throughput measurement of SSE (+ JSON) decoding on a synthetic but realistic provider stream,
// for `lapce-ai bench providers`. Thread-compatible (each call uses only its own data).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace lai::http {

struct SseThroughput {
  size_t stream_bytes = 0;            // Size of the synthetic stream decoded per pass.
  size_t events = 0;                  // Events per pass.
  double sse_mb_per_s = 0;            // SseDecoder alone.
  double baseline_sse_mb_per_s = 0;   // Naive std::getline decoder alone.
  double sse_json_mb_per_s = 0;       // SseDecoder + nlohmann::json parse of every event's data.
  double baseline_json_mb_per_s = 0;  // Naive std::getline decoder + the same JSON parse.
};

// A deterministic mix of OpenAI chat-completion chunks, Anthropic content_block_delta events and
// keep-alive comments, about `bytes` long.
std::string MakeSyntheticProviderStream(size_t bytes);

// Decodes the synthetic stream fed in `chunk_bytes` pieces (like socket reads), repeating each
// variant for at least `min_time`. MB = 1e6 bytes.
SseThroughput MeasureSseDecoding(size_t chunk_bytes = 1400,
                                 std::chrono::milliseconds min_time = std::chrono::seconds(1));

}  // namespace lai::http
