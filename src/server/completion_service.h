// CompletionService: the raw completion service over IPC (message type kComplete, services.h).
// An AIRequest in, a stream of JSON event frames out, cancellable by request id. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "ipc/server.h"

namespace lai::llm {
class ProviderPool;
struct StreamEvent;
}

namespace lai::server {

struct CompletionServiceOptions {
  // Output a client has not read yet, per stream; beyond it the stream fails (kResourceExhausted)
  // and its provider request is cancelled, so a stuck client costs bounded memory.
  size_t max_queued_bytes_per_stream = size_t{8} << 20;
  // How often open streams are checked for a client's cancel (kCancel only sets a flag on the
  // Responder; see the .cc). Bounds the delay between the cancel and the provider request's end.
  std::chrono::milliseconds cancel_poll_interval{2};
};

// Serves kComplete. Per request: the IPC worker only hands the payload to a new sender thread;
// that thread parses the AIRequest, starts ProviderPool::Stream and forwards each StreamEvent as
// one stream item (`{"type":"text",…}`, see ai_protocol.h), ending with the `done` event as the
// final reply, or with an `error` item followed by an error reply. `stream:false` requests get
// one final reply holding the whole answer.
// Thread-safe. Register() before the server starts; destroy the service after the server has
// shut down (so no sender waits on a client any more) and before the pool.
class CompletionService {
 public:
  // `pool` is borrowed and must outlive the service; nullptr = no usable provider profile:
  // every completion then fails with kUnavailable and `unavailable_reason`.
  CompletionService(llm::ProviderPool* pool, std::string unavailable_reason,
                    CompletionServiceOptions options = {});
  ~CompletionService();  // Cancels open streams and waits for their threads.
  CompletionService(const CompletionService&) = delete;
  CompletionService& operator=(const CompletionService&) = delete;

  void Register(ipc::Server& server);
  // The stream handler (public for tests that drive it without a server).
  void Handle(const ipc::Message& request, std::shared_ptr<ipc::Responder> responder);

  size_t open_streams() const;

 private:
  struct Stream;
  // The sink's work, on the HTTP I/O thread: encodes and queues, never blocks beyond the stream's
  // mutex; wakes the stream's sender.
  static void Deliver(Stream& s, const llm::StreamEvent& event, size_t max_queued_bytes);
  void Run(std::shared_ptr<Stream> stream, std::string payload);
  void WatchCancels();

  // Immutable after construction.
  llm::ProviderPool* const pool_;
  const std::string unavailable_reason_;
  const CompletionServiceOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::shared_ptr<Stream>> open_;  // Guarded by mutex_.
  bool stopping_ = false;                   // Guarded by mutex_.
  std::thread watcher_;
};

}  // namespace lai::server
