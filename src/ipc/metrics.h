// IPC server metrics: per-worker MetricsShard counters and latency histograms (lock-free, one
// writer each) and the MetricsRegistry that sums the shards into Prometheus text. Per-class
// thread-safety is stated on each class.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ipc/frame.h"  // kMaxMessageTypes

namespace lai::ipc {

// Upper bounds (inclusive, Prometheus `le`) of the finite latency buckets, in nanoseconds. A
// last, implicit bucket holds everything above 10 s (`le="+Inf"`).
inline constexpr std::array<uint64_t, 25> kLatencyBucketBoundsNs = {
    100,           250,           500,                                        // ns
    1'000,         2'500,         5'000,         10'000,         25'000,      // µs
    50'000,        100'000,       250'000,       500'000,                     //
    1'000'000,     2'500'000,     5'000'000,     10'000'000,     25'000'000,  // ms
    50'000'000,    100'000'000,   250'000'000,   500'000'000,                 //
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000,              // s
};
inline constexpr size_t kLatencyBucketCount = kLatencyBucketBoundsNs.size() + 1;

// A point-in-time copy of one or more histograms. Value type; thread-compatible.
struct HistogramSnapshot {
  // Per-bucket (not cumulative) counts; buckets[i] counts latencies in
  // (kLatencyBucketBoundsNs[i-1], kLatencyBucketBoundsNs[i]], the last one those above 10 s.
  std::array<uint64_t, kLatencyBucketCount> buckets{};
  uint64_t sum_ns = 0;
  // Always the sum of `buckets`, so a rendered `_count` equals the `+Inf` bucket.
  uint64_t count = 0;

  void Merge(const HistogramSnapshot& other);
  // Upper bound in nanoseconds of the bucket holding quantile `q` (clamped to [0, 1]);
  // +infinity when that is the overflow bucket, 0 when the histogram is empty.
  double ApproxQuantile(double q) const;
};

// Fixed log-linear histogram of nanosecond latencies.
// Single writer: one thread calls Record(); any thread may read. Thread-safe under that rule.
//
// Memory ordering: every field is a relaxed atomic. The single writer updates each field with
// a relaxed load + store (no read-modify-write, so no locked instruction on the hot path);
// readers use relaxed loads. Each field is therefore monotonic for readers, but fields are not
// mutually consistent (a reader may see a bucket incremented before sum_ns). Nothing else is
// published through these atomics, so no acquire/release pairing is needed; exact totals are
// visible after a synchronising event such as joining the writer thread.
class LatencyHistogram {
 public:
  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Index into HistogramSnapshot::buckets for a latency: the first bound >= it, i.e. the bucket
  // whose `le` admits it; the end is the +Inf bucket. A forward scan, not a binary search: nearly
  // every request lands in the first few buckets, so this is a few predictable compares, inline.
  static size_t BucketIndex(uint64_t latency_ns) {
    size_t i = 0;
    while (i < kLatencyBucketBoundsNs.size() && kLatencyBucketBoundsNs[i] < latency_ns) ++i;
    return i;
  }

  // Writer only. No allocation, no locked instruction.
  void Record(uint64_t latency_ns) { Record(latency_ns, 1); }
  // Writer only. `count` requests (>= 1) that took `total_ns` together, handled back to back:
  // each lands in the bucket of their mean, and the sum is exact.
  void Record(uint64_t total_ns, uint64_t count) {
    Increment(buckets_[BucketIndex(total_ns / count)], count);
    Increment(sum_ns_, total_ns);
    Increment(count_, count);
  }

  // Any thread.
  HistogramSnapshot Snapshot() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_ns() const { return sum_ns_.load(std::memory_order_relaxed); }
  // See HistogramSnapshot::ApproxQuantile; nanoseconds.
  double ApproxQuantile(double q) const { return Snapshot().ApproxQuantile(q); }

 private:
  static_assert(std::atomic<uint64_t>::is_always_lock_free);

  // Only valid with a single writer: a plain load + store instead of fetch_add.
  static void Increment(std::atomic<uint64_t>& counter, uint64_t delta) {
    counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kLatencyBucketCount> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> count_{0};
};

// Totals for one message type.
struct TypeSnapshot {
  uint64_t requests = 0;  // Equals latency.count.
  uint64_t errors = 0;
  uint64_t received_bytes = 0;
  uint64_t sent_bytes = 0;
  HistogramSnapshot latency;
};

// Totals over one or more shards. Value type; thread-compatible.
struct MetricsSnapshot {
  std::vector<TypeSnapshot> types = std::vector<TypeSnapshot>(kMaxMessageTypes);
  int64_t connections_open = 0;
  uint64_t connections_accepted = 0;
  uint64_t connections_closed = 0;
  uint64_t protocol_errors = 0;
  uint64_t wakeups = 0;
  uint64_t parks = 0;
};

// The counters of one IPC server worker thread. All storage (≈62 KiB for 256 message types) is
// allocated in the constructor; recording never allocates.
// RecordRequest, RecordWakeup and RecordPark are confined to the owning worker thread (the
// single writer); the connection methods and RecordProtocolError may be called from any thread
// (e.g. the accept thread); the readers (AddTo and accessors) from any thread.
//
// Memory ordering: as in LatencyHistogram. Worker-owned counters use relaxed load + store;
// connection and protocol-error counters use relaxed fetch_add/fetch_sub because two threads
// may write them (rare events, so the locked instruction costs nothing that matters). They sit
// on their own cache line so the accept thread does not contend with the worker's counters. Readers
// use relaxed loads and get per-field monotonic, mutually loose values.
class alignas(64) MetricsShard {
 public:
  MetricsShard();
  MetricsShard(const MetricsShard&) = delete;
  MetricsShard& operator=(const MetricsShard&) = delete;

  // Owner only. One handled frame of `type` (precondition: type < kMaxMessageTypes; frames of
  // unknown type are protocol errors and never get here). `ok` false counts an error reply.
  void RecordRequest(uint16_t type, uint64_t latency_ns, uint32_t received_bytes,
                     uint32_t sent_bytes, bool ok) {
    RecordOutcome(type, received_bytes, sent_bytes, ok);
    RecordLatency(type, latency_ns, 1);
  }
  // Owner only. RecordRequest in two parts, for a worker that times a run of requests of one
  // type handled back to back with one clock read: each request's outcome, then the run's
  // `count` (>= 1) requests and the `total_ns` they took (see LatencyHistogram::Record).
  void RecordOutcome(uint16_t type, uint32_t received_bytes, uint32_t sent_bytes, bool ok);
  void RecordLatency(uint16_t type, uint64_t total_ns, uint64_t count) {
    Stats(type).latency.Record(total_ns, count);
  }
  // Owner only. A futex/eventfd wake this worker issued to a peer.
  void RecordWakeup() { Increment(wakeups_, 1); }
  // Owner only. This worker went to sleep waiting for work.
  void RecordPark() { Increment(parks_, 1); }

  // Any thread (the accept thread records failed handshakes). A malformed frame or hello.
  void RecordProtocolError() { protocol_errors_.fetch_add(1, std::memory_order_relaxed); }
  // Any thread. Count a connection accepted / closed and move the open-connections gauge.
  void RecordConnectionOpened() {
    connections_open_.fetch_add(1, std::memory_order_relaxed);
    connections_accepted_.fetch_add(1, std::memory_order_relaxed);
  }
  void RecordConnectionClosed() {
    connections_open_.fetch_sub(1, std::memory_order_relaxed);
    connections_closed_.fetch_add(1, std::memory_order_relaxed);
  }

  // Any thread. Adds this shard's current values to `totals`.
  void AddTo(MetricsSnapshot& totals) const;
  // Any thread. Precondition: type < kMaxMessageTypes.
  uint64_t requests(uint16_t type) const;
  int64_t connections_open() const { return connections_open_.load(std::memory_order_relaxed); }

 private:
  struct TypeStats {
    LatencyHistogram latency;  // Its count is the requests total.
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> received_bytes{0};
    std::atomic<uint64_t> sent_bytes{0};
  };
  static_assert(sizeof(TypeStats) * kMaxMessageTypes <= 64 * 1024);

  static void Increment(std::atomic<uint64_t>& counter, uint64_t delta) {
    counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  // Aborts with a message; out of line to keep the recording small.
  [[noreturn]] static size_t UnknownTypeAbort(uint16_t type);
  TypeStats& Stats(uint16_t type) {
    return types_[type < kMaxMessageTypes ? type : UnknownTypeAbort(type)];
  }

  // Immutable after construction (the pointer; the pointee is written by the owner).
  const std::unique_ptr<TypeStats[]> types_;

  // Written by the owner only.
  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> parks_{0};

  // Written by any thread.
  alignas(64) std::atomic<int64_t> connections_open_{0};
  std::atomic<uint64_t> protocol_errors_{0};
  std::atomic<uint64_t> connections_accepted_{0};
  std::atomic<uint64_t> connections_closed_{0};
};

// Owns the per-worker shards and the message-type names, and renders their sum in the Prometheus
// text exposition format (metrics prefixed `lapce_ai_ipc_`, latencies in seconds).
// Thread-safe. Shard references stay valid for the registry's lifetime.
class MetricsRegistry {
 public:
  // Creates `shard_count` shards up front; more may be added with AddShard().
  explicit MetricsRegistry(size_t shard_count = 0);
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Adds a shard (allocates ≈62 KiB); call at startup, one per worker, before serving.
  MetricsShard& AddShard();
  // Precondition: index < shard_count().
  MetricsShard& shard(size_t index);
  size_t shard_count() const;

  // Names `type` in the `type="..."` label; an empty name restores the number. Precondition:
  // type < kMaxMessageTypes.
  void SetTypeName(uint16_t type, std::string name);

  // Any thread (Responders send from their handlers' threads): the bytes a streamed reply of
  // `type` sent, and whether it ended in an error, counted once it ends. Relaxed fetch_add on
  // two small per-type arrays of the registry's own (4 KiB, not a 62 KiB shard).
  void RecordStreamed(uint16_t type, uint64_t sent_bytes, bool ok);

  // Sum over all shards and the streamed replies.
  MetricsSnapshot Collect() const;
  // Prometheus text exposition format (version 0.0.4). Per-type series only for types that
  // handled at least one request.
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mutex_;
  // Guarded by mutex_.
  std::vector<std::unique_ptr<MetricsShard>> shards_;
  std::array<std::string, kMaxMessageTypes> type_names_;
  // RecordStreamed's; written by any thread.
  std::array<std::atomic<uint64_t>, kMaxMessageTypes> streamed_bytes_{};
  std::array<std::atomic<uint64_t>, kMaxMessageTypes> streamed_errors_{};

  void AddStreamedTo(MetricsSnapshot& totals) const;
};

// Inline because it is the per-request hot path.
inline void MetricsShard::RecordOutcome(uint16_t type, uint32_t received_bytes, uint32_t sent_bytes,
                                        bool ok) {
  TypeStats& stats = Stats(type);
  if (!ok) Increment(stats.errors, 1);
  Increment(stats.received_bytes, received_bytes);
  Increment(stats.sent_bytes, sent_bytes);
}

}  // namespace lai::ipc
