// The IPC server: accepts connections on a Unix control socket, serves their shared-memory rings
// from a few worker threads (no thread per connection), and dispatches messages to handlers by
// type. Server's public methods are thread-safe; handlers run on worker threads.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "ipc/channel.h"
#include "ipc/frame.h"
#include "ipc/metrics.h"
#include "ipc/socket.h"

namespace lai::ipc {

struct ServerOptions {
  std::string socket_path;
  // kOwn: the socket's directory is lapce-ai's runtime directory; kChosen: the user named the
  // path, and its directory is only checked (see EnsurePrivateDir in ipc/socket.h).
  SocketDir socket_dir = SocketDir::kOwn;
  uint32_t workers = 1;
  uint32_t max_connections = 4096;
  uint32_t max_message_bytes = 10u << 20;
  uid_t allowed_uid = ::getuid();  // Only this user's processes may connect.
  std::chrono::nanoseconds max_spin{20'000};  // Worker spin before it sleeps in epoll_wait.
  size_t buffer_budget_bytes = size_t{256} << 20;  // Reassembly and queued-reply memory.
  std::chrono::milliseconds handshake_timeout{1000};
  std::chrono::milliseconds drain_timeout{1000};  // How long shutdown waits for queued replies.
};

namespace internal {
struct Connection;
class Worker;
}  // namespace internal

// The single final reply of a synchronous handler. Confined to the handler's worker thread,
// valid only during the handler call.
class Reply {
 public:
  // Space for a reply payload of `bytes`: in the ring itself when it fits (no copy), otherwise a
  // pooled buffer queued behind earlier output. Fill it, then Commit().
  Result<std::span<std::byte>> Reserve(uint32_t bytes);
  void Commit();
  // Reserve + copy + Commit.
  Status Send(std::span<const std::byte> payload);
  bool is_sent() const { return sent_; }
  // The payload bytes sent (0 before, and for a notification, which sends nothing).
  uint32_t sent_bytes() const { return sent_ && !discard_ ? reserved_bytes_ : 0; }

 private:
  friend class internal::Worker;
  Reply(internal::Worker& worker, internal::Connection& connection, const FrameHeader& request);
  Error TooLarge(size_t bytes) const;
  // The ring's payload area for this reply when it may go straight there now (a request, nothing
  // queued before it, room in the ring); a null span otherwise.
  std::span<std::byte> ClaimInRing(uint32_t bytes);
  // The scratch area of a notification's reply, or a pooled buffer queued behind earlier output.
  Result<std::span<std::byte>> ReserveOffRing(uint32_t bytes);

  internal::Worker& worker_;
  internal::Connection& connection_;
  FrameHeader header_;
  uint32_t reserved_bytes_ = 0;
  bool discard_ = false;  // The request was a notification (kFlagNoReply).
  bool in_ring_ = false;
  bool sent_ = false;
  std::optional<PooledBuffer> buffer_;
};

// Sends the items of a streamed reply; a streaming handler may pass it to any thread.
// Thread-safe. Every request gets exactly one final reply: if the last reference is dropped
// without Finish() or Fail(), the client receives an error.
class Responder {
 public:
  enum class SendResult {
    kSent,
    kFull,    // Back-pressure (the connection's output queue or buffer pool is full): retry later.
    kClosed,  // The client disconnected, or the request was already answered.
    kCancelled,  // The client cancelled the request.
    kTooLarge,   // Over the connection's message limit: never sent, the stream goes on.
  };

  ~Responder();
  // One item of the stream. Blocks while the connection's output queue is full (back-pressure);
  // kUnavailable when the client has gone, kCancelled when it cancelled the request,
  // kResourceExhausted (nothing sent, the stream open) for an item over the connection's limit.
  Status Send(std::span<const std::byte> item);
  Status Finish(std::span<const std::byte> last = {});
  Status Fail(const Error& error);
  // Non-blocking versions of Send, Finish and Fail: kFull instead of waiting for space. A final
  // reply that was not kSent has not been sent; send it again later.
  SendResult TrySend(std::span<const std::byte> item);
  SendResult TryFinish(std::span<const std::byte> last = {});
  SendResult TryFail(const Error& error);
  bool is_cancelled() const;
  // Runs `callback` once when the client cancels the request or disconnects: on the connection's
  // worker thread as the cancel or the hang-up is noticed (it must not block: it holds up every
  // connection of that worker; nor may it call Send/Finish/Fail, which can wait for that worker),
  // or at once on the calling thread if that has already happened. Set it at most once. It runs
  // outside the Responder's locks and may run while the Responder is being destroyed: capture
  // what it needs by value or weakly, not the Responder's owner.
  void OnCancel(std::function<void()> callback);
  uint64_t request_id() const { return request_id_; }
  // The largest item the connection takes (the limit both sides agreed at connect).
  uint32_t max_message_bytes() const;

  // Internal: built by the worker.
  struct Shared;
  Responder(std::shared_ptr<Shared> shared, uint64_t request_id, uint16_t type);
  // Marks the request cancelled; returns the OnCancel callback to run once the caller has
  // released Shared::mutex (which it holds).
  std::function<void()> CancelLocked();

 private:
  Status Enqueue(uint8_t flags, std::span<const std::byte> payload, bool final);
  Error TooLarge(size_t bytes) const;
  // A frame of `bytes` went out: counted, and when `final`, the request is finished and its
  // bytes and outcome recorded (MetricsRegistry::RecordStreamed). Under Shared::mutex.
  void CountSentLocked(uint8_t flags, size_t bytes, bool final);
  SendResult TryEnqueue(uint8_t flags, std::span<const std::byte> payload, bool final);

  std::shared_ptr<Shared> shared_;
  uint64_t request_id_;
  uint16_t type_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finished_{false};
  uint64_t sent_bytes_ = 0;          // Guarded by Shared::mutex.
  std::function<void()> on_cancel_;  // Guarded by Shared::mutex.
};

// A synchronous handler answers in place through `reply`; returning an error sends an error
// reply instead (unless it already replied). Exceptions become error replies too.
using Handler = std::function<Status(const Message& request, Reply& reply)>;
// A streaming handler keeps `responder` as long as it likes (shared between the worker and the
// handler's threads, hence shared_ptr).
using StreamHandler = std::function<void(const Message& request, std::shared_ptr<Responder>)>;

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Shuts down if still running.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Register before Start(). `type` in 16..255 for services, or a built-in type (echo, health,
  // metrics) to serve it.
  void Handle(uint16_t type, std::string name, Handler handler);
  void HandleStream(uint16_t type, std::string name, StreamHandler handler);

  // Creates the runtime directory, takes the server lock (kUnavailable if a live server holds it;
  // a stale socket file is replaced), binds, and starts the threads.
  Status Start();
  // Graceful: stop accepting, tell clients (a kShutdown frame), flush queued replies for at most
  // drain_timeout, close every connection, remove the socket file. Idempotent.
  void Shutdown();
  // Blocks until Shutdown() has finished.
  void Wait();

  const ServerOptions& options() const { return options_; }
  MetricsRegistry& metrics() { return metrics_; }
  size_t connection_count() const;

 private:
  friend class internal::Worker;
  struct Impl;

  ServerOptions options_;
  MetricsRegistry metrics_;
  std::unique_ptr<Impl> impl_;
};

// Registers echo, health and metrics handlers.
void RegisterBuiltinHandlers(Server& server);

// The JSON payload of an error reply: {"code":"timeout","message":"..."}.
std::string ErrorPayload(const Error& error);

}  // namespace lai::ipc
