#include "http/retry.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

namespace lai::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A non-negative decimal number ("12", "1.5"); nullopt for anything else.
std::optional<double> ParseDecimal(std::string_view s) {
  s = Trim(s);
  if (s.empty()) return std::nullopt;
  double value = 0;
  size_t i = 0;
  size_t digits = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, ++digits) {
    value = value * 10 + (s[i] - '0');
  }
  if (i < s.size() && s[i] == '.') {
    double scale = 0.1;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, ++digits) {
      value += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  if (i != s.size() || digits == 0 || !std::isfinite(value)) return std::nullopt;
  return value;
}

// Reads the input left to right; every Take* returns false (and stays false) on a mismatch.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return s_.empty(); }
  bool TakeChar(char c) {
    if (s_.empty() || s_.front() != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  // Exactly `min`..`max` digits.
  bool TakeNumber(size_t min, size_t max, int* out) {
    size_t n = 0;
    int value = 0;
    while (n < s_.size() && n < max && std::isdigit(static_cast<unsigned char>(s_[n]))) {
      value = value * 10 + (s_[n] - '0');
      ++n;
    }
    if (n < min) return false;
    s_.remove_prefix(n);
    *out = value;
    return true;
  }
  bool TakeMonth(unsigned* month) {
    for (size_t i = 0; i < kMonths.size(); ++i) {
      if (s_.starts_with(kMonths[i])) {
        s_.remove_prefix(3);
        *month = static_cast<unsigned>(i + 1);
        return true;
      }
    }
    return false;
  }
  template <size_t N>
  bool TakeWord(const std::array<std::string_view, N>& words) {
    for (std::string_view w : words) {
      if (s_.starts_with(w)) {
        s_.remove_prefix(w.size());
        return true;
      }
    }
    return false;
  }
  bool TakeLiteral(std::string_view lit) {
    if (!s_.starts_with(lit)) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // HH:MM:SS
  bool TakeTime(int* h, int* m, int* sec) {
    return TakeNumber(2, 2, h) && TakeChar(':') && TakeNumber(2, 2, m) && TakeChar(':') &&
           TakeNumber(2, 2, sec) && *h < 24 && *m < 60 && *sec <= 60;
  }

 private:
  std::string_view s_;
};

std::optional<system_clock::time_point> MakeTime(int year, unsigned month, int day, int h, int m,
                                                 int sec) {
  std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(month),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  return system_clock::time_point(std::chrono::sys_days(ymd)) + std::chrono::hours(h) +
         std::chrono::minutes(m) + std::chrono::seconds(sec);
}

}  // namespace

bool IsRetryableStatus(int status) {
  return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt, double random01) {
  random01 = std::clamp(random01, 0.0, 1.0);
  double ceiling = static_cast<double>(policy.max.count());
  double delay = static_cast<double>(policy.initial.count()) *
                 std::pow(std::max(policy.multiplier, 1.0), std::max(attempt, 0));
  delay = std::min(delay, ceiling);
  if (!std::isfinite(delay) || delay < 0) delay = ceiling;
  double jittered =
      policy.jitter == Jitter::kFull ? delay * random01 : delay / 2 + (delay / 2) * random01;
  return milliseconds(static_cast<int64_t>(jittered));
}

std::optional<system_clock::time_point> ParseHttpDate(std::string_view text,
                                                      system_clock::time_point now) {
  Cursor c(Trim(text));
  int day = 0, year = 0, h = 0, m = 0, sec = 0;
  unsigned month = 0;
  if (Cursor probe = c; probe.TakeWord(kLongDays) && probe.TakeChar(',')) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT".
    c = probe;
    if (!(c.TakeChar(' ') && c.TakeNumber(2, 2, &day) && c.TakeChar('-') && c.TakeMonth(&month) &&
          c.TakeChar('-') && c.TakeNumber(2, 2, &year) && c.TakeChar(' ') &&
          c.TakeTime(&h, &m, &sec) && c.TakeLiteral(" GMT") && c.done())) {
      return std::nullopt;
    }
    // RFC 9110: a two-digit year more than 50 years ahead means the most recent past such year.
    int this_year = static_cast<int>(
        std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(now)).year());
    year += this_year / 100 * 100;
    if (year > this_year + 50) year -= 100;
    return MakeTime(year, month, day, h, m, sec);
  }
  if (!c.TakeWord(kShortDays)) return std::nullopt;
  if (c.TakeChar(',')) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    if (!(c.TakeChar(' ') && c.TakeNumber(2, 2, &day) && c.TakeChar(' ') && c.TakeMonth(&month) &&
          c.TakeChar(' ') && c.TakeNumber(4, 4, &year) && c.TakeChar(' ') &&
          c.TakeTime(&h, &m, &sec) && c.TakeLiteral(" GMT") && c.done())) {
      return std::nullopt;
    }
    return MakeTime(year, month, day, h, m, sec);
  }
  // asctime: "Sun Nov  6 08:49:37 1994".
  if (!(c.TakeChar(' ') && c.TakeMonth(&month) && c.TakeChar(' '))) return std::nullopt;
  if (!c.TakeChar(' ')) {
    if (!c.TakeNumber(2, 2, &day)) return std::nullopt;
  } else if (!c.TakeNumber(1, 1, &day)) {
    return std::nullopt;
  }
  if (!(c.TakeChar(' ') && c.TakeTime(&h, &m, &sec) && c.TakeChar(' ') &&
        c.TakeNumber(4, 4, &year) && c.done())) {
    return std::nullopt;
  }
  return MakeTime(year, month, day, h, m, sec);
}

std::optional<milliseconds> ParseRetryAfter(std::string_view retry_after_ms,
                                            std::string_view retry_after,
                                            system_clock::time_point now, milliseconds cap) {
  auto capped = [&](double ms) {
    return milliseconds(static_cast<int64_t>(std::min(ms, static_cast<double>(cap.count()))));
  };
  if (std::optional<double> ms = ParseDecimal(retry_after_ms)) return capped(*ms);
  if (std::optional<double> seconds = ParseDecimal(retry_after)) return capped(*seconds * 1000);
  if (std::optional<system_clock::time_point> at = ParseHttpDate(retry_after, now)) {
    if (*at < now) return std::nullopt;
    return capped(static_cast<double>(std::chrono::duration_cast<milliseconds>(*at - now).count()));
  }
  return std::nullopt;
}

std::chrono::nanoseconds RateLimiter::Reserve(Clock::time_point now) {
  if (requests_per_minute_ <= 0) return std::chrono::nanoseconds(0);
  constexpr auto kWindow = std::chrono::minutes(1);
  std::lock_guard lock(mutex_);
  while (!slots_.empty() && slots_.front() + kWindow <= now) slots_.pop_front();
  // Only the last `requests_per_minute_` bookings constrain the next one.
  while (slots_.size() > static_cast<size_t>(requests_per_minute_)) slots_.pop_front();
  Clock::time_point slot = now;
  if (slots_.size() == static_cast<size_t>(requests_per_minute_)) {
    slot = std::max(now, slots_.front() + kWindow);
  }
  if (!slots_.empty()) slot = std::max(slot, slots_.back());
  slots_.push_back(slot);
  return slot - now;
}

bool CircuitBreaker::Allow(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now - opened_at_ < options_.cool_down) return false;
      state_ = State::kHalfOpen;
      probe_in_flight_ = true;
      return true;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::RecordSuccess() {
  std::lock_guard lock(mutex_);
  state_ = State::kClosed;
  consecutive_failures_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::RecordFailure(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  probe_in_flight_ = false;
  if (state_ == State::kHalfOpen) {
    state_ = State::kOpen;
    opened_at_ = now;
    return;
  }
  if (state_ == State::kOpen) return;  // A request admitted before the circuit opened.
  if (++consecutive_failures_ >= options_.failure_threshold) {
    state_ = State::kOpen;
    opened_at_ = now;
  }
}

CircuitBreaker::State CircuitBreaker::state(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (state_ == State::kOpen && now - opened_at_ >= options_.cool_down) return State::kHalfOpen;
  return state_;
}

std::chrono::milliseconds CircuitBreaker::RetryIn(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (state_ != State::kOpen || now - opened_at_ >= options_.cool_down) return milliseconds(0);
  return std::chrono::ceil<milliseconds>(opened_at_ + options_.cool_down - now);
}

std::string_view CircuitStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

}  // namespace lai::http
