// Incremental decoders for streamed provider replies: Server-Sent Events (WHATWG event-stream
// rules) and newline-delimited JSON. Each decoder is thread-compatible: one stream, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/result.h"

namespace lai::http {

namespace internal {
// The sinks are called through a plain function pointer plus this pointer: no std::function
// allocation per Feed call.
template <typename T>
void* ErasePointer(T* p) {
  return const_cast<void*>(static_cast<const void*>(p));
}
}  // namespace internal

// One dispatched event. The views point into the decoder's buffers and are valid only during
// the sink call that receives them.
struct SseEvent {
  std::string_view event;  // The `event:` field; "message" when the event had none (WHATWG).
  std::string_view data;   // `data:` lines joined with "\n".
  std::string_view id;     // The last event id seen on this stream (it persists across events).
  std::optional<int64_t> retry_ms;  // The last valid `retry:` value seen on this stream.
};

// Decodes a text/event-stream body fed in arbitrary pieces (a line, an event, a UTF-8 sequence or
// a CRLF may be split anywhere). A UTF-8 BOM at the start is skipped; lines end in CRLF, LF or CR;
// lines starting with ':' are comments; an empty line dispatches the pending event unless it has
// no data; an incomplete event at the end of the stream is discarded (WHATWG).
// Thread-compatible.
class SseDecoder {
 public:
  // A line longer than `max_line_bytes`, or event data longer than `max_event_bytes`, makes the
  // stream invalid: status() turns to kProtocol and further input is ignored.
  explicit SseDecoder(size_t max_line_bytes = 16u << 20, size_t max_event_bytes = 64u << 20)
      : max_line_bytes_(max_line_bytes), max_event_bytes_(max_event_bytes) {}

  // Calls sink(const SseEvent&) for every event completed by `bytes`. The sink must not call
  // back into this decoder.
  template <typename Sink>
  void Feed(std::string_view bytes, Sink&& sink) {
    FeedImpl(bytes, &Invoke<std::remove_reference_t<Sink>>, internal::ErasePointer(&sink));
  }

  // OK unless the stream broke a limit (see the constructor); check it after Feed.
  const Status& status() const { return status_; }
  // True while an event (fields seen, no dispatching blank line yet) or a line is pending; at the
  // end of a stream that means the last event was truncated and is dropped.
  bool has_pending_input() const { return !line_.empty() || data_lines_ > 0 || !event_.empty(); }
  // Forgets everything, as for a new stream.
  void Reset();

 private:
  using RawSink = void (*)(void*, const SseEvent&);
  template <typename F>
  static void Invoke(void* f, const SseEvent& e) {
    (*static_cast<F*>(f))(e);
  }
  void FeedImpl(std::string_view bytes, RawSink sink, void* context);
  void ProcessBytes(std::string_view bytes, RawSink sink, void* context);
  void ProcessLine(std::string_view line, RawSink sink, void* context);
  void Fail(std::string message);

  size_t max_line_bytes_;
  size_t max_event_bytes_;
  Status status_;
  bool bom_checked_ = false;
  bool skip_lf_ = false;   // The previous piece ended in CR; a leading LF belongs to that line.
  std::string line_;       // Incomplete line carried over between pieces.
  std::string event_;      // Event type buffer.
  std::string data_;       // Data buffer (lines joined with "\n").
  size_t data_lines_ = 0;  // Number of `data` fields in the pending event.
  std::string id_;         // Last event id.
  std::optional<int64_t> retry_ms_;
};

// Decodes application/x-ndjson: one JSON value per line. Lines may be split anywhere; a trailing
// CR is dropped; blank (whitespace-only) lines are skipped; Finish() delivers a final line that
// had no newline. Thread-compatible.
class NdjsonDecoder {
 public:
  // A line longer than `max_line_bytes` turns status() to kProtocol; further input is ignored.
  explicit NdjsonDecoder(size_t max_line_bytes = 64u << 20) : max_line_bytes_(max_line_bytes) {}

  // Calls sink(std::string_view line) per complete non-blank line (without its line ending). The
  // view is valid only during the call; the sink must not call back into this decoder.
  template <typename Sink>
  void Feed(std::string_view bytes, Sink&& sink) {
    FeedImpl(bytes, &Invoke<std::remove_reference_t<Sink>>, internal::ErasePointer(&sink));
  }
  // End of stream: delivers the unterminated last line, if any and not blank.
  template <typename Sink>
  void Finish(Sink&& sink) {
    FinishImpl(&Invoke<std::remove_reference_t<Sink>>, internal::ErasePointer(&sink));
  }

  const Status& status() const { return status_; }
  void Reset();

 private:
  using RawSink = void (*)(void*, std::string_view);
  template <typename F>
  static void Invoke(void* f, std::string_view line) {
    (*static_cast<F*>(f))(line);
  }
  void FeedImpl(std::string_view bytes, RawSink sink, void* context);
  void FinishImpl(RawSink sink, void* context);
  void Fail();

  size_t max_line_bytes_;
  Status status_;
  std::string line_;
};

}  // namespace lai::http
