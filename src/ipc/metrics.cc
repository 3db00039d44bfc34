#include "ipc/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

#include "base/check.h"

namespace lai::ipc {
namespace {

constexpr std::string_view kPrefix = "lapce_ai_ipc_";
constexpr uint64_t kNanosPerSecond = 1'000'000'000;

void AppendUint(std::string& out, uint64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, end);
}

void AppendInt(std::string& out, int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, end);
}

// Exact decimal seconds from integer nanoseconds ("0.00000035", "12", "1.5"), so sums do not
// pick up binary floating-point noise.
void AppendNanosAsSeconds(std::string& out, uint64_t ns) {
  AppendUint(out, ns / kNanosPerSecond);
  uint64_t fraction = ns % kNanosPerSecond;
  if (fraction == 0) return;
  char digits[9];
  for (int i = 8; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  size_t length = 9;
  while (digits[length - 1] == '0') --length;
  out += '.';
  out.append(digits, length);
}

// `le` values formatted the way Prometheus client libraries do (shortest %g: "1e-07",
// "0.00025", "10").
const std::array<std::string, kLatencyBucketCount>& BucketLabels() {
  static const std::array<std::string, kLatencyBucketCount> labels = [] {
    std::array<std::string, kLatencyBucketCount> result;
    for (size_t i = 0; i < kLatencyBucketBoundsNs.size(); ++i) {
      char buffer[32];
      std::snprintf(buffer, sizeof(buffer), "%g",
                    static_cast<double>(kLatencyBucketBoundsNs[i]) / kNanosPerSecond);
      result[i] = buffer;
    }
    result.back() = "+Inf";
    return result;
  }();
  return labels;
}

// Label values escape backslash, double quote and newline.
void AppendLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendFamilyHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help) {
  out += "# HELP ";
  out += kPrefix;
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += kPrefix;
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// `lapce_ai_ipc_<name>{type="<label>"` without the closing brace.
void AppendTypeSeriesStart(std::string& out, std::string_view name, std::string_view type_label) {
  out += kPrefix;
  out += name;
  out += "{type=\"";
  AppendLabelValue(out, type_label);
  out += '"';
}

}  // namespace

void HistogramSnapshot::Merge(const HistogramSnapshot& other) {
  for (size_t i = 0; i < kLatencyBucketCount; ++i) buckets[i] += other.buckets[i];
  sum_ns += other.sum_ns;
  count += other.count;
}

double HistogramSnapshot::ApproxQuantile(double q) const {
  if (count == 0) return 0.0;
  if (!(q > 0.0)) q = 0.0;  // Also maps NaN to 0.
  if (q > 1.0) q = 1.0;
  // The rank-th smallest sample, 1-based; at least the first.
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count))));
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBucketBoundsNs.size(); ++i) {
    cumulative += buckets[i];
    if (cumulative >= rank) return static_cast<double>(kLatencyBucketBoundsNs[i]);
  }
  return std::numeric_limits<double>::infinity();
}

HistogramSnapshot LatencyHistogram::Snapshot() const {
  HistogramSnapshot snapshot;
  for (size_t i = 0; i < kLatencyBucketCount; ++i) {
    snapshot.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    snapshot.count += snapshot.buckets[i];
  }
  snapshot.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  return snapshot;
}

MetricsShard::MetricsShard() : types_(std::make_unique<TypeStats[]>(kMaxMessageTypes)) {}

size_t MetricsShard::UnknownTypeAbort(uint16_t type) {
  LAI_CHECK(false) << "metrics: message type " << type << " is not below kMaxMessageTypes ("
                   << kMaxMessageTypes << ")";
  std::abort();  // Unreachable: CheckFailure aborts; keeps [[noreturn]] honest for the compiler.
}

uint64_t MetricsShard::requests(uint16_t type) const {
  LAI_CHECK(type < kMaxMessageTypes) << "metrics: message type " << type;
  return types_[type].latency.count();
}

void MetricsShard::AddTo(MetricsSnapshot& totals) const {
  for (size_t type = 0; type < kMaxMessageTypes; ++type) {
    const TypeStats& stats = types_[type];
    TypeSnapshot& total = totals.types[type];
    HistogramSnapshot latency = stats.latency.Snapshot();
    total.requests += latency.count;
    total.latency.Merge(latency);
    total.errors += stats.errors.load(std::memory_order_relaxed);
    total.received_bytes += stats.received_bytes.load(std::memory_order_relaxed);
    total.sent_bytes += stats.sent_bytes.load(std::memory_order_relaxed);
  }
  totals.protocol_errors += protocol_errors_.load(std::memory_order_relaxed);
  totals.wakeups += wakeups_.load(std::memory_order_relaxed);
  totals.parks += parks_.load(std::memory_order_relaxed);
  totals.connections_open += connections_open_.load(std::memory_order_relaxed);
  totals.connections_accepted += connections_accepted_.load(std::memory_order_relaxed);
  totals.connections_closed += connections_closed_.load(std::memory_order_relaxed);
}

MetricsRegistry::MetricsRegistry(size_t shard_count) {
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) shards_.push_back(std::make_unique<MetricsShard>());
}

MetricsShard& MetricsRegistry::AddShard() {
  auto shard = std::make_unique<MetricsShard>();
  std::lock_guard lock(mutex_);
  shards_.push_back(std::move(shard));
  return *shards_.back();
}

MetricsShard& MetricsRegistry::shard(size_t index) {
  std::lock_guard lock(mutex_);
  LAI_CHECK(index < shards_.size()) << "metrics: shard " << index << " of " << shards_.size();
  return *shards_[index];
}

size_t MetricsRegistry::shard_count() const {
  std::lock_guard lock(mutex_);
  return shards_.size();
}

void MetricsRegistry::SetTypeName(uint16_t type, std::string name) {
  LAI_CHECK(type < kMaxMessageTypes) << "metrics: SetTypeName for message type " << type;
  std::lock_guard lock(mutex_);
  type_names_[type] = std::move(name);
}

void MetricsRegistry::RecordStreamed(uint16_t type, uint64_t sent_bytes, bool ok) {
  if (type >= kMaxMessageTypes) return;
  streamed_bytes_[type].fetch_add(sent_bytes, std::memory_order_relaxed);
  if (!ok) streamed_errors_[type].fetch_add(1, std::memory_order_relaxed);
}

void MetricsRegistry::AddStreamedTo(MetricsSnapshot& totals) const {
  for (size_t type = 0; type < kMaxMessageTypes; ++type) {
    totals.types[type].sent_bytes += streamed_bytes_[type].load(std::memory_order_relaxed);
    totals.types[type].errors += streamed_errors_[type].load(std::memory_order_relaxed);
  }
}

MetricsSnapshot MetricsRegistry::Collect() const {
  MetricsSnapshot totals;
  std::lock_guard lock(mutex_);
  for (const auto& shard : shards_) shard->AddTo(totals);
  AddStreamedTo(totals);
  return totals;
}

std::string MetricsRegistry::RenderPrometheus() const {
  MetricsSnapshot totals;
  // Labels of the types that saw traffic, in type order.
  std::vector<std::pair<size_t, std::string>> active_types;
  {
    std::lock_guard lock(mutex_);
    for (const auto& shard : shards_) shard->AddTo(totals);
    AddStreamedTo(totals);
    for (size_t type = 0; type < kMaxMessageTypes; ++type) {
      if (totals.types[type].requests == 0) continue;
      active_types.emplace_back(
          type, type_names_[type].empty() ? std::to_string(type) : type_names_[type]);
    }
  }

  std::string out;
  out.reserve(1024 + active_types.size() * 4096);

  auto per_type_counter = [&](std::string_view name, std::string_view help,
                              uint64_t TypeSnapshot::*field) {
    AppendFamilyHeader(out, name, "counter", help);
    for (const auto& [type, label] : active_types) {
      AppendTypeSeriesStart(out, name, label);
      out += "} ";
      AppendUint(out, totals.types[type].*field);
      out += '\n';
    }
  };
  per_type_counter("requests_total", "Requests handled, by message type.", &TypeSnapshot::requests);
  per_type_counter("errors_total", "Requests answered with an error, by message type.",
                   &TypeSnapshot::errors);
  per_type_counter("received_bytes_total", "Request bytes received, by message type.",
                   &TypeSnapshot::received_bytes);
  per_type_counter("sent_bytes_total", "Response bytes sent, by message type.",
                   &TypeSnapshot::sent_bytes);

  constexpr std::string_view kDuration = "request_duration_seconds";
  AppendFamilyHeader(out, kDuration, "histogram",
                     "Time to handle a request in seconds, by message type.");
  const auto& bucket_labels = BucketLabels();
  for (const auto& [type, label] : active_types) {
    const HistogramSnapshot& latency = totals.types[type].latency;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBucketCount; ++i) {
      cumulative += latency.buckets[i];
      out += kPrefix;
      out += kDuration;
      out += "_bucket{type=\"";
      AppendLabelValue(out, label);
      out += "\",le=\"";
      out += bucket_labels[i];
      out += "\"} ";
      AppendUint(out, cumulative);
      out += '\n';
    }
    AppendTypeSeriesStart(out, std::string(kDuration) + "_sum", label);
    out += "} ";
    AppendNanosAsSeconds(out, latency.sum_ns);
    out += '\n';
    AppendTypeSeriesStart(out, std::string(kDuration) + "_count", label);
    out += "} ";
    AppendUint(out, latency.count);
    out += '\n';
  }

  auto scalar = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value) {
    AppendFamilyHeader(out, name, type, help);
    out += kPrefix;
    out += name;
    out += ' ';
    if constexpr (std::is_signed_v<decltype(value)>) {
      AppendInt(out, value);
    } else {
      AppendUint(out, value);
    }
    out += '\n';
  };
  scalar("connections_open", "gauge", "Client connections currently open.",
         totals.connections_open);
  scalar("connections_accepted_total", "counter", "Client connections accepted.",
         totals.connections_accepted);
  scalar("connections_closed_total", "counter", "Client connections closed.",
         totals.connections_closed);
  scalar("protocol_errors_total", "counter", "Malformed frames received.", totals.protocol_errors);
  scalar("wakeups_total", "counter", "Futex or eventfd wakes issued by server workers.",
         totals.wakeups);
  scalar("parks_total", "counter", "Times a server worker went to sleep waiting for work.",
         totals.parks);
  return out;
}

}  // namespace lai::ipc
