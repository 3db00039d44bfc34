// One side of a connection's ring pair: sends messages (in fragments when larger than one ring
// record) and receives them (reassembling fragments into pooled buffers). Also the shared layouts
// of a connection block and a server doorbell, and how each side wakes the other.
// A Channel's sending side (TryBeginMessage, FinishMessage, SendSome, HasSpaceForFrame,
// PrepareToWaitForSpace, TakeWokeSleepingPeer) and its receiving side touch disjoint state: one
// thread may send while another receives, each side confined to one thread at a time.
// PeerWaker::Wake may run on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "base/result.h"
#include "ipc/buffer_pool.h"
#include "ipc/frame.h"
#include "ipc/ring.h"

namespace lai::ipc {

// Shared layout of one connection block, at `block_offset` in the client's shared file:
//   RingControl c2s | RingControl s2c | c2s cells | s2c cells
struct ConnectionLayout {
  uint32_t c2s_cells = 0;
  uint32_t s2c_cells = 0;

  static constexpr size_t kControlsBytes = 2 * sizeof(RingControl);
  size_t bytes() const { return kControlsBytes + (size_t{c2s_cells} + s2c_cells) * kCellBytes; }
  RingGeometry C2s(std::byte* block, uint64_t salt) const;
  RingGeometry S2c(std::byte* block, uint64_t salt) const;
};

// A server worker's doorbell, in a shared file the server creates and every client of that worker
// maps: a flag that says the worker sleeps, and one ready bit per connection slot.
struct DoorbellLayout {
  static constexpr size_t kBitsOffset = kCacheLineBytes;
  static size_t Bytes(uint32_t slots) { return kBitsOffset + (size_t{slots} + 63) / 64 * 8; }
  static uint32_t* Sleeping(std::byte* bell) { return reinterpret_cast<uint32_t*>(bell); }
  static uint64_t* Bits(std::byte* bell) { return reinterpret_cast<uint64_t*>(bell + kBitsOffset); }
};

// How one side wakes the other after publishing into a parked consumer's ring or freeing space
// for a waiting producer. A client rings its slot's bit in the server worker's doorbell and writes
// the worker's eventfd only when the worker sleeps; the server writes the client's eventfd.
//
// Memory ordering: the bit is set (or seen set) after the ring publish and its seq_cst fence; a
// seq_cst fence then orders it before the read of `sleeping`. The worker stores sleeping = 1,
// fences, and scans the bits before it sleeps, so either it sees the bit or we see it asleep.
class PeerWaker {
 public:
  PeerWaker() = default;
  static PeerWaker ToServer(std::byte* doorbell, uint32_t slot, int worker_eventfd);
  static PeerWaker ToClient(int client_eventfd);

  // Returns true when it had to write the eventfd: the peer was asleep.
  bool Wake() const;

 private:
  uint64_t* bell_word_ = nullptr;  // Null when waking a client.
  uint32_t* sleeping_ = nullptr;
  uint64_t bell_mask_ = 0;
  int eventfd_ = -1;
};

// A whole message: the header of its first frame and its complete payload.
struct Message {
  FrameHeader header;
  std::span<const std::byte> payload;
};

class Channel {
 public:
  // `pool` must outlive the channel. `waker` is used whenever the peer must be woken: after
  // publishing into its parked ring, or after freeing space it waits for.
  Channel(const RingGeometry& out, const RingGeometry& in, uint32_t max_message_bytes,
          BufferPool& pool, PeerWaker waker);

  // ---- Sending (producer of the out ring) ----

  // Fast path for a message that fits in one frame: returns its payload area in the ring to fill
  // in place, or a null span when it does not fit in one frame or the ring lacks space now. A
  // granted area is never null, even for a 0-byte payload: test data(), not empty().
  std::span<std::byte> TryBeginMessage(const FrameHeader& header, uint32_t payload_bytes);
  // Publishes the message begun above.
  void FinishMessage();

  enum class SendStatus : uint8_t { kDone, kFull, kBroken };
  // Sends `payload` as one message, frame by frame, resuming at `*offset` (0 on the first call).
  // kFull: the ring filled up; call again with the same arguments once the peer frees space.
  SendStatus SendSome(const FrameHeader& header, std::span<const std::byte> payload,
                      size_t* offset);

  // True when the frame SendSome could not place last time fits in the out ring now.
  bool HasSpaceForFrame() { return out_.HasSpaceFor(blocked_body_bytes_); }

  // Call when SendSome reported kFull: announces the wait; true if space appeared meanwhile.
  bool PrepareToWaitForSpace();

  uint32_t max_frame_payload() const { return out_.max_body_bytes() - kFrameHeaderBytes; }

  // ---- Receiving (consumer of the in ring) ----

  enum class ReceiveStatus : uint8_t {
    kEmpty,    // Nothing complete yet.
    kMessage,  // `message` is valid until Consume().
    kBlocked,  // The buffer pool is exhausted; retry later (back-pressure on the peer).
    kBroken,   // The peer broke the protocol; see broken_reason(). Close the connection.
  };
  struct Received {
    ReceiveStatus status;
    Message message;
  };
  // Until Consume(), calling Receive() again returns the same message (a caller may look at a
  // message and leave it for later).
  Received Receive();
  // Releases the message returned by Receive().
  void Consume();
  // Wakes a producer that waits for the space our releases freed. Consume() and Receive() do it
  // every few messages and whenever the ring is empty; call it before waiting for anything else.
  void WakeWaitingProducer();

  // True when a record is waiting in the in ring (cheap; for deciding whether to sleep).
  bool HasIncoming() { return in_.HasRecord(); }
  void SetParked(bool parked) { in_.SetParked(parked); }

  // True (once) when a send since the last call had to wake a sleeping peer: its answer will
  // take a wake-up's time, worth spinning through rather than sleeping ourselves.
  bool TakeWokeSleepingPeer() { return std::exchange(woke_sleeping_peer_, false); }

  const std::string& broken_reason() const { return broken_reason_; }
  bool is_broken() const { return !broken_reason_.empty(); }
  uint32_t max_message_bytes() const { return max_message_bytes_; }

 private:
  Received Break(std::string reason);

  RingWriter out_;
  RingReader in_;
  const uint32_t releases_per_check_;  // Releases between CheckProducerWaiting() calls, at most.
  uint32_t blocked_body_bytes_ = 0;  // Size of the record SendSome last failed to claim.
  uint32_t max_message_bytes_;
  BufferPool& pool_;
  PeerWaker waker_;

  // Reassembly of a fragmented incoming message.
  std::optional<PooledBuffer> assembly_;
  FrameHeader assembly_header_;
  size_t assembly_filled_ = 0;
  bool holding_record_ = false;       // A ring record is borrowed by the current message.
  std::optional<Message> delivered_;  // Returned by Receive() and not yet consumed.
  uint32_t unchecked_releases_ = 0;   // Releases since the last CheckProducerWaiting().
  bool woke_sleeping_peer_ = false;
  std::string broken_reason_;
};

}  // namespace lai::ipc
