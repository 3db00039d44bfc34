#include "server/completion_service.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "llm/pool.h"
#include "server/ai_protocol.h"
#include "server/services.h"

namespace lai::server {

// Why a thread per open stream: events arrive on the HTTP I/O thread, which serves every stream
// and must never block, while Responder::Send blocks whenever the client's connection has a full
// output queue (back-pressure). So the sink only appends the encoded event to this stream's own
// queue (bounded by max_queued_bytes_per_stream) and wakes the stream's sender thread, which
// does the possibly blocking Send. A slow client then blocks its own sender only: neither the
// I/O thread nor other streams wait for it. A shared sender pool would not have that property
// (one stuck connection per pool thread stalls everything). The cost, one mostly sleeping thread
// per open completion, is small beside a provider request.
//
// Cancellation: the worker handles the client's kCancel by setting a flag on the Responder; there
// is no callback. A sender blocked in Send, or one waiting for the next event of a silent
// provider, would notice late, so one watcher thread polls the open streams every
// cancel_poll_interval (only while some are open) and cancels the provider stream of each
// cancelled request at once. The sink then receives kError/kCancelled and the sender answers
// the request with a kCancelled error reply.
struct CompletionService::Stream {
  explicit Stream(std::shared_ptr<ipc::Responder> r) : responder(std::move(r)) {}

  const std::shared_ptr<ipc::Responder> responder;

  std::mutex mutex;
  std::condition_variable ready;
  // Guarded by mutex:
  std::shared_ptr<llm::StreamHandle> handle;
  bool is_streaming = true;
  std::deque<std::string> items;  // Encoded events waiting for Send.
  size_t queued_bytes = 0;
  bool has_ended = false;              // final_payload or failure is set; later events dropped.
  std::optional<std::string> final_payload;
  std::optional<Error> failure;
  bool cancel_requested = false;
  bool has_provider_ended = false;  // The sink saw kDone or kError.
  llm::Usage last_usage;
  ReplyCollector collector;  // stream:false only.
};

CompletionService::CompletionService(llm::ProviderPool* pool, std::string unavailable_reason,
                                     CompletionServiceOptions options)
    : pool_(pool), unavailable_reason_(std::move(unavailable_reason)), options_(options) {
  watcher_ = std::thread([this] { WatchCancels(); });
}

CompletionService::~CompletionService() {
  std::vector<std::shared_ptr<llm::StreamHandle>> handles;
  {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    for (const std::shared_ptr<Stream>& s : open_) {
      std::lock_guard stream_lock(s->mutex);
      if (s->handle) handles.push_back(s->handle);
    }
  }
  changed_.notify_all();
  for (const auto& handle : handles) handle->Cancel();
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return open_.empty(); });
  }
  watcher_.join();
}

void CompletionService::Register(ipc::Server& server) {
  server.HandleStream(ToWire(ServiceType::kComplete), "complete",
                      [this](const ipc::Message& request, std::shared_ptr<ipc::Responder> r) {
                        Handle(request, std::move(r));
                      });
}

size_t CompletionService::open_streams() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

void CompletionService::Handle(const ipc::Message& request,
                               std::shared_ptr<ipc::Responder> responder) {
  // On the IPC worker thread: copy the payload and hand over. Even an error reply goes through
  // the sender thread, because Responder::Fail may wait for the very queue this worker drains.
  auto stream = std::make_shared<Stream>(std::move(responder));
  std::string payload(reinterpret_cast<const char*>(request.payload.data()),
                      request.payload.size());
  {
    std::lock_guard lock(mutex_);
    open_.insert(stream);
  }
  changed_.notify_all();  // Wakes the watcher.
  try {
    std::thread([this, stream, payload = std::move(payload)]() mutable {
      Run(stream, std::move(payload));
    }).detach();
  } catch (const std::system_error& e) {
    // Out of threads (RLIMIT_NPROC, memory). Rare enough to answer here, on the worker.
    {
      std::lock_guard lock(mutex_);
      open_.erase(stream);
      changed_.notify_all();
    }
    (void)stream->responder->Fail(Error(
        ErrorCode::kResourceExhausted,
        std::string("complete: cannot start a thread for the stream: ") + e.what()));
  }
}

void CompletionService::Run(std::shared_ptr<Stream> stream, std::string payload) {
  Stream& s = *stream;
  ipc::Responder& responder = *s.responder;
  auto finish = [&] {
    std::lock_guard lock(mutex_);
    open_.erase(stream);
    // Notify under the lock: the destructor may return (destroying changed_) once it sees
    // open_ empty, so this thread must not touch the service after unlocking.
    changed_.notify_all();
  };

  Result<AiRequest> parsed = ParseAiRequest(payload);
  if (!parsed.ok()) {
    (void)responder.Fail(parsed.error());
    finish();
    return;
  }
  if (pool_ == nullptr) {
    (void)responder.Fail(Error(ErrorCode::kUnavailable, unavailable_reason_));
    finish();
    return;
  }
  {
    std::lock_guard lock(s.mutex);
    s.is_streaming = parsed->stream;
  }
  const size_t max_queued = options_.max_queued_bytes_per_stream;
  std::weak_ptr<Stream> weak = stream;
  // The sink holds the stream weakly and never cancels or releases the provider stream itself:
  // the handle is cancelled and dropped on this thread only (its last reference must not go on
  // the I/O thread, whose owner it may keep alive).
  Result<std::shared_ptr<llm::StreamHandle>> handle = pool_->Stream(
      parsed->profile, std::move(parsed->request), [weak, max_queued](const llm::StreamEvent& e) {
        if (std::shared_ptr<Stream> target = weak.lock()) Deliver(*target, e, max_queued);
      });
  if (!handle.ok()) {
    (void)responder.Fail(handle.error());
    finish();
    return;
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(s.mutex);
    s.handle = *handle;
    cancel_now = s.cancel_requested && !s.has_ended;
  }
  if (cancel_now || responder.is_cancelled()) (*handle)->Cancel();

  bool is_client_gone = false;
  for (;;) {
    std::deque<std::string> batch;
    std::optional<std::string> final_payload;
    std::optional<Error> failure;
    {
      std::unique_lock lock(s.mutex);
      s.ready.wait(lock, [&] { return !s.items.empty() || s.has_ended; });
      batch.swap(s.items);
      s.queued_bytes = 0;
      if (batch.empty()) {
        final_payload = std::move(s.final_payload);
        failure = std::move(s.failure);
      }
    }
    if (!batch.empty()) {
      for (const std::string& item : batch) {
        Status sent = responder.Send(std::as_bytes(std::span(item)));
        if (sent.ok()) continue;
        // kCancelled (the client cancelled) or kUnavailable (it disconnected): stop the provider
        // at once and answer (if anyone still listens) without waiting for its last event.
        (*handle)->Cancel();
        is_client_gone = sent.error().code() != ErrorCode::kCancelled;
        failure = sent.error().code() == ErrorCode::kCancelled
                      ? Error(ErrorCode::kCancelled, "the client cancelled the completion")
                      : sent.error();
        break;
      }
      if (!failure) continue;
    }
    if (!is_client_gone) {
      if (failure) {
        (void)responder.Fail(*failure);
      } else {
        (void)responder.Finish(std::as_bytes(std::span(*final_payload)));
      }
    }
    break;
  }
  std::shared_ptr<llm::StreamHandle> provider;
  bool is_provider_running = false;
  {
    // Late events (after a client-side stop) are dropped.
    std::lock_guard lock(s.mutex);
    s.has_ended = true;
    s.items.clear();
    is_provider_running = !s.has_provider_ended;
    provider = std::move(s.handle);
  }
  // A client that went away, cancelled, or fell too far behind: stop the provider request now.
  if (is_provider_running) provider->Cancel();
  provider.reset();
  handle->reset();
  finish();
}

void CompletionService::WatchCancels() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (open_.empty()) {
      changed_.wait(lock, [this] { return stopping_ || !open_.empty(); });
      continue;
    }
    changed_.wait_for(lock, options_.cancel_poll_interval);
    std::vector<std::shared_ptr<llm::StreamHandle>> to_cancel;
    for (const std::shared_ptr<Stream>& s : open_) {
      if (!s->responder->is_cancelled()) continue;
      std::lock_guard stream_lock(s->mutex);
      if (s->cancel_requested || !s->handle) continue;
      s->cancel_requested = true;
      to_cancel.push_back(s->handle);
    }
    if (to_cancel.empty()) continue;
    lock.unlock();
    for (const auto& handle : to_cancel) handle->Cancel();
    lock.lock();
  }
}

void CompletionService::Deliver(Stream& s, const llm::StreamEvent& event,
                                size_t max_queued_bytes) {
  using Kind = llm::StreamEvent::Kind;
  {
    std::lock_guard lock(s.mutex);
    if (event.kind == Kind::kDone || event.kind == Kind::kError) s.has_provider_ended = true;
    if (s.has_ended) return;
    if (event.kind == Kind::kUsage) s.last_usage = event.usage;
    if (event.kind == Kind::kError) {
      if (s.is_streaming) s.items.push_back(EventJson(event, s.last_usage));
      Error error(ErrorCodeFor(event.error.kind), event.error.message);
      if (event.error.kind == llm::ErrorKind::kCancelled && s.cancel_requested &&
          s.responder->is_cancelled()) {
        error = Error(ErrorCode::kCancelled, "the client cancelled the completion");
      }
      s.failure = std::move(error);
      s.has_ended = true;
    } else if (!s.is_streaming) {
      s.collector.Add(event);
      if (event.kind == Kind::kDone) {
        s.final_payload = s.collector.FinalJson();
        s.has_ended = true;
      }
    } else if (event.kind == Kind::kDone) {
      s.final_payload = EventJson(event, s.last_usage);
      s.has_ended = true;
    } else {
      std::string item = EventJson(event, s.last_usage);
      s.queued_bytes += item.size();
      s.items.push_back(std::move(item));
      if (s.queued_bytes > max_queued_bytes) {
        s.failure = Error(ErrorCode::kResourceExhausted,
                          "complete: the client fell more than " +
                              std::to_string(max_queued_bytes >> 20) +
                              " MiB behind reading the stream; the completion was stopped");
        s.has_ended = true;
        s.items.clear();  // The client is behind anyway; free the memory now.
        s.queued_bytes = 0;
      }
    }
  }
  s.ready.notify_one();
}

}  // namespace lai::server
