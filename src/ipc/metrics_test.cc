#include "ipc/metrics.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace lai::ipc {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

// True when `line` is one whole line of `text`.
bool HasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// One sample line of the text exposition format: `name{label="value",...} number`.
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // Values unescaped.
  double value = 0;
};

bool IsNameChar(char c, bool first, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (allow_colon && c == ':') || (!first && c >= '0' && c <= '9');
}

// Consumes a metric name (allow_colon) or label name from the front of `rest`.
std::optional<std::string> TakeName(std::string_view& rest, bool allow_colon) {
  size_t length = 0;
  while (length < rest.size() && IsNameChar(rest[length], length == 0, allow_colon)) ++length;
  if (length == 0) return std::nullopt;
  std::string name(rest.substr(0, length));
  rest.remove_prefix(length);
  return name;
}

// Parses a sample line by the grammar of the format; nullopt when it does not conform.
std::optional<Sample> ParseSample(std::string_view rest) {
  Sample sample;
  std::optional<std::string> name = TakeName(rest, /*allow_colon=*/true);
  if (!name) return std::nullopt;
  sample.name = *name;
  if (!rest.empty() && rest.front() == '{') {
    rest.remove_prefix(1);
    while (true) {
      std::optional<std::string> label = TakeName(rest, /*allow_colon=*/false);
      if (!label || rest.substr(0, 2) != "=\"") return std::nullopt;
      rest.remove_prefix(2);
      std::string value;
      while (true) {
        if (rest.empty() || rest.front() == '\n') return std::nullopt;
        char c = rest.front();
        rest.remove_prefix(1);
        if (c == '"') break;
        if (c == '\\') {
          if (rest.empty()) return std::nullopt;
          char escaped = rest.front();
          rest.remove_prefix(1);
          if (escaped == 'n') {
            c = '\n';
          } else if (escaped == '\\' || escaped == '"') {
            c = escaped;
          } else {
            return std::nullopt;
          }
        }
        value += c;
      }
      sample.labels.emplace_back(*label, value);
      if (rest.empty()) return std::nullopt;
      char separator = rest.front();
      rest.remove_prefix(1);
      if (separator == '}') break;
      if (separator != ',') return std::nullopt;
    }
  }
  if (rest.empty() || rest.front() != ' ') return std::nullopt;
  rest.remove_prefix(1);
  if (rest == "+Inf" || rest == "-Inf" || rest == "NaN") return sample;
  if (rest.empty() || rest.front() == ' ' || rest.front() == '+') return std::nullopt;
  std::string number(rest);
  char* end = nullptr;
  sample.value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return std::nullopt;
  return sample;
}

TEST(LatencyHistogramTest, BucketBoundsAreInclusiveUpperBounds) {
  EXPECT_EQ(LatencyHistogram::BucketIndex(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(100), 0u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(101), 1u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(250), 1u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(251), 2u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(1'000), 3u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(1'001), 4u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(1'000'000), 12u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(10 * kSecond), 24u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(10 * kSecond + 1), 25u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(std::numeric_limits<uint64_t>::max()), 25u);
  EXPECT_EQ(kLatencyBucketCount, 26u);
}

TEST(LatencyHistogramTest, RecordsSumCountAndBuckets) {
  LatencyHistogram histogram;
  histogram.Record(100);
  histogram.Record(101);
  histogram.Record(20 * kSecond);
  EXPECT_EQ(histogram.count(), 3u);
  EXPECT_EQ(histogram.sum_ns(), 201 + 20 * kSecond);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 3u);
  EXPECT_EQ(snapshot.sum_ns, 201 + 20 * kSecond);
  EXPECT_EQ(snapshot.buckets[0], 1u);
  EXPECT_EQ(snapshot.buckets[1], 1u);
  EXPECT_EQ(snapshot.buckets[25], 1u);
}

// A run of requests timed together: each lands in the bucket of their mean; the sum is exact.
TEST(LatencyHistogramTest, RecordsARunOfRequestsAtTheirMean) {
  LatencyHistogram histogram;
  histogram.Record(601, 3);  // Mean 200 ns: the (100, 250] bucket.
  histogram.Record(50);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 4u);
  EXPECT_EQ(snapshot.sum_ns, 651u);
  EXPECT_EQ(snapshot.buckets[0], 1u);
  EXPECT_EQ(snapshot.buckets[1], 3u);
}

TEST(LatencyHistogramTest, ApproxQuantileIsUpperBoundOfBucket) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.ApproxQuantile(0.5), 0.0);  // Empty.
  for (int i = 0; i < 90; ++i) histogram.Record(80);
  for (int i = 0; i < 10; ++i) histogram.Record(3'000'000);
  EXPECT_EQ(histogram.ApproxQuantile(0.0), 100.0);
  EXPECT_EQ(histogram.ApproxQuantile(0.5), 100.0);
  EXPECT_EQ(histogram.ApproxQuantile(0.9), 100.0);
  EXPECT_EQ(histogram.ApproxQuantile(0.91), 5'000'000.0);
  EXPECT_EQ(histogram.ApproxQuantile(1.0), 5'000'000.0);
  EXPECT_EQ(histogram.ApproxQuantile(7.0), 5'000'000.0);  // Clamped.
  histogram.Record(11 * kSecond);
  EXPECT_TRUE(std::isinf(histogram.ApproxQuantile(1.0)));
}

TEST(MetricsRegistryTest, RendersCumulativeBucketsInSeconds) {
  MetricsRegistry registry(1);
  registry.SetTypeName(1, "echo");
  MetricsShard& shard = registry.shard(0);
  shard.RecordRequest(1, 50, 10, 20, true);
  shard.RecordRequest(1, 100, 10, 20, true);
  shard.RecordRequest(1, 300, 10, 20, false);
  shard.RecordRequest(1, 20 * kSecond, 10, 20, true);

  const std::string text = registry.RenderPrometheus();
  const std::string bucket = "lapce_ai_ipc_request_duration_seconds_bucket{type=\"echo\",le=";
  EXPECT_TRUE(HasLine(text, bucket + "\"1e-07\"} 2")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"2.5e-07\"} 2")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"5e-07\"} 3")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"0.00025\"} 3")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"1\"} 3")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"10\"} 3")) << text;
  EXPECT_TRUE(HasLine(text, bucket + "\"+Inf\"} 4")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_request_duration_seconds_sum{type=\"echo\"} 20.00000045"))
      << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_request_duration_seconds_count{type=\"echo\"} 4"))
      << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_requests_total{type=\"echo\"} 4")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_errors_total{type=\"echo\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_received_bytes_total{type=\"echo\"} 40")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_sent_bytes_total{type=\"echo\"} 80")) << text;
  EXPECT_TRUE(HasLine(text, "# TYPE lapce_ai_ipc_request_duration_seconds histogram")) << text;

  // Bucket values never decrease along a series.
  double previous = 0;
  int bucket_lines = 0;
  for (const std::string& line : Lines(text)) {
    std::optional<Sample> sample = ParseSample(line);
    if (!sample || sample->name != "lapce_ai_ipc_request_duration_seconds_bucket") continue;
    EXPECT_GE(sample->value, previous) << line;
    previous = sample->value;
    ++bucket_lines;
  }
  EXPECT_EQ(bucket_lines, static_cast<int>(kLatencyBucketCount));
}

TEST(MetricsRegistryTest, SumsShards) {
  MetricsRegistry registry;
  MetricsShard& first = registry.AddShard();
  MetricsShard& second = registry.AddShard();
  ASSERT_EQ(registry.shard_count(), 2u);
  EXPECT_EQ(&registry.shard(0), &first);
  registry.SetTypeName(3, "complete");

  first.RecordRequest(3, 1'000, 100, 1'000, true);
  first.RecordRequest(3, 1'000, 100, 1'000, true);
  second.RecordRequest(3, 2'000'000, 7, 9, false);
  first.RecordProtocolError();
  second.RecordProtocolError();
  second.RecordWakeup();
  first.RecordPark();
  first.RecordPark();
  first.RecordConnectionOpened();
  second.RecordConnectionOpened();
  second.RecordConnectionOpened();
  second.RecordConnectionClosed();

  MetricsSnapshot totals = registry.Collect();
  EXPECT_EQ(totals.types[3].requests, 3u);
  EXPECT_EQ(totals.types[3].errors, 1u);
  EXPECT_EQ(totals.types[3].received_bytes, 207u);
  EXPECT_EQ(totals.types[3].sent_bytes, 2'009u);
  EXPECT_EQ(totals.types[3].latency.sum_ns, 2'002'000u);
  EXPECT_EQ(totals.connections_open, 2);

  const std::string text = registry.RenderPrometheus();
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_requests_total{type=\"complete\"} 3")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_errors_total{type=\"complete\"} 1")) << text;
  EXPECT_TRUE(HasLine(
      text, "lapce_ai_ipc_request_duration_seconds_bucket{type=\"complete\",le=\"1e-06\"} 2"))
      << text;
  EXPECT_TRUE(HasLine(
      text, "lapce_ai_ipc_request_duration_seconds_bucket{type=\"complete\",le=\"0.001\"} 2"))
      << text;
  EXPECT_TRUE(HasLine(
      text, "lapce_ai_ipc_request_duration_seconds_bucket{type=\"complete\",le=\"0.0025\"} 3"))
      << text;
  EXPECT_TRUE(
      HasLine(text, "lapce_ai_ipc_request_duration_seconds_sum{type=\"complete\"} 0.002002"))
      << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_connections_open 2")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_connections_accepted_total 3")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_connections_closed_total 1")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_protocol_errors_total 2")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_wakeups_total 1")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_parks_total 2")) << text;
}

TEST(MetricsRegistryTest, LabelsUnnamedTypesByNumberAndSkipsIdleTypes) {
  MetricsRegistry registry(1);
  registry.SetTypeName(2, "never used");
  registry.SetTypeName(9, "say \"hi\"\\");
  registry.SetTypeName(8, "renamed");
  registry.SetTypeName(8, "");  // Back to the number.
  registry.shard(0).RecordRequest(7, 1, 0, 0, true);
  registry.shard(0).RecordRequest(8, 1, 0, 0, true);
  registry.shard(0).RecordRequest(9, 1, 0, 0, true);
  registry.shard(0).RecordRequest(255, 1, 0, 0, true);

  const std::string text = registry.RenderPrometheus();
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_requests_total{type=\"7\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_requests_total{type=\"8\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_requests_total{type=\"255\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, R"(lapce_ai_ipc_requests_total{type="say \"hi\"\\"} 1)")) << text;
  bool found_escaped = false;
  for (const std::string& line : Lines(text)) {
    std::optional<Sample> sample = ParseSample(line);
    if (sample && sample->name == "lapce_ai_ipc_requests_total" &&
        sample->labels[0].second == "say \"hi\"\\") {
      found_escaped = true;
    }
  }
  EXPECT_TRUE(found_escaped) << text;
  EXPECT_EQ(text.find("never used"), std::string::npos) << text;
  EXPECT_EQ(text.find("type=\"2\""), std::string::npos) << text;
  EXPECT_EQ(text.find("type=\"0\""), std::string::npos) << text;
}

TEST(MetricsRegistryTest, EmptyRegistryRendersHeadersAndZeroes) {
  MetricsRegistry registry;
  const std::string text = registry.RenderPrometheus();
  EXPECT_TRUE(HasLine(text, "# TYPE lapce_ai_ipc_requests_total counter")) << text;
  EXPECT_TRUE(HasLine(text, "lapce_ai_ipc_connections_open 0")) << text;
  EXPECT_EQ(text.find("{type="), std::string::npos) << text;
}

// Checks the text exposition format line by line: every family has one HELP and one TYPE line
// before its samples, every sample is `name{labels} value` and belongs to the current family.
void ExpectValidExposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::set<std::string> families_seen;
  std::string help_family;
  std::string family;
  std::string family_type;
  for (const std::string& line : Lines(text)) {
    std::string_view rest = line;
    if (rest.starts_with("# HELP ")) {
      rest.remove_prefix(7);
      std::optional<std::string> name = TakeName(rest, /*allow_colon=*/true);
      ASSERT_TRUE(name.has_value()) << line;
      EXPECT_TRUE(rest.size() > 1 && rest.front() == ' ') << "HELP without text: " << line;
      help_family = *name;
      EXPECT_TRUE(families_seen.insert(help_family).second) << "duplicate family: " << line;
      EXPECT_TRUE(help_family.starts_with("lapce_ai_ipc_")) << line;
    } else if (rest.starts_with("# TYPE ")) {
      rest.remove_prefix(7);
      std::optional<std::string> name = TakeName(rest, /*allow_colon=*/true);
      ASSERT_TRUE(name.has_value()) << line;
      EXPECT_EQ(*name, help_family) << "TYPE without HELP: " << line;
      family = *name;
      family_type = rest.empty() ? "" : std::string(rest.substr(1));
      EXPECT_TRUE(rest.starts_with(' ') && (family_type == "counter" || family_type == "gauge" ||
                                            family_type == "histogram"))
          << line;
    } else if (std::optional<Sample> sample = ParseSample(rest)) {
      std::set<std::string> label_names;
      for (const auto& [label, value] : sample->labels) {
        EXPECT_TRUE(label_names.insert(label).second) << "duplicate label: " << line;
      }
      if (family_type == "histogram") {
        EXPECT_TRUE(sample->name == family + "_bucket" || sample->name == family + "_sum" ||
                    sample->name == family + "_count")
            << line;
        EXPECT_EQ(label_names.count("le"), sample->name == family + "_bucket" ? 1u : 0u) << line;
      } else {
        EXPECT_EQ(sample->name, family) << line;
      }
    } else {
      ADD_FAILURE() << "not valid exposition format: '" << line << "'";
    }
  }
}

TEST(MetricsRegistryTest, ExpositionCheckerRejectsMalformedLines) {
  for (std::string_view bad : {"lapce_ai_ipc_x{type=\"a} 1", "lapce_ai_ipc_x{type=\"a\"} one",
                               "lapce_ai_ipc_x{type=\"a\\q\"} 1", "lapce_ai_ipc_x 1 two",
                               "lapce_ai_ipc_x{1type=\"a\"} 1", "9lapce_ai_ipc_x 1"}) {
    EXPECT_FALSE(ParseSample(bad).has_value()) << bad;
  }
  EXPECT_TRUE(ParseSample("lapce_ai_ipc_x{a=\"\\\"\\n\",b=\"\"} 1e-07").has_value());
  EXPECT_NONFATAL_FAILURE(ExpectValidExposition("# HELP lapce_ai_ipc_x Help.\n"
                                                "# TYPE lapce_ai_ipc_x counter\n"
                                                "lapce_ai_ipc_x{type=\"a} 1\n"),
                          "not valid exposition format");
  EXPECT_NONFATAL_FAILURE(ExpectValidExposition("# HELP lapce_ai_ipc_x Help.\n"
                                                "# TYPE lapce_ai_ipc_x counter\n"
                                                "lapce_ai_ipc_y 1\n"),
                          "lapce_ai_ipc_y");
}

TEST(MetricsRegistryTest, RenderingIsValidExpositionFormat) {
  MetricsRegistry registry(2);
  registry.SetTypeName(0, "echo");
  registry.SetTypeName(1, "with \"quotes\" and \\ and\nnewline");
  for (uint16_t type : {0, 1, 5, 200}) {
    for (uint64_t ns = 1; ns < 100 * kSecond; ns *= 3) {
      registry.shard(type % 2).RecordRequest(type, ns, 1, 2, ns % 2 == 0);
    }
  }
  registry.shard(1).RecordConnectionClosed();  // Gauge goes negative on this shard.
  ExpectValidExposition(registry.RenderPrometheus());
  ExpectValidExposition(MetricsRegistry().RenderPrometheus());
}

TEST(MetricsRegistryTest, RenderWhileWorkerRecords) {
  constexpr uint64_t kRequests = 100'000;
  constexpr uint64_t kConnections = 2'000;
  MetricsRegistry registry(1);
  registry.SetTypeName(0, "echo");
  MetricsShard& shard = registry.shard(0);
  std::atomic<int> writers_finished{0};
  std::latch start(3);

  std::thread worker([&] {
    start.arrive_and_wait();
    for (uint64_t i = 0; i < kRequests; ++i) {
      shard.RecordRequest(static_cast<uint16_t>(i % 4), i % 50'000, 3, 5, i % 10 != 0);
      if (i % 100 == 0) shard.RecordWakeup();
      if (i % 1000 == 0) shard.RecordProtocolError();
    }
    writers_finished.fetch_add(1);
  });
  std::thread acceptor([&] {
    start.arrive_and_wait();
    for (uint64_t i = 0; i < kConnections; ++i) {
      shard.RecordConnectionOpened();
      shard.RecordProtocolError();  // A failed handshake, counted by the accept thread.
    }
    writers_finished.fetch_add(1);
  });

  start.arrive_and_wait();
  uint64_t previous_requests = 0;
  do {
    std::string text = registry.RenderPrometheus();
    ASSERT_FALSE(text.empty());
    MetricsSnapshot totals = registry.Collect();
    uint64_t requests = 0;
    for (const TypeSnapshot& type : totals.types) requests += type.requests;
    EXPECT_GE(requests, previous_requests);  // Counters never go backwards for a reader.
    previous_requests = requests;
  } while (writers_finished.load() < 2);
  worker.join();
  acceptor.join();

  MetricsSnapshot totals = registry.Collect();
  uint64_t requests = 0;
  uint64_t errors = 0;
  for (const TypeSnapshot& type : totals.types) {
    requests += type.requests;
    errors += type.errors;
    EXPECT_EQ(type.requests, type.latency.count);
  }
  EXPECT_EQ(requests, kRequests);
  EXPECT_EQ(errors, kRequests / 10);
  EXPECT_EQ(totals.types[0].received_bytes, 3 * kRequests / 4);
  EXPECT_EQ(totals.types[3].sent_bytes, 5 * kRequests / 4);
  EXPECT_EQ(totals.wakeups, kRequests / 100);
  EXPECT_EQ(totals.protocol_errors, kRequests / 1000 + kConnections);
  EXPECT_EQ(totals.connections_open, static_cast<int64_t>(kConnections));
  EXPECT_EQ(totals.connections_accepted, kConnections);
  ExpectValidExposition(registry.RenderPrometheus());
  EXPECT_TRUE(HasLine(registry.RenderPrometheus(), "lapce_ai_ipc_requests_total{type=\"echo\"} " +
                                                       std::to_string(kRequests / 4)));
}

}  // namespace
}  // namespace lai::ipc
