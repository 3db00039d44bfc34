#include "http/sse_bench.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/check.h"
#include "http/bench_baseline.h"
#include "http/sse.h"

namespace lai::http {
namespace {

// Parses the event's JSON as an adapter would; returns 1 for a parsed object, 0 otherwise.
size_t ParseJson(std::string_view data) {
  if (data == "[DONE]") return 0;
  nlohmann::json value = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  return value.is_object() ? 1 : 0;
}

}  // namespace

std::string MakeSyntheticProviderStream(size_t bytes) {
  static constexpr std::string_view kWords[] = {
      "the ",   "function ", "returns ", "a ", "Result",          "<T>", " when ", "the\\n",
      "input ", "is ",       "valid",    ". ", "\\\"quoted\\\" ", "é ",  "数据 ",  "{",
      "}",      "\\t",       "int ",     "x"};
  std::string out;
  out.reserve(bytes + 512);
  uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  for (size_t i = 0; out.size() < bytes; ++i) {
    std::string text;
    for (uint32_t n = 1 + next() % 4; n > 0; --n) text += kWords[next() % std::size(kWords)];
    switch (i % 16) {
      case 0:
        out += ": keep-alive\n\n";
        [[fallthrough]];
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
        out +=
            R"(data: {"id":"chatcmpl-9x8Yq2","object":"chat.completion.chunk","created":1732665600,)"
            R"("model":"gpt-4o-2024-08-06","system_fingerprint":"fp_a7d06e42a7","choices":[{"index":0,)"
            R"("delta":{"content":")" +
            text +
            R"("},"logprobs":null,"finish_reason":null}]})"
            "\n\n";
        break;
      default:
        out +=
            "event: content_block_delta\r\n"
            R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":")" +
            text + "\"}}\r\n\r\n";
        break;
    }
  }
  return out;
}

SseThroughput MeasureSseDecoding(size_t chunk_bytes, std::chrono::milliseconds min_time) {
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  const std::string stream = MakeSyntheticProviderStream(4u << 20);
  SseThroughput result;
  result.stream_bytes = stream.size();
  auto feed_all = [&](auto& decoder, auto&& sink) {
    for (size_t at = 0; at < stream.size(); at += chunk_bytes) {
      decoder.Feed(std::string_view(stream).substr(at, chunk_bytes), sink);
    }
  };
  size_t events = 0;
  size_t parsed = 0;
  result.sse_mb_per_s = MeasureMbPerSecond(stream.size(), min_time, [&] {
    SseDecoder decoder;
    events = 0;
    feed_all(decoder, [&](const SseEvent& e) { events += e.data.empty() ? 0 : 1; });
  });
  result.events = events;
  result.sse_json_mb_per_s = MeasureMbPerSecond(stream.size(), min_time, [&] {
    SseDecoder decoder;
    parsed = 0;
    feed_all(decoder, [&](const SseEvent& e) { parsed += ParseJson(e.data); });
  });
  LAI_CHECK(parsed == events) << "SSE benchmark: " << parsed << " of " << events << " parsed";
  size_t baseline_events = 0;
  result.baseline_sse_mb_per_s = MeasureMbPerSecond(stream.size(), min_time, [&] {
    NaiveSseDecoder decoder;
    baseline_events = 0;
    feed_all(decoder, [&](const std::string&, const std::string& data) {
      baseline_events += data.empty() ? 0 : 1;
    });
  });
  LAI_CHECK(baseline_events == events)
      << "SSE benchmark baseline: " << baseline_events << " of " << events << " events";
  size_t baseline_parsed = 0;
  result.baseline_json_mb_per_s = MeasureMbPerSecond(stream.size(), min_time, [&] {
    NaiveSseDecoder decoder;
    baseline_parsed = 0;
    feed_all(decoder, [&](const std::string&, const std::string& data) {
      baseline_parsed += ParseJson(data);
    });
  });
  LAI_CHECK(baseline_parsed == events)
      << "SSE benchmark baseline: " << baseline_parsed << " of " << events << " parsed";
  return result;
}

}  // namespace lai::http
