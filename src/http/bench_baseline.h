// Benchmark helpers shared by the decode benchmarks (http SSE, llm adapters): the naive
// std::getline SSE decoder they print as a baseline, and the MB/s timing loop.
// Thread-compatible: a NaiveSseDecoder is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <sstream>
#include <string>
#include <string_view>

namespace lai::http {

// The straightforward way: buffer, std::getline, substr. Handles LF/CRLF only. The sink gets
// (event name, data) per event; the name is empty when the event had none.
class NaiveSseDecoder {
 public:
  template <typename Sink>
  void Feed(std::string_view bytes, Sink&& sink) {
    pending_.append(bytes);
    std::istringstream in(pending_);
    std::string line;
    std::string rest;
    while (std::getline(in, line)) {
      if (in.eof()) {  // No newline after it: incomplete.
        rest = line;
        break;
      }
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (has_data_) sink(event_, data_);
        event_.clear();
        data_.clear();
        has_data_ = false;
      } else if (line.rfind("data:", 0) == 0) {
        std::string value = line.substr(5);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (has_data_) data_ += "\n";
        data_ += value;
        has_data_ = true;
      } else if (line.rfind("event:", 0) == 0) {
        event_ = line.substr(6);
        if (!event_.empty() && event_[0] == ' ') event_.erase(0, 1);
      }
    }
    pending_ = rest;
  }

 private:
  std::string pending_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
};

// Runs `pass` once to warm up, then repeatedly for at least `min_time`; returns the throughput
// in MB/s (1e6 bytes) for a pass over `stream_bytes`.
template <typename PassFn>
double MeasureMbPerSecond(size_t stream_bytes, std::chrono::milliseconds min_time, PassFn pass) {
  using Clock = std::chrono::steady_clock;
  pass();  // Warm-up.
  size_t passes = 0;
  Clock::time_point start = Clock::now();
  Clock::duration elapsed{};
  do {
    pass();
    ++passes;
    elapsed = Clock::now() - start;
  } while (elapsed < min_time);
  double seconds = std::chrono::duration<double>(elapsed).count();
  return static_cast<double>(stream_bytes) * static_cast<double>(passes) / seconds / 1e6;
}

}  // namespace lai::http
