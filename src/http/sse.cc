#include "http/sse.h"

#include <cstring>
#include <limits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/strings.h"

namespace lai::http {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// The first CR or LF in [p, end), or end. One pass for both bytes: provider events are a few short
// lines each, so two memchr calls per line (one per byte) cost more in calls than in scanning.
const char* FindLineEnd(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  for (; end - p >= 16; p += 16) {
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    int mask =
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(block, lf), _mm_cmpeq_epi8(block, cr)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
  }
#endif
  for (; p < end; ++p) {
    if (*p == '\n' || *p == '\r') return p;
  }
  return end;
}

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

void SseDecoder::Reset() {
  status_ = OkStatus();
  bom_checked_ = false;
  skip_lf_ = false;
  line_.clear();
  event_.clear();
  data_.clear();
  data_lines_ = 0;
  id_.clear();
  retry_ms_.reset();
}

void SseDecoder::Fail(std::string message) {
  status_ = Error(ErrorCode::kProtocol, std::move(message));
  line_.clear();
  data_.clear();
  data_lines_ = 0;
}

void SseDecoder::FeedImpl(std::string_view bytes, RawSink sink, void* context) {
  if (!status_.ok()) return;
  if (!bom_checked_) {
    // The BOM may itself arrive split; hold up to three bytes in line_ until it can be decided.
    size_t take = std::min(bytes.size(), kBom.size() - line_.size());
    line_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (line_.size() < kBom.size() && kBom.starts_with(line_)) return;
    bom_checked_ = true;
    std::string head = std::move(line_);
    line_.clear();
    std::string_view rest = head;
    if (rest.starts_with(kBom)) rest.remove_prefix(kBom.size());
    ProcessBytes(rest, sink, context);
  }
  ProcessBytes(bytes, sink, context);
}

void SseDecoder::ProcessBytes(std::string_view bytes, RawSink sink, void* context) {
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  if (skip_lf_ && p < end) {
    skip_lf_ = false;
    if (*p == '\n') ++p;
  }
  while (p < end && status_.ok()) {
    const char* eol = FindLineEnd(p, end);
    size_t eol_bytes = 1;
    if (eol != end && *eol == '\r') {
      if (eol + 1 < end) {
        if (eol[1] == '\n') eol_bytes = 2;
      } else {
        skip_lf_ = true;  // CR ends this piece; an LF opening the next one is part of it.
      }
    } else if (eol == end) {
      line_.append(p, end);
      if (line_.size() > max_line_bytes_) {
        Fail("SSE stream: a line is longer than " + std::to_string(max_line_bytes_) +
             " bytes; the server is not sending a valid event stream");
      }
      return;
    }
    if (line_.empty()) {
      ProcessLine(std::string_view(p, eol - p), sink, context);
    } else {
      line_.append(p, eol);
      ProcessLine(line_, sink, context);
      line_.clear();
    }
    p = eol + eol_bytes;
  }
}

void SseDecoder::ProcessLine(std::string_view line, RawSink sink, void* context) {
  if (line.size() > max_line_bytes_) {
    Fail("SSE stream: a line is longer than " + std::to_string(max_line_bytes_) +
         " bytes; the server is not sending a valid event stream");
    return;
  }
  if (line.empty()) {
    if (data_lines_ > 0) {
      std::string_view type = event_.empty() ? std::string_view("message") : event_;
      sink(context, SseEvent{type, data_, id_, retry_ms_});
    }
    data_.clear();
    data_lines_ = 0;
    event_.clear();
    return;
  }
  if (line.front() == ':') return;  // Comment (keep-alive).
  std::string_view field = line;
  std::string_view value;
  if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (Equals(field, "data")) {
    if (data_lines_ > 0) data_.push_back('\n');
    data_.append(value);
    ++data_lines_;
    if (data_.size() > max_event_bytes_) {
      Fail("SSE stream: an event's data is longer than " + std::to_string(max_event_bytes_) +
           " bytes; the server is not sending a valid event stream");
    }
  } else if (Equals(field, "event")) {
    event_.assign(value);
  } else if (Equals(field, "id")) {
    if (value.find('\0') == std::string_view::npos) id_.assign(value);
  } else if (Equals(field, "retry")) {
    if (value.empty()) return;
    int64_t ms = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return;
      if (ms > (std::numeric_limits<int64_t>::max() - 9) / 10) return;  // Absurd; ignore.
      ms = ms * 10 + (c - '0');
    }
    retry_ms_ = ms;
  }
  // Any other field is ignored.
}

void NdjsonDecoder::Reset() {
  status_ = OkStatus();
  line_.clear();
}

void NdjsonDecoder::Fail() {
  status_ = Error(ErrorCode::kProtocol,
                  "NDJSON stream: a line is longer than " + std::to_string(max_line_bytes_) +
                      " bytes; the server is not sending one JSON value per line");
  line_.clear();
}

void NdjsonDecoder::FeedImpl(std::string_view bytes, RawSink sink, void* context) {
  auto deliver = [&](std::string_view line) {
    if (line.size() > max_line_bytes_) {
      Fail();
      return;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!IsBlank(line)) sink(context, line);
  };
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end && status_.ok()) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) {
      line_.append(p, end);
      if (line_.size() > max_line_bytes_) Fail();
      return;
    }
    if (line_.empty()) {
      deliver(std::string_view(p, nl - p));
    } else {
      line_.append(p, nl);
      deliver(line_);
      line_.clear();
    }
    p = nl + 1;
  }
}

void NdjsonDecoder::FinishImpl(RawSink sink, void* context) {
  if (!status_.ok() || line_.empty()) return;
  std::string_view line = line_;
  if (line.back() == '\r') line.remove_suffix(1);
  if (!IsBlank(line)) sink(context, line);
  line_.clear();
}

}  // namespace lai::http
