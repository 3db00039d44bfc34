// Standalone run of MeasureSseDecoding (the same function `lapce-ai bench providers` calls):
//   http_sse_benchmark [chunk_bytes] [min_ms]
#include <cstdio>
#include <cstdlib>

#include "http/sse_bench.h"

int main(int argc, char** argv) {
  size_t chunk_bytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1400;
  long min_ms = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 1000;
  lai::http::SseThroughput t =
      lai::http::MeasureSseDecoding(chunk_bytes, std::chrono::milliseconds(min_ms));
  std::printf("stream %zu bytes, %zu events, fed in %zu-byte reads\n", t.stream_bytes, t.events,
              chunk_bytes);
  std::printf("  sse decode only                 %8.1f MB/s\n", t.sse_mb_per_s);
  std::printf("  sse decode only (getline base)  %8.1f MB/s\n", t.baseline_sse_mb_per_s);
  std::printf("  sse + json parse (lai)          %8.1f MB/s\n", t.sse_json_mb_per_s);
  std::printf("  sse + json parse (getline base) %8.1f MB/s\n", t.baseline_json_mb_per_s);
  return 0;
}
