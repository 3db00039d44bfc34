// Stream: one connected end of an IPC connection, with the shape of a Unix stream socket
// (connect, send, receive, close) over two shared-memory rings. Confined to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "ipc/channel.h"
#include "ipc/frame.h"

namespace lai::ipc {

struct StreamOptions {
  // Ring data bytes per direction, rounded up to a power of two of 64-byte cells (min 256).
  uint32_t ring_bytes = 1024;
  uint32_t max_message_bytes = 10u << 20;
  std::chrono::milliseconds handshake_timeout{1000};
  // Longest spin before parking while waiting for the peer.
  std::chrono::nanoseconds max_spin{20'000};
};

class Stream {
 public:
  // Connects to the server listening on `socket_path`: checks the server runs as this user,
  // passes the connection's rings and eventfd, and receives the server's doorbell. kUnavailable
  // when no server listens there; the server's reason when it refuses.
  static Result<Stream> Connect(const std::string& socket_path, const StreamOptions& options = {});

  Stream();  // Closed.
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  // Sends one message, in several frames when it is larger than one ring record, waiting while
  // the ring is full. `deadline_ns` is on the NowNs() clock; 0 waits forever. kUnavailable when
  // the peer has gone, kTimeout at the deadline (the message may then be partly sent and the
  // stream is closed, since its framing is lost).
  Status Send(const FrameHeader& header, std::span<const std::byte> payload,
              uint64_t deadline_ns = 0);
  // As Send, for a peer that may stop reading until what it sent us is read (the server, whose
  // replies to pipelined requests fill the other ring): while the ring is full, `drain` runs
  // first and the wait is cut into slices of at most kDrainSliceNs, so it runs again.
  static constexpr uint64_t kDrainSliceNs = 1'000'000;
  Status Send(const FrameHeader& header, std::span<const std::byte> payload, uint64_t deadline_ns,
              const std::function<Status()>& drain);

  // Zero-copy send of a single-frame message: returns the payload area to fill, or a null span
  // when it does not fit in one frame or the ring is full right now (then use Send()). A granted
  // area is never null, even for a 0-byte payload.
  std::span<std::byte> TryBeginSend(const FrameHeader& header, uint32_t payload_bytes);
  void FinishSend();

  // The next whole message; its payload stays valid until Release() or the next Receive().
  // Spins briefly, then parks until the peer wakes us. kUnavailable when the peer has gone,
  // kProtocol when it broke the protocol, kTimeout at the deadline.
  Result<Message> Receive(uint64_t deadline_ns = 0);
  // As Receive, with a timeout that starts counting only once it has to wait (no clock read
  // when the message is already there or arrives within a few hundred nanoseconds).
  Result<Message> ReceiveWithin(std::chrono::nanoseconds timeout);
  // The next whole message if one has arrived (nullopt otherwise), without waiting.
  Result<std::optional<Message>> TryReceive();
  void Release();

  bool is_open() const;
  // One poll() of the control socket: true when the peer has closed it (or sent garbage). For
  // checking a connection that has been idle before relying on it; costs a system call.
  bool HasPeerHungUp() const;
  // Closes the connection: the peer sees the control socket close at once.
  void Close();

  // Used by Listener.
  struct State;
  explicit Stream(std::unique_ptr<State> state);

 private:
  // Waits until the peer sent something (or freed space). `deadline_ns` 0 with `timeout_ns` > 0:
  // the deadline is `timeout_ns` after the first clock read.
  Status WaitForPeer(bool for_space, uint64_t deadline_ns, uint64_t timeout_ns = 0);
  Result<Message> ReceiveImpl(uint64_t deadline_ns, uint64_t timeout_ns);

  std::unique_ptr<State> s_;
};

}  // namespace lai::ipc
