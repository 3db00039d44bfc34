#include "ipc/channel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace lai::ipc {
namespace {
// How many records may be released before the fence that checks for a waiting producer: 8, or
// in a large ring a thirty-second of its cells (that fence waits for the store of `consumed`,
// and a producer in such a ring sees space long before it waits).
uint32_t ReleasesPerCheck(const RingGeometry& in) {
  return std::max<uint32_t>(8, in.cell_count / 32);
}
}  // namespace

RingGeometry ConnectionLayout::C2s(std::byte* block, uint64_t salt) const {
  return {reinterpret_cast<RingControl*>(block), block + kControlsBytes, c2s_cells, salt};
}

RingGeometry ConnectionLayout::S2c(std::byte* block, uint64_t salt) const {
  return {reinterpret_cast<RingControl*>(block + sizeof(RingControl)),
          block + kControlsBytes + size_t{c2s_cells} * kCellBytes, s2c_cells, salt};
}

PeerWaker PeerWaker::ToServer(std::byte* doorbell, uint32_t slot, int worker_eventfd) {
  PeerWaker w;
  w.bell_word_ = DoorbellLayout::Bits(doorbell) + slot / 64;
  w.bell_mask_ = uint64_t{1} << (slot % 64);
  w.sleeping_ = DoorbellLayout::Sleeping(doorbell);
  w.eventfd_ = worker_eventfd;
  return w;
}

PeerWaker PeerWaker::ToClient(int client_eventfd) {
  PeerWaker w;
  w.eventfd_ = client_eventfd;
  return w;
}

bool PeerWaker::Wake() const {
  if (bell_word_ != nullptr) {
    std::atomic_ref<uint64_t> word(*bell_word_);
    // A set bit means the worker has not yet cleared it, so it will look at our ring anyway.
    if ((word.load(std::memory_order_relaxed) & bell_mask_) == 0) {
      word.fetch_or(bell_mask_, std::memory_order_seq_cst);
    }
    FullFence();
    std::atomic_ref<uint32_t> sleeping(*sleeping_);
    if (sleeping.load(std::memory_order_relaxed) == 0 ||
        sleeping.exchange(0, std::memory_order_seq_cst) == 0) {
      return false;  // Awake: it will see the bit. Or another client already woke it.
    }
  }
  uint64_t one = 1;
  ssize_t n = ::write(eventfd_, &one, sizeof(one));
  (void)n;  // EAGAIN means the counter is already non-zero: the peer will wake anyway.
  return true;
}

Channel::Channel(const RingGeometry& out, const RingGeometry& in, uint32_t max_message_bytes,
                 BufferPool& pool, PeerWaker waker)
    : out_(out),
      in_(in),
      releases_per_check_(ReleasesPerCheck(in)),
      max_message_bytes_(max_message_bytes),
      pool_(pool),
      waker_(waker) {}

std::span<std::byte> Channel::TryBeginMessage(const FrameHeader& header, uint32_t payload_bytes) {
  if (payload_bytes > max_frame_payload() || payload_bytes > max_message_bytes_) return {};
  std::span<std::byte> body = out_.TryClaim(kFrameHeaderBytes + payload_bytes);
  if (body.empty()) return {};
  FrameHeader h = header;
  h.message_bytes = payload_bytes;
  h.flags &= static_cast<uint8_t>(~kFlagMore);
  EncodeFrameHeader(h, body.data());
  return body.subspan(kFrameHeaderBytes);
}

void Channel::FinishMessage() {
  if (out_.Commit()) woke_sleeping_peer_ |= waker_.Wake();
}

Channel::SendStatus Channel::SendSome(const FrameHeader& header,
                                      std::span<const std::byte> payload, size_t* offset) {
  if (payload.size() > max_message_bytes_) return SendStatus::kBroken;
  FrameHeader h = header;
  h.message_bytes = static_cast<uint32_t>(payload.size());
  do {
    size_t chunk = std::min<size_t>(payload.size() - *offset, max_frame_payload());
    uint32_t body_bytes = static_cast<uint32_t>(kFrameHeaderBytes + chunk);
    std::span<std::byte> body = out_.TryClaim(body_bytes);
    if (body.empty()) {
      blocked_body_bytes_ = body_bytes;
      return out_.is_sane() ? SendStatus::kFull : SendStatus::kBroken;
    }
    h.flags = static_cast<uint8_t>(header.flags & ~kFlagMore);
    if (*offset + chunk < payload.size()) h.flags |= kFlagMore;
    EncodeFrameHeader(h, body.data());
    if (chunk != 0) std::memcpy(body.data() + kFrameHeaderBytes, payload.data() + *offset, chunk);
    if (out_.Commit()) woke_sleeping_peer_ |= waker_.Wake();
    *offset += chunk;
  } while (*offset < payload.size());
  return SendStatus::kDone;
}

bool Channel::PrepareToWaitForSpace() {
  return out_.PrepareToWaitForSpace(blocked_body_bytes_);
}

Channel::Received Channel::Break(std::string reason) {
  broken_reason_ = std::move(reason);
  return {ReceiveStatus::kBroken, {}};
}

Channel::Received Channel::Receive() {
  if (is_broken()) return {ReceiveStatus::kBroken, {}};
  if (delivered_) return {ReceiveStatus::kMessage, *delivered_};
  for (;;) {
    RingReader::Peeked peeked = in_.Peek();
    if (peeked.status == RingReader::PeekStatus::kEmpty) {
      if (unchecked_releases_ != 0) WakeWaitingProducer();
      return {ReceiveStatus::kEmpty, {}};
    }
    if (peeked.status == RingReader::PeekStatus::kCorrupt) {
      return Break("bad frame: ring record length out of bounds");
    }
    if (peeked.body.size() < kFrameHeaderBytes) {
      return Break("bad frame: record of " + std::to_string(peeked.body.size()) +
                   " bytes is shorter than a frame header");
    }
    std::optional<FrameHeader> decoded =
        TryDecodeFrameHeader(peeked.body.data(), max_message_bytes_);
    if (!decoded) {
      Result<FrameHeader> reason = DecodeFrameHeader(peeked.body.data(), max_message_bytes_);
      return Break(reason.ok() ? "bad frame" : reason.error().message());
    }
    FrameHeader h = *decoded;
    std::span<const std::byte> piece = peeked.body.subspan(kFrameHeaderBytes);

    if (!assembly_.has_value()) {
      if ((h.flags & kFlagMore) == 0) {
        // Whole message in one frame: hand out a view into the ring, no copy.
        if (piece.size() != h.message_bytes) {
          return Break("bad frame: length " + std::to_string(h.message_bytes) +
                       " does not match the " + std::to_string(piece.size()) +
                       " payload bytes carried");
        }
        holding_record_ = true;
        // Returned from the local, not read back from delivered_: a wide load of fields just
        // stored cannot be forwarded from the store buffer and would wait for it to drain.
        Message message{h, piece};
        delivered_ = message;
        return {ReceiveStatus::kMessage, message};
      }
      if (piece.size() >= h.message_bytes) {
        return Break("bad frame: first fragment carries the whole message");
      }
      Result<PooledBuffer> buffer = pool_.Acquire(h.message_bytes);
      if (!buffer.ok()) {
        if (buffer.error().code() == ErrorCode::kResourceExhausted) {
          return {ReceiveStatus::kBlocked, {}};
        }
        return Break(buffer.error().message());
      }
      assembly_.emplace(std::move(buffer).value());
      assembly_header_ = h;
      assembly_filled_ = 0;
    } else if (h.type != assembly_header_.type || h.request_id != assembly_header_.request_id ||
               h.message_bytes != assembly_header_.message_bytes) {
      return Break("bad frame: fragment of a different message arrived mid-message");
    }
    if (assembly_filled_ + piece.size() > h.message_bytes) {
      return Break("bad frame: fragments exceed the declared length " +
                   std::to_string(h.message_bytes));
    }
    std::memcpy(assembly_->data() + assembly_filled_, piece.data(), piece.size());
    assembly_filled_ += piece.size();
    in_.Release();
    if (++unchecked_releases_ >= releases_per_check_) WakeWaitingProducer();
    if ((h.flags & kFlagMore) != 0) continue;
    if (assembly_filled_ != h.message_bytes) {
      return Break("bad frame: message ended after " + std::to_string(assembly_filled_) + " of " +
                   std::to_string(h.message_bytes) + " bytes");
    }
    FrameHeader first = assembly_header_;
    first.flags = static_cast<uint8_t>(h.flags & ~kFlagMore);
    Message message{first, {assembly_->data(), assembly_filled_}};
    delivered_ = message;
    return {ReceiveStatus::kMessage, message};
  }
}

void Channel::WakeWaitingProducer() {
  unchecked_releases_ = 0;
  if (in_.CheckProducerWaiting()) waker_.Wake();
}

void Channel::Consume() {
  delivered_.reset();
  if (holding_record_) {
    holding_record_ = false;
    in_.Release();
    if (++unchecked_releases_ >= releases_per_check_) WakeWaitingProducer();
  } else {
    assembly_.reset();
  }
}

}  // namespace lai::ipc
