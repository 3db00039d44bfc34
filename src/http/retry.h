// Retry policy pieces shared by the provider adapters: which statuses to retry, backoff delays,
// Retry-After parsing, a per-profile rate limiter and a per-endpoint circuit breaker.
// Free functions are pure (thread-safe); RateLimiter and CircuitBreaker are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>

namespace lai::http {

// 408, 409, 429 and every 5xx (including Anthropic's 529 "overloaded"), as the OpenAI and
// Anthropic SDKs do. Connection errors (kUnavailable) are retryable too; that is the caller's call.
bool IsRetryableStatus(int status);

enum class Jitter : uint8_t {
  kFull,   // Uniform in [0, d].
  kEqual,  // Uniform in [d/2, d].
};

struct BackoffPolicy {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{8'000};
  double multiplier = 2.0;
  Jitter jitter = Jitter::kFull;
};

// The delay before retry number `attempt` (0 = the first retry): min(max, initial *
// multiplier^attempt) with the policy's jitter. `random01` is uniform in [0, 1) (injected so
// tests are deterministic).
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt, double random01);

// The server's requested delay from the `retry-after-ms` header (milliseconds) or, failing that,
// `retry-after` (seconds, or an HTTP-date in IMF-fixdate, RFC 850 or asctime form, relative to
// `now`). Pass empty views for absent headers. nullopt when both are absent, malformed, negative
// or a date already past (use BackoffDelay then); otherwise at most `cap`.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view retry_after_ms, std::string_view retry_after,
    std::chrono::system_clock::time_point now,
    std::chrono::milliseconds cap = std::chrono::milliseconds(60'000));

// Parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate and the two obsolete forms). nullopt if it
// is none of them or names an impossible date.
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(
    std::string_view text, std::chrono::system_clock::time_point now);

// Requests-per-minute limit over a sliding one-minute window. Reserve() books the earliest slot
// the limit allows and returns how long the caller must wait before sending (zero = now); booked
// slots are never given to another caller. Thread-safe.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // 0 requests per minute means unlimited.
  explicit RateLimiter(int requests_per_minute) : requests_per_minute_(requests_per_minute) {}

  std::chrono::nanoseconds Reserve(Clock::time_point now);

 private:
  const int requests_per_minute_;
  std::mutex mutex_;
  std::deque<Clock::time_point> slots_;  // Guarded by mutex_. Booked send times, ascending.
};

struct CircuitBreakerOptions {
  int failure_threshold = 5;                    // Consecutive failures that open the circuit.
  std::chrono::milliseconds cool_down{30'000};  // Open -> half-open after this long.
};

// Closed: everything passes. Open after `failure_threshold` consecutive failures: nothing passes
// until `cool_down` has elapsed; then half-open: exactly one probe passes, and its outcome closes
// the circuit (success) or opens it again for another cool-down (failure). Thread-safe.
class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(CircuitBreakerOptions options = {}) : options_(options) {}

  // True if a request may be sent now; in half-open state the first caller gets the probe.
  // A caller that gets true must later call RecordSuccess or RecordFailure.
  bool Allow(Clock::time_point now);
  void RecordSuccess();
  void RecordFailure(Clock::time_point now);

  State state(Clock::time_point now);
  // While open: how long until a probe will be let through; zero otherwise.
  std::chrono::milliseconds RetryIn(Clock::time_point now);

 private:
  const CircuitBreakerOptions options_;
  std::mutex mutex_;
  // Guarded by mutex_.
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  Clock::time_point opened_at_{};
  bool probe_in_flight_ = false;
};

std::string_view CircuitStateName(CircuitBreaker::State state);

}  // namespace lai::http
