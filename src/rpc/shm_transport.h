// JSON-RPC over the shared-memory IPC transport (docs/protocol.md §13): ShmRpcService, the
// server side (one Peer per client channel), and ShmClientTransport, the client side.
// Both are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "ipc/client.h"
#include "ipc/server.h"
#include "rpc/peer.h"

namespace lai::rpc {

// Every frame of the message type starts with the channel token: 8 bytes, little-endian.
inline constexpr size_t kChannelTokenBytes = 8;

// What serves one channel: the methods registered on its peer and any state they use. Made by
// a ChannelFactory; destroyed after the channel's peer is closed and its handlers have returned,
// before the peer itself.
class ChannelState {
 public:
  virtual ~ChannelState() = default;
};
// Called once per new channel on an IPC worker thread (so it must not block): registers handlers
// on `peer` and returns the state they use (or nullptr).
using ChannelFactory = std::function<std::unique_ptr<ChannelState>(Peer& peer)>;

struct ShmRpcServiceOptions {
  // The two message types (numbered in server/services.h, which this layer cannot include):
  // `open_type` opens a channel (a streamed reply carrying server → client messages),
  // `message_type` carries one client → server message per notification frame.
  uint16_t open_type = 0;
  uint16_t message_type = 0;
  PeerOptions peer;
  // Client messages received but not yet handled, per channel; beyond it the channel fails
  // with kResourceExhausted.
  size_t max_inbox_bytes = size_t{256} << 20;
};

// Serves JSON-RPC channels over an ipc::Server. Per channel: a Peer whose transport is the
// channel's Responder, and a thread that feeds it the client's messages in order (the IPC
// worker only queues them). Register() before the server starts; destroy the service after the
// server has shut down.
class ShmRpcService {
 public:
  ShmRpcService(ShmRpcServiceOptions options, ChannelFactory factory);
  ~ShmRpcService();  // Closes every channel and waits for them to end.
  ShmRpcService(const ShmRpcService&) = delete;
  ShmRpcService& operator=(const ShmRpcService&) = delete;

  void Register(ipc::Server& server);
  size_t open_channels() const;
  // For a server about to stop: ends every channel as if its client had stopped sending
  // (Peer::EndOfInput), so requests running there see their cancel signal and are still
  // answered (a prompt answers "cancelled"), then the channel finishes. Waits for that at most
  // `grace`; channels still open then are left to the destructor.
  void EndAll(std::chrono::milliseconds grace);

  struct Channel;  // Internal: one open channel (the .cc's helpers use it).

 private:
  void Open(std::shared_ptr<ipc::Responder> responder);
  Status Receive(const ipc::Message& message);
  void RunChannel(const std::shared_ptr<Channel>& channel);
  // Joins the threads of channels that have ended. Under mutex_.
  void ReapLocked();
  // Sets `flag` (is_ending or is_cancelled) on every open channel and wakes its thread.
  void FlagAll(bool Channel::*flag);

  const ShmRpcServiceOptions options_;
  const ChannelFactory factory_;

  mutable std::mutex mutex_;
  std::condition_variable channel_ended_;
  // Open channels by token; shared with their threads and (weakly) their cancel callbacks.
  std::unordered_map<uint64_t, std::shared_ptr<Channel>> channels_;  // Guarded by mutex_.
  std::vector<std::thread> ended_threads_;                           // Guarded by mutex_.
  uint64_t token_state_;                                             // Guarded by mutex_.
};

// The client side of one channel: opens it on one ipc::Client and reads the server's messages on
// a reader thread; sends its own over a second ipc::Client (ipc::Client is one-thread-at-a-time).
// The end of the channel (server finished it, disconnected, or Close()) closes the peer.
class ShmClientTransport : public Transport {
 public:
  // Connects, opens a channel and reads its token. kUnavailable when no server listens; kTimeout
  // or the server's error when the channel cannot be opened.
  static Result<std::unique_ptr<ShmClientTransport>> Connect(const ipc::ClientOptions& options,
                                                             uint16_t open_type,
                                                             uint16_t message_type);
  ~ShmClientTransport() override;  // Close().

  // One message to the server. kUnavailable after the channel ended.
  Status Send(std::string_view message) override;
  // Starts the reader thread. `peer` must outlive the transport (or Close() must run first).
  void Start(Peer& peer);
  // Asks the server to end the channel and joins the reader (which closes the peer).
  // Idempotent; not from the reader thread.
  void Close();

  uint64_t token() const { return token_; }

 private:
  ShmClientTransport(const ipc::ClientOptions& options, uint16_t message_type);
  void ReadLoop(Peer& peer);

  ipc::Client reader_client_;  // Confined to the reader thread once started.
  uint64_t open_request_id_ = 0;
  uint64_t token_ = 0;
  const uint16_t message_type_;
  std::atomic<bool> is_ended_{false};
  std::atomic<bool> is_stopping_{false};
  std::thread reader_;

  std::mutex send_mutex_;
  ipc::Client sender_client_;     // Guarded by send_mutex_.
  std::vector<std::byte> frame_;  // Guarded by send_mutex_.
  bool has_sent_close_ = false;   // Guarded by send_mutex_.
};

}  // namespace lai::rpc
