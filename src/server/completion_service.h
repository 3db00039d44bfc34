// CompletionService: the raw completion service over IPC (message type kComplete, services.h).
// An AIRequest in, a stream of JSON event frames out, cancellable by request id. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ipc/server.h"

namespace lai::llm {
class ProviderPool;
struct StreamEvent;
}  // namespace lai::llm

namespace lai::server {

struct CompletionServiceOptions {
  // Output a client has not read yet, per stream, beyond what the connection's own output queue
  // holds; beyond it the stream fails (kResourceExhausted) and its provider request is
  // cancelled, so a stuck client costs bounded memory.
  size_t max_queued_bytes_per_stream = size_t{8} << 20;
  // How often the drainer retries streams whose clients are not reading (only while some are).
  std::chrono::milliseconds full_retry_interval{1};
};

// Serves kComplete. Per request, on the IPC worker: parses the AIRequest, starts
// ProviderPool::Stream and returns. Each StreamEvent is then sent as one stream item
// (`{"type":"text",…}`, see ai_protocol.h) straight from the HTTP I/O thread, ending with the
// `done` event as the final reply, or with an `error` item followed by an error reply.
// `stream:false` requests get one final reply holding the whole answer. Output that does not fit
// the client's connection waits in a per-stream queue drained by one thread for the whole
// service; a client's cancel or hang-up cancels the provider request at once (see the .cc).
// Thread-safe. Register() before the server starts; destroy the service after the server has
// shut down and before the pool.
class CompletionService {
 public:
  // `pool` is borrowed and must outlive the service; nullptr = no usable provider profile:
  // every completion then fails with kUnavailable and `unavailable_reason`.
  CompletionService(llm::ProviderPool* pool, std::string unavailable_reason,
                    CompletionServiceOptions options = {});
  // Builds the pool on the first request instead (on that request's IPC worker thread), so an
  // engine nobody asks for a completion never loads libcurl. An error from `make_pool` becomes
  // every completion's kUnavailable reason.
  using PoolFactory = std::function<Result<std::unique_ptr<llm::ProviderPool>>()>;
  explicit CompletionService(PoolFactory make_pool, CompletionServiceOptions options = {});
  ~CompletionService();  // Cancels open streams, waits until each is answered, joins the drainer.
  CompletionService(const CompletionService&) = delete;
  CompletionService& operator=(const CompletionService&) = delete;

  void Register(ipc::Server& server);
  // The stream handler (public for tests that drive it without a server).
  void Handle(const ipc::Message& request, std::shared_ptr<ipc::Responder> responder);

  size_t open_streams() const;

  struct Stream;  // Internal: one open completion (the .cc's helpers use it).

 private:
  // The sink, on the HTTP I/O thread: encodes the event and sends it without blocking.
  static void Deliver(const std::shared_ptr<Stream>& stream, const llm::StreamEvent& event);
  // Ends a stream that failed before its provider request started.
  void Reject(const std::shared_ptr<Stream>& stream, const Error& error);
  // The drainer thread's loop, and its work on one stream (true if it sent something).
  void Drain();
  static bool DrainSome(const std::shared_ptr<Stream>& stream, bool* still_backlogged);
  void Schedule(std::shared_ptr<Stream> stream);
  void Retire(const std::shared_ptr<Stream>& stream);

  // The pool (built by Pool() on first use when a factory was given), or nullptr with the reason.
  llm::ProviderPool* Pool();

  PoolFactory make_pool_;
  std::once_flag pool_once_;
  std::unique_ptr<llm::ProviderPool> owned_pool_;  // Set once, under pool_once_.
  llm::ProviderPool* pool_;                        // Written before or under pool_once_.
  std::string unavailable_reason_;                 // Likewise.
  const CompletionServiceOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;            // open_ became empty, or work_ grew.
  std::set<std::shared_ptr<Stream>> open_;     // Guarded by mutex_.
  std::vector<std::shared_ptr<Stream>> work_;  // Backlogged streams; guarded by mutex_.
  bool has_new_work_ = false;                  // Guarded by mutex_.
  bool stopping_ = false;                      // Guarded by mutex_.
  std::thread drainer_;
};

}  // namespace lai::server
