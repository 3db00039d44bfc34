#include "ipc/ring.h"

#include <cstring>

namespace lai::ipc {
namespace {

template <typename T>
std::atomic_ref<T> Ref(T& word) {
  return std::atomic_ref<T>(word);
}

RecordPrefix* PrefixAt(const RingGeometry& g, uint64_t position) {
  return reinterpret_cast<RecordPrefix*>(g.cells + (position & (g.cell_count - 1)) * kCellBytes);
}

}  // namespace

uint64_t RingWriter::FreeCells(bool refresh) {
  if (!sane_) return 0;
  if (refresh) {
    uint64_t consumed = Ref(g_.control->consumed).load(std::memory_order_acquire);
    // A consumer can never have consumed more than was written, nor fall more than a ring behind.
    if (consumed > head_ || head_ - consumed > g_.cell_count || consumed < cached_consumed_) {
      sane_ = false;
      return 0;
    }
    cached_consumed_ = consumed;
  }
  return g_.cell_count - (head_ - cached_consumed_);
}

uint32_t RingWriter::CellsNeeded(uint32_t body_bytes) const {
  uint32_t need = CellsForBody(body_bytes);
  uint32_t index = static_cast<uint32_t>(head_ & (g_.cell_count - 1));
  return index + need > g_.cell_count ? g_.cell_count - index + need : need;
}

bool RingWriter::HasSpaceFor(uint32_t body_bytes) {
  return FreeCells(true) >= CellsNeeded(body_bytes);
}

std::span<std::byte> RingWriter::TryClaim(uint32_t body_bytes) {
  if (!sane_ || body_bytes > g_.max_body_bytes()) return {};
  uint32_t need = CellsForBody(body_bytes);
  uint32_t index = static_cast<uint32_t>(head_ & (g_.cell_count - 1));
  uint32_t pad = index + need > g_.cell_count ? g_.cell_count - index : 0;
  if (FreeCells(false) < pad + need && FreeCells(true) < pad + need) return {};
  if (pad != 0) {
    RecordPrefix* prefix = PrefixAt(g_, head_);
    prefix->bytes = kPadRecord;
    prefix->reserved = 0;
    Ref(prefix->seq).store(g_.salt ^ (head_ + 1), std::memory_order_release);
    head_ += pad;
  }
  claim_position_ = head_;
  claim_bytes_ = body_bytes;
  // A body ending in the first 8 bytes of its last cell would leave the rest of an older seq
  // there for payload bytes to complete into a valid one; spoil that whole word first.
  if (need > 1) {
    Ref(PrefixAt(g_, head_ + need - 1)->seq).store(~g_.salt, std::memory_order_relaxed);
  }
  return {reinterpret_cast<std::byte*>(PrefixAt(g_, head_)) + kRecordPrefixBytes, body_bytes};
}

bool RingWriter::Commit() {
  RecordPrefix* prefix = PrefixAt(g_, claim_position_);
  prefix->bytes = claim_bytes_;
  prefix->reserved = 0;
  Ref(prefix->seq).store(g_.salt ^ (claim_position_ + 1), std::memory_order_release);
  head_ = claim_position_ + CellsForBody(claim_bytes_);
  FullFence();
  return Ref(g_.control->consumer_state).load(std::memory_order_relaxed) != kConsumerPolling;
}

bool RingWriter::PrepareToWaitForSpace(uint32_t body_bytes) {
  Ref(g_.control->producer_waiting).store(1, std::memory_order_relaxed);
  FullFence();
  return HasSpaceFor(body_bytes);
}

RingReader::Peeked RingReader::Peek() {
  for (;;) {
    RecordPrefix* prefix = PrefixAt(g_, tail_);
    if (Ref(prefix->seq).load(std::memory_order_acquire) != (g_.salt ^ (tail_ + 1))) {
      if (published_ != tail_) Publish();  // Caught up: the producer may have all the space.
      return {};
    }
    uint32_t bytes = Ref(prefix->bytes).load(std::memory_order_relaxed);
    uint32_t index = static_cast<uint32_t>(tail_ & (g_.cell_count - 1));
    if (bytes == kPadRecord) {
      if (index == 0) return {PeekStatus::kCorrupt, {}};
      tail_ += g_.cell_count - index;  // Consumed together with the record that follows.
      continue;
    }
    if (bytes > g_.max_body_bytes()) return {PeekStatus::kCorrupt, {}};
    uint32_t need = CellsForBody(bytes);
    if (index + need > g_.cell_count) return {PeekStatus::kCorrupt, {}};
    peeked_cells_ = need;
    return {PeekStatus::kRecord,
            {reinterpret_cast<const std::byte*>(prefix) + kRecordPrefixBytes, bytes}};
  }
}

bool RingReader::HasRecord() {
  RecordPrefix* prefix = PrefixAt(g_, tail_);
  return Ref(prefix->seq).load(std::memory_order_acquire) == (g_.salt ^ (tail_ + 1));
}

void RingReader::Release() {
  tail_ += peeked_cells_;
  peeked_cells_ = 0;
  if (tail_ - published_ >= publish_every_) Publish();
}

void RingReader::Publish() {
  published_ = tail_;
  Ref(g_.control->consumed).store(tail_, std::memory_order_release);
}

bool RingReader::CheckProducerWaiting() {
  if (published_ != tail_) Publish();
  FullFence();
  auto waiting = Ref(g_.control->producer_waiting);
  return waiting.load(std::memory_order_relaxed) != 0 &&
         waiting.exchange(0, std::memory_order_relaxed) != 0;
}

void RingReader::SetParked(bool parked) {
  if (parked && published_ != tail_) Publish();
  Ref(g_.control->consumer_state)
      .store(parked ? kConsumerParked : kConsumerPolling, std::memory_order_relaxed);
  if (parked) FullFence();
}

}  // namespace lai::ipc
