// Single-producer/single-consumer record ring in shared memory, and the shared structs it uses.
// RingWriter is confined to the producer thread, RingReader to the consumer thread; the two may
// live in different processes and share only the RingControl and the cells.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace lai::ipc {

inline constexpr size_t kCacheLineBytes = 64;

// A full (store-load) memory barrier, as std::atomic_thread_fence(seq_cst). On x86-64 a locked
// no-op on the stack is a full barrier and markedly cheaper than `mfence`, which compilers emit
// for the fence; it runs once per message on both sides, so the difference shows.
inline void FullFence() {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)  // TSan understands only the real fence.
  asm volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}
inline constexpr size_t kCellBytes = 64;
inline constexpr size_t kRecordPrefixBytes = 16;  // seq u64, body bytes u32, reserved u32.

// Consumer states, stored in RingControl::consumer_state (also a futex-sized word).
inline constexpr uint32_t kConsumerPolling = 0;  // Watching the ring; the producer need not wake it.
inline constexpr uint32_t kConsumerParked = 1;   // Not watching; the producer must notify it.

// Control words of one ring, each on its own cache line. Shared memory holds offsets and integers
// only, never pointers; both processes access the words through std::atomic_ref.
struct alignas(kCacheLineBytes) RingControl {
  // Cells consumed so far (monotonic). Consumer writes (see RingReader::Release for when), producer
  // reads when it thinks the ring full.
  alignas(kCacheLineBytes) uint64_t consumed;
  // kConsumerPolling / kConsumerParked. Consumer writes when it starts or stops watching; producer
  // reads after every publish (the line stays shared in its cache, so that read is a cache hit).
  alignas(kCacheLineBytes) uint32_t consumer_state;
  // 1 while the producer waits for space. Producer sets, consumer clears when it frees space.
  alignas(kCacheLineBytes) uint32_t producer_waiting;
};
static_assert(std::is_trivially_copyable_v<RingControl>);
static_assert(sizeof(RingControl) == 3 * kCacheLineBytes);

// Record prefix at the start of a record's first cell.
struct RecordPrefix {
  uint64_t seq;       // salt ^ (position + 1); written last, with release.
  uint32_t bytes;     // body bytes, or kPadRecord: skip to the end of the ring.
  uint32_t reserved;  // zero.
};
static_assert(std::is_trivially_copyable_v<RecordPrefix>);
static_assert(sizeof(RecordPrefix) == kRecordPrefixBytes);
inline constexpr uint32_t kPadRecord = 0xffffffffu;

// Geometry shared by both ends. `cell_count` is a power of two >= 4.
struct RingGeometry {
  RingControl* control = nullptr;
  std::byte* cells = nullptr;  // cell_count * kCellBytes bytes.
  uint32_t cell_count = 0;
  uint64_t salt = 0;  // Random per ring: stale payload bytes never look like a fresh record.

  // Largest body one record can carry: half the ring, so a record always fits after padding.
  uint32_t max_body_bytes() const {
    return static_cast<uint32_t>(cell_count / 2 * kCellBytes - kRecordPrefixBytes);
  }
};

inline uint32_t CellsForBody(uint32_t body_bytes) {
  return static_cast<uint32_t>((body_bytes + kRecordPrefixBytes + kCellBytes - 1) / kCellBytes);
}

// Producer end.
//
// Memory ordering: the body and prefix bytes are plain stores followed by a release store of the
// seq word; the consumer's acquire load of seq therefore sees the whole record. After publishing,
// a seq_cst fence orders the seq store before the load of consumer_state; the consumer stores
// kConsumerParked, fences, then re-reads seq before sleeping. Either the producer sees Parked (and
// notifies) or the consumer sees the record (and does not sleep): no wake-up is lost. The same
// Dekker pattern on (consumed, producer_waiting) covers a producer waiting for space.
class RingWriter {
 public:
  RingWriter() = default;
  explicit RingWriter(const RingGeometry& geometry) : g_(geometry) {}

  // Producer only. Claims space for a record of `body_bytes` (<= max_body_bytes()) and returns
  // the body to fill, or an empty span when the ring lacks space now. Writes a pad record first
  // when the record would cross the end of the ring.
  std::span<std::byte> TryClaim(uint32_t body_bytes);

  // Producer only. Publishes the claimed record. Returns true when the consumer is parked and
  // must be notified.
  bool Commit();

  // Producer only. Called when TryClaim failed: announces the wait (producer_waiting = 1) and
  // re-checks. Returns true when `body_bytes` fit now (the caller retries TryClaim at once).
  bool PrepareToWaitForSpace(uint32_t body_bytes);

  // Producer only. True when a record of `body_bytes` fits now (re-reads `consumed`).
  bool HasSpaceFor(uint32_t body_bytes);

  // Producer only. False once the consumer published an impossible `consumed` value (a corrupt or
  // hostile peer); the connection must then be closed.
  bool is_sane() const { return sane_; }

  uint32_t max_body_bytes() const { return g_.max_body_bytes(); }
  uint64_t position() const { return head_; }

 private:
  uint64_t FreeCells(bool refresh);
  uint32_t CellsNeeded(uint32_t body_bytes) const;  // Including a pad record, if one is needed.

  RingGeometry g_;
  uint64_t head_ = 0;             // Next cell position to write.
  uint64_t cached_consumed_ = 0;  // Last `consumed` value read.
  uint64_t claim_position_ = 0;
  uint32_t claim_bytes_ = 0;
  bool sane_ = true;
};

// Consumer end. See RingWriter for the memory-ordering argument.
class RingReader {
 public:
  RingReader() = default;
  explicit RingReader(const RingGeometry& geometry)
      : g_(geometry), publish_every_(std::max<uint32_t>(1, geometry.cell_count / 16)) {}

  enum class PeekStatus : uint8_t { kEmpty, kRecord, kCorrupt };
  struct Peeked {
    PeekStatus status = PeekStatus::kEmpty;
    std::span<const std::byte> body;  // Valid until Release().
  };

  // Consumer only. The next published record, without consuming it. kCorrupt when the producer
  // wrote an impossible length (the connection must be closed). Finding the ring empty publishes
  // every release not yet published.
  Peeked Peek();

  // Consumer only. Consumes the record returned by the last successful Peek(). The new read
  // position (`consumed`, a plain release store) is published once a sixteenth of the ring has
  // been released since the last time, and whenever Peek() finds the ring empty,
  // CheckProducerWaiting() runs or the consumer parks. In a small ring that is every release; in
  // a large one it spares a busy consumer a store to a line the producer keeps reading (each
  // such store waits for the line to come back), while the producer still sees the space well
  // before it runs out.
  void Release();

  // Consumer only. Whether a producer parked waiting for space must be woken (and clears its
  // flag). Costs a full fence, so callers batch it: after several releases, whenever the ring
  // is found empty, and always before the consumer itself waits for anything.
  bool CheckProducerWaiting();

  // Consumer only. Announce (state = kConsumerParked) or withdraw (kConsumerPolling) the intent to
  // sleep. After SetParked(true) the caller must Peek() once more before sleeping.
  void SetParked(bool parked);

  bool HasRecord();  // Consumer only.

  uint64_t position() const { return tail_; }

 private:
  void Publish();

  RingGeometry g_;
  uint64_t tail_ = 0;
  uint64_t published_ = 0;  // The last `consumed` value stored.
  uint32_t publish_every_ = 1;
  uint32_t peeked_cells_ = 0;
};

}  // namespace lai::ipc
