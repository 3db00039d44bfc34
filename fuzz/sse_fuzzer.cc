// libFuzzer target for the SSE and NDJSON decoders: any byte stream is decoded without a crash,
// and the result does not depend on how the stream was split into reads: whole, in two parts at
// an input-chosen point, and in pieces of an input-chosen size must give the same events.
//
// Input: [u8 split selector][u8 piece size selector][stream bytes...].
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/sse.h"

namespace {

struct Decoded {
  std::vector<std::string> events;  // event '\0' data '\0' id '\0' retry
  bool ok = true;
  bool operator==(const Decoded&) const = default;
};

Decoded DecodeSse(std::string_view stream, const std::vector<size_t>& cuts) {
  // Small limits so that the overflow paths are exercised too.
  lai::http::SseDecoder decoder(/*max_line_bytes=*/512, /*max_event_bytes=*/2048);
  Decoded out;
  auto sink = [&](const lai::http::SseEvent& e) {
    std::string record(e.event);
    record += '\0';
    record += e.data;
    record += '\0';
    record += e.id;
    record += '\0';
    record += e.retry_ms ? std::to_string(*e.retry_ms) : "-";
    out.events.push_back(std::move(record));
  };
  size_t at = 0;
  for (size_t cut : cuts) {
    decoder.Feed(stream.substr(at, cut - at), sink);
    at = cut;
  }
  decoder.Feed(stream.substr(at), sink);
  out.ok = decoder.status().ok();
  return out;
}

Decoded DecodeNdjson(std::string_view stream, const std::vector<size_t>& cuts) {
  lai::http::NdjsonDecoder decoder(/*max_line_bytes=*/512);
  Decoded out;
  auto sink = [&](std::string_view line) { out.events.emplace_back(line); };
  size_t at = 0;
  for (size_t cut : cuts) {
    decoder.Feed(stream.substr(at, cut - at), sink);
    at = cut;
  }
  decoder.Feed(stream.substr(at), sink);
  decoder.Finish(sink);
  out.ok = decoder.status().ok();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t split_selector = data[0];
  const size_t piece = 1 + data[1] % 64;
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  std::vector<size_t> two_parts = {stream.empty() ? 0 : split_selector * stream.size() / 255};
  std::vector<size_t> pieces;
  for (size_t at = piece; at < stream.size(); at += piece) pieces.push_back(at);

  const Decoded sse_whole = DecodeSse(stream, {});
  if (!(DecodeSse(stream, two_parts) == sse_whole)) std::abort();
  if (!(DecodeSse(stream, pieces) == sse_whole)) std::abort();

  const Decoded ndjson_whole = DecodeNdjson(stream, {});
  if (!(DecodeNdjson(stream, two_parts) == ndjson_whole)) std::abort();
  if (!(DecodeNdjson(stream, pieces) == ndjson_whole)) std::abort();
  return 0;
}
