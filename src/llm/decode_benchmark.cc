// Prints MeasureStreamDecoding (the real adapter path vs a getline + nlohmann baseline) alone, the
// first rows of `lapce-ai bench providers`: a small target to profile the decoders with (perf,
// callgrind). Usage: llm_decode_benchmark [chunk_bytes]
#include <cstdio>
#include <cstdlib>

#include "llm/bench_decode.h"

int main(int argc, char** argv) {
  size_t chunk_bytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1400;
  lai::llm::DecodeThroughput result = lai::llm::MeasureStreamDecoding(chunk_bytes);
  std::printf("chunk %zu bytes\n", chunk_bytes);
  std::printf("openai    %8zu bytes %6zu events: adapter %7.1f MB/s, baseline %7.1f MB/s\n",
              result.openai_stream_bytes, result.openai_events, result.openai_mb_per_s,
              result.baseline_openai_mb_per_s);
  std::printf("anthropic %8zu bytes %6zu events: adapter %7.1f MB/s, baseline %7.1f MB/s\n",
              result.anthropic_stream_bytes, result.anthropic_events, result.anthropic_mb_per_s,
              result.baseline_anthropic_mb_per_s);
  return 0;
}
