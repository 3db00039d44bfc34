#include "http/retry.h"

#include <gtest/gtest.h>

namespace lai::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

// 2026-11-27 01:00:00 UTC.
system_clock::time_point Now() {
  return system_clock::time_point(
             std::chrono::sys_days(std::chrono::year(2026) / std::chrono::November / 27)) +
         std::chrono::hours(1);
}

TEST(RetryTest, RetryableStatuses) {
  for (int s : {408, 409, 429, 500, 502, 503, 504, 529, 599})
    EXPECT_TRUE(IsRetryableStatus(s)) << s;
  for (int s : {200, 204, 400, 401, 403, 404, 413, 422, 600})
    EXPECT_FALSE(IsRetryableStatus(s)) << s;
}

TEST(RetryTest, BackoffGrowsAndIsCapped) {
  BackoffPolicy policy{.initial = milliseconds(500),
                       .max = milliseconds(8000),
                       .multiplier = 2,
                       .jitter = Jitter::kFull};
  EXPECT_EQ(BackoffDelay(policy, 0, 0.999999), milliseconds(499));
  EXPECT_EQ(BackoffDelay(policy, 1, 0.5), milliseconds(500));
  EXPECT_EQ(BackoffDelay(policy, 3, 0.999999), milliseconds(3999));
  EXPECT_EQ(BackoffDelay(policy, 10, 0.5), milliseconds(4000));
  EXPECT_EQ(BackoffDelay(policy, 1000, 0.5), milliseconds(4000));  // No overflow.
  EXPECT_EQ(BackoffDelay(policy, 2, 0.0), milliseconds(0));
}

TEST(RetryTest, BackoffJitterBounds) {
  BackoffPolicy full{.initial = milliseconds(1000), .max = milliseconds(60000)};
  BackoffPolicy equal = full;
  equal.jitter = Jitter::kEqual;
  for (int attempt = 0; attempt < 8; ++attempt) {
    milliseconds d = std::min(milliseconds(1000 << attempt), milliseconds(60000));
    for (double r : {0.0, 0.25, 0.5, 0.75, 0.999}) {
      milliseconds f = BackoffDelay(full, attempt, r);
      milliseconds e = BackoffDelay(equal, attempt, r);
      EXPECT_GE(f, milliseconds(0));
      EXPECT_LE(f, d);
      EXPECT_GE(e, d / 2);
      EXPECT_LE(e, d);
    }
  }
  // Out-of-range random numbers are clamped.
  EXPECT_EQ(BackoffDelay(full, 0, 7.0), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(full, 0, -1.0), milliseconds(0));
}

TEST(RetryTest, RetryAfterMilliseconds) {
  EXPECT_EQ(ParseRetryAfter("1500", "", Now()), milliseconds(1500));
  EXPECT_EQ(ParseRetryAfter(" 1.5 ", "", Now()), milliseconds(1));
  EXPECT_EQ(ParseRetryAfter("0", "", Now()), milliseconds(0));
  // retry-after-ms wins over retry-after; garbage in it falls back to retry-after.
  EXPECT_EQ(ParseRetryAfter("250", "10", Now()), milliseconds(250));
  EXPECT_EQ(ParseRetryAfter("soon", "10", Now()), milliseconds(10000));
}

TEST(RetryTest, RetryAfterSeconds) {
  EXPECT_EQ(ParseRetryAfter("", "2", Now()), milliseconds(2000));
  EXPECT_EQ(ParseRetryAfter("", "2.5", Now()), milliseconds(2500));
  EXPECT_EQ(ParseRetryAfter("", "3600", Now()), milliseconds(60000));  // Capped.
  EXPECT_EQ(ParseRetryAfter("", "3600", Now(), seconds(5)), milliseconds(5000));
}

TEST(RetryTest, RetryAfterGarbageOrNegative) {
  for (const char* bad : {"", "-1", "-0.5", "abc", "1e3", "12abc", ".", "1 2", "+5", "NaN"}) {
    EXPECT_EQ(ParseRetryAfter(bad, bad, Now()), std::nullopt) << bad;
  }
}

TEST(RetryTest, RetryAfterHttpDates) {
  // IMF-fixdate, 30 s ahead.
  EXPECT_EQ(ParseRetryAfter("", "Fri, 27 Nov 2026 01:00:30 GMT", Now()), milliseconds(30000));
  // RFC 850 with a two-digit year.
  EXPECT_EQ(ParseRetryAfter("", "Friday, 27-Nov-26 01:00:45 GMT", Now()), milliseconds(45000));
  // asctime, with a space-padded day.
  EXPECT_EQ(ParseRetryAfter("", "Fri Nov 27 01:00:05 2026", Now()), milliseconds(5000));
  system_clock::time_point dec1 = system_clock::time_point(
      std::chrono::sys_days(std::chrono::year(2026) / std::chrono::December / 1));
  EXPECT_EQ(ParseRetryAfter("", "Tue Dec  1 00:00:01 2026", dec1), milliseconds(1000));
  // Far ahead: capped. Already past: nullopt (use the backoff instead).
  EXPECT_EQ(ParseRetryAfter("", "Sat, 28 Nov 2026 01:00:00 GMT", Now()), milliseconds(60000));
  EXPECT_EQ(ParseRetryAfter("", "Thu, 26 Nov 2026 01:00:00 GMT", Now()), std::nullopt);
}

TEST(RetryTest, HttpDateForms) {
  const auto expected = system_clock::time_point(std::chrono::sys_days(std::chrono::year(1994) /
                                                                       std::chrono::November / 6)) +
                        std::chrono::hours(8) + std::chrono::minutes(49) + std::chrono::seconds(37);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", Now()), expected);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", Now()), expected);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994", Now()), expected);
  // RFC 850 years more than 50 years ahead belong to the previous century.
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", Now()), expected);
  auto in_2030 = ParseHttpDate("Wednesday, 06-Nov-30 08:49:37 GMT", Now());
  ASSERT_TRUE(in_2030.has_value());
  EXPECT_EQ(std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(*in_2030)).year(),
            std::chrono::year(2030));
}

TEST(RetryTest, HttpDateRejectsMalformed) {
  for (const char* bad :
       {"", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing", "Xyz, 06 Nov 1994 08:49:37 GMT"}) {
    EXPECT_EQ(ParseHttpDate(bad, Now()), std::nullopt) << bad;
  }
}

TEST(RateLimiterTest, SlidingWindow) {
  RateLimiter limiter(3);
  auto t0 = RateLimiter::Clock::time_point() + std::chrono::hours(1);
  EXPECT_EQ(limiter.Reserve(t0), std::chrono::nanoseconds(0));
  EXPECT_EQ(limiter.Reserve(t0 + seconds(10)), std::chrono::nanoseconds(0));
  EXPECT_EQ(limiter.Reserve(t0 + seconds(20)), std::chrono::nanoseconds(0));
  // The 4th within the minute waits until the 1st leaves the window; the 5th books after it.
  EXPECT_EQ(limiter.Reserve(t0 + seconds(30)), seconds(30));
  EXPECT_EQ(limiter.Reserve(t0 + seconds(30)), seconds(40));
  // Well after the window: free again.
  EXPECT_EQ(limiter.Reserve(t0 + seconds(200)), std::chrono::nanoseconds(0));
}

TEST(RateLimiterTest, ZeroMeansUnlimited) {
  RateLimiter limiter(0);
  auto t0 = RateLimiter::Clock::time_point() + std::chrono::hours(1);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limiter.Reserve(t0), std::chrono::nanoseconds(0));
}

TEST(CircuitBreakerTest, OpensHalfOpensAndCloses) {
  CircuitBreaker breaker({.failure_threshold = 3, .cool_down = milliseconds(1000)});
  using State = CircuitBreaker::State;
  auto t = CircuitBreaker::Clock::time_point() + std::chrono::hours(1);
  EXPECT_TRUE(breaker.Allow(t));
  breaker.RecordFailure(t);
  breaker.RecordFailure(t);
  breaker.RecordSuccess();  // Resets the consecutive count.
  breaker.RecordFailure(t);
  breaker.RecordFailure(t);
  EXPECT_EQ(breaker.state(t), State::kClosed);
  breaker.RecordFailure(t);
  EXPECT_EQ(breaker.state(t), State::kOpen);
  EXPECT_FALSE(breaker.Allow(t + milliseconds(999)));
  EXPECT_EQ(breaker.RetryIn(t + milliseconds(400)), milliseconds(600));
  // After the cool-down exactly one probe passes.
  EXPECT_EQ(breaker.state(t + milliseconds(1000)), State::kHalfOpen);
  EXPECT_TRUE(breaker.Allow(t + milliseconds(1000)));
  EXPECT_FALSE(breaker.Allow(t + milliseconds(1001)));
  // The probe fails: open again for a full cool-down from now.
  breaker.RecordFailure(t + milliseconds(1100));
  EXPECT_EQ(breaker.state(t + milliseconds(1100)), State::kOpen);
  EXPECT_FALSE(breaker.Allow(t + milliseconds(2000)));
  EXPECT_TRUE(breaker.Allow(t + milliseconds(2100)));
  // The probe succeeds: closed, everything passes.
  breaker.RecordSuccess();
  EXPECT_EQ(breaker.state(t + milliseconds(2100)), State::kClosed);
  EXPECT_TRUE(breaker.Allow(t + milliseconds(2100)));
  EXPECT_TRUE(breaker.Allow(t + milliseconds(2100)));
  EXPECT_EQ(CircuitStateName(State::kHalfOpen), "half-open");
}

}  // namespace
}  // namespace lai::http
