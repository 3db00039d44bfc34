#include "server/completion_service.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "llm/pool.h"
#include "server/ai_protocol.h"
#include "server/services.h"

namespace lai::server {

// Threads. Events arrive on the HTTP I/O thread, which serves every stream and must never block.
// Its sink encodes each event and hands it to Responder::TrySend, which writes the frame into the
// client's ring from this thread (or queues it for the IPC worker when the ring is full) without
// waiting: no thread hop between the provider's socket and the client.
// Only when that connection's output queue is full (the client is not keeping up) does the
// event go into this stream's own backlog (bounded by max_queued_bytes_per_stream); from then on
// every later event, the final reply included, goes behind it, so the order is kept. One drainer
// thread for the whole service empties the backlogs, also with TrySend: a stream whose client is
// still full is retried every full_retry_interval while others are served, so a client that
// stops reading stalls its own stream only, and never the I/O thread, a worker, or the drainer.
//
// Cancellation: Responder::OnCancel runs on the IPC worker when the client's kCancel (or its
// hang-up) arrives; it cancels the provider request at once (non-blocking). The sink then gets
// kError/kCancelled and answers with a kCancelled error reply.
//
// Locks: Stream::mutex, then the connection's lock inside TrySend, then mutex_. Provider streams
// are cancelled with no lock held. A stream leaves open_ (Retire) once its final reply is
// queued, or nobody listens any more; after that nothing touches the service on its behalf.
struct CompletionService::Stream {
  Stream(CompletionService* s, std::shared_ptr<ipc::Responder> r)
      : service(s),
        responder(std::move(r)),
        max_backlog_bytes(s->options_.max_queued_bytes_per_stream) {}

  CompletionService* const service;  // Used only while the stream is in open_.
  const std::shared_ptr<ipc::Responder> responder;
  const size_t max_backlog_bytes;

  std::mutex mutex;
  // Guarded by mutex:
  std::shared_ptr<llm::StreamHandle> handle;
  bool is_streaming = true;
  bool cancel_requested = false;    // The client cancelled or went away.
  bool has_provider_ended = false;  // The sink saw kDone or kError.
  bool is_provider_cancelled = false;
  bool has_ended = false;    // The final reply is decided; later events are dropped.
  bool is_answered = false;  // The final reply is queued (or nobody listens): retire.
  bool is_retired = false;
  bool is_backlogged = false;       // Output waits in `backlog`/`final_*` for the drainer.
  std::deque<std::string> backlog;  // Encoded events that did not fit the connection yet.
  size_t backlog_bytes = 0;
  std::optional<std::string> final_payload;  // Decided final reply not sent yet (backlogged).
  std::optional<Error> final_error;
  llm::Usage last_usage;
  ReplyCollector collector;  // stream:false only.
};

namespace {

using SendResult = ipc::Responder::SendResult;
using Stream = CompletionService::Stream;

std::span<const std::byte> Bytes(const std::string& text) { return std::as_bytes(std::span(text)); }

Error ClientCancelled() {
  return Error(ErrorCode::kCancelled, "the client cancelled the completion");
}

// Under s.mutex: tries the decided final reply (final_payload or final_error). True once it is
// out of our hands (sent, or the client is gone); false when the connection is full.
bool TrySendFinalLocked(Stream& s) {
  SendResult sent = s.final_payload ? s.responder->TryFinish(Bytes(*s.final_payload))
                                    : s.responder->TryFail(*s.final_error);
  if (sent == SendResult::kFull) return false;
  s.final_payload.reset();
  s.final_error.reset();
  s.is_answered = true;
  return true;
}

// Under s.mutex: what the caller must do once it has released the lock.
struct Aftermath {
  std::shared_ptr<llm::StreamHandle> cancel;  // Cancel this provider stream.
  bool retire = false;
};

Aftermath TakeAftermathLocked(Stream& s) {
  Aftermath after;
  // The stream ended on our side (client cancelled, went away, fell behind) while the provider
  // still runs: stop it now.
  if (s.has_ended && !s.has_provider_ended && !s.is_provider_cancelled && s.handle) {
    s.is_provider_cancelled = true;
    after.cancel = s.handle;
  }
  if (s.is_answered && !s.is_retired) {
    s.is_retired = true;
    after.retire = true;
  }
  return after;
}

}  // namespace

namespace {

// Decides the final reply and sends it now if nothing is backlogged; returns true if the
// stream must be scheduled for the drainer.
bool EndLocked(Stream& s, std::optional<std::string> payload, std::optional<Error> error) {
  if (s.has_ended) return false;
  s.has_ended = true;
  s.final_payload = std::move(payload);
  s.final_error = std::move(error);
  if (s.is_backlogged) return false;  // The drainer sends it after the backlog.
  if (TrySendFinalLocked(s)) return false;
  s.is_backlogged = true;
  return true;
}

// Sends one item now if nothing waits before it, else backlogs it. True if the stream must be
// scheduled for the drainer.
bool EmitLocked(Stream& s, std::string item) {
  if (!s.is_backlogged) {
    switch (s.responder->TrySend(Bytes(item))) {
      case SendResult::kSent:
        return false;
      case SendResult::kFull:
        break;
      case SendResult::kCancelled:
        s.cancel_requested = true;
        return EndLocked(s, std::nullopt, ClientCancelled());
      case SendResult::kClosed:
        s.cancel_requested = true;
        s.has_ended = true;
        s.is_answered = true;  // Nobody listens.
        return false;
      case SendResult::kTooLarge:
        s.cancel_requested = true;
        return EndLocked(s, std::nullopt,
                         Error(ErrorCode::kResourceExhausted,
                               "a streamed item of " + std::to_string(item.size()) +
                                   " bytes is over the connection's message limit"));
    }
  }
  const bool schedule = !s.is_backlogged;
  s.is_backlogged = true;
  s.backlog_bytes += item.size();
  s.backlog.push_back(std::move(item));
  if (s.backlog_bytes > s.max_backlog_bytes) {
    s.backlog.clear();  // The client is behind anyway; free the memory now.
    s.backlog_bytes = 0;
    s.has_ended = true;  // This failure is the answer.
    s.final_payload.reset();
    s.final_error =
        Error(ErrorCode::kResourceExhausted,
              "complete: the client fell more than " + std::to_string(s.max_backlog_bytes >> 20) +
                  " MiB behind reading the stream; the completion was stopped");
  }
  return schedule;
}

}  // namespace

CompletionService::CompletionService(llm::ProviderPool* pool, std::string unavailable_reason,
                                     CompletionServiceOptions options)
    : pool_(pool), unavailable_reason_(std::move(unavailable_reason)), options_(options) {
  std::call_once(pool_once_, [] {});  // The pool is already decided.
  drainer_ = std::thread([this] { Drain(); });
}

CompletionService::CompletionService(PoolFactory make_pool, CompletionServiceOptions options)
    : make_pool_(std::move(make_pool)), pool_(nullptr), options_(options) {
  drainer_ = std::thread([this] { Drain(); });
}

llm::ProviderPool* CompletionService::Pool() {
  std::call_once(pool_once_, [this] {
    Result<std::unique_ptr<llm::ProviderPool>> made = make_pool_();
    if (made.ok()) {
      owned_pool_ = std::move(made).value();
      pool_ = owned_pool_.get();
    } else {
      unavailable_reason_ = made.error().message();
    }
  });
  return pool_;
}

CompletionService::~CompletionService() {
  std::vector<std::shared_ptr<Stream>> open;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    open.assign(open_.begin(), open_.end());
  }
  changed_.notify_all();
  for (const std::shared_ptr<Stream>& s : open) {
    std::shared_ptr<llm::StreamHandle> handle;
    {
      std::lock_guard lock(s->mutex);
      if (!s->has_provider_ended) handle = s->handle;
    }
    if (handle) handle->Cancel();  // The sinks answer with kCancelled errors.
  }
  open.clear();
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return open_.empty(); });
  }
  changed_.notify_all();
  drainer_.join();
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
  // On the IPC worker thread. Nothing here blocks: parsing, starting the transfer (queued for the
  // I/O thread), and non-blocking replies.
  auto stream = std::make_shared<Stream>(this, std::move(responder));
  {
    std::lock_guard lock(mutex_);
    open_.insert(stream);
  }
  Result<AiRequest> parsed = ParseAiRequest(std::string_view(
      reinterpret_cast<const char*>(request.payload.data()), request.payload.size()));
  if (!parsed.ok()) return Reject(stream, parsed.error());
  llm::ProviderPool* pool = Pool();
  if (pool == nullptr) return Reject(stream, Error(ErrorCode::kUnavailable, unavailable_reason_));
  {
    std::lock_guard lock(stream->mutex);
    stream->is_streaming = parsed->stream;
  }
  std::weak_ptr<Stream> weak = stream;
  // The sink holds the stream weakly: a stream that was answered and retired may still get
  // late events, which it drops.
  Result<std::shared_ptr<llm::StreamHandle>> handle =
      pool->Stream(parsed->profile, std::move(parsed->request), [weak](const llm::StreamEvent& e) {
        if (std::shared_ptr<Stream> target = weak.lock()) Deliver(target, e);
      });
  if (!handle.ok()) return Reject(stream, handle.error());
  Aftermath after;
  {
    std::lock_guard lock(stream->mutex);
    stream->handle = *handle;
    after = TakeAftermathLocked(*stream);  // The stream may have ended already.
  }
  if (after.cancel) after.cancel->Cancel();
  if (after.retire) Retire(stream);
  // Runs on the worker (at once if the client already cancelled): cancel the provider request.
  stream->responder->OnCancel([weak] {
    std::shared_ptr<Stream> s = weak.lock();
    if (!s) return;
    std::shared_ptr<llm::StreamHandle> provider;
    {
      std::lock_guard lock(s->mutex);
      s->cancel_requested = true;
      if (!s->has_provider_ended && !s->is_provider_cancelled) {
        s->is_provider_cancelled = true;
        provider = s->handle;
      }
    }
    if (provider) provider->Cancel();
  });
}

void CompletionService::Reject(const std::shared_ptr<Stream>& stream, const Error& error) {
  bool schedule = false;
  Aftermath after;
  {
    std::lock_guard lock(stream->mutex);
    schedule = EndLocked(*stream, std::nullopt, error);
    after = TakeAftermathLocked(*stream);
  }
  if (schedule) Schedule(stream);
  if (after.retire) Retire(stream);
}

void CompletionService::Deliver(const std::shared_ptr<Stream>& stream,
                                const llm::StreamEvent& event) {
  using Kind = llm::StreamEvent::Kind;
  Stream& s = *stream;
  bool schedule = false;
  Aftermath after;
  {
    std::lock_guard lock(s.mutex);
    if (event.kind == Kind::kDone || event.kind == Kind::kError) s.has_provider_ended = true;
    if (s.has_ended) return;
    if (event.kind == Kind::kUsage) s.last_usage = event.usage;
    if (event.kind == Kind::kError) {
      if (s.is_streaming) schedule = EmitLocked(s, EventJson(event, s.last_usage));
      Error error(ErrorCodeFor(event.error.kind), event.error.message);
      if (event.error.kind == llm::ErrorKind::kCancelled && s.cancel_requested) {
        error = ClientCancelled();
      }
      schedule = EndLocked(s, std::nullopt, std::move(error)) || schedule;
    } else if (!s.is_streaming) {
      s.collector.Add(event);
      if (event.kind == Kind::kDone) schedule = EndLocked(s, s.collector.FinalJson(), std::nullopt);
    } else if (event.kind == Kind::kDone) {
      schedule = EndLocked(s, EventJson(event, s.last_usage), std::nullopt);
    } else {
      schedule = EmitLocked(s, EventJson(event, s.last_usage));
    }
    after = TakeAftermathLocked(s);
  }
  // The stream is still in open_ here (only this call may retire it now), so the service lives.
  if (schedule) s.service->Schedule(stream);
  if (after.cancel) after.cancel->Cancel();
  if (after.retire) s.service->Retire(stream);
}

void CompletionService::Schedule(std::shared_ptr<Stream> stream) {
  {
    std::lock_guard lock(mutex_);
    work_.push_back(std::move(stream));
    has_new_work_ = true;
  }
  changed_.notify_all();
}

void CompletionService::Retire(const std::shared_ptr<Stream>& stream) {
  std::lock_guard lock(mutex_);
  open_.erase(stream);
  // Notify under the lock: the destructor may return (destroying changed_) once it sees open_
  // empty, so no thread but the drainer may touch the service after unlocking.
  if (open_.empty()) changed_.notify_all();
}

bool CompletionService::DrainSome(const std::shared_ptr<Stream>& stream, bool* still_backlogged) {
  Stream& s = *stream;
  bool progress = false;
  Aftermath after;
  {
    std::lock_guard lock(s.mutex);
    while (!s.backlog.empty() && !s.is_answered) {
      SendResult sent = s.responder->TrySend(Bytes(s.backlog.front()));
      if (sent == SendResult::kFull) break;
      progress = true;
      if (sent == SendResult::kSent) {
        s.backlog_bytes -= s.backlog.front().size();
        s.backlog.pop_front();
        continue;
      }
      s.cancel_requested = true;
      s.backlog.clear();
      s.backlog_bytes = 0;
      s.has_ended = true;
      s.final_payload.reset();
      s.final_error.reset();
      if (sent == SendResult::kClosed) {
        s.is_answered = true;  // Nobody listens.
      } else {
        s.final_error = ClientCancelled();
      }
    }
    if (s.backlog.empty()) {
      if (s.is_answered) {
        s.is_backlogged = false;
      } else if (s.has_ended) {
        if (TrySendFinalLocked(s)) {
          progress = true;
          s.is_backlogged = false;
        }
      } else {
        s.is_backlogged = false;  // Caught up: the sink sends directly again.
      }
    }
    after = TakeAftermathLocked(s);
    *still_backlogged = s.is_backlogged;
  }
  if (after.cancel) after.cancel->Cancel();
  if (after.retire) stream->service->Retire(stream);
  return progress;
}

void CompletionService::Drain() {
  log::NameThisThread("lai-complete");
  std::unique_lock lock(mutex_);
  for (;;) {
    if (work_.empty()) {
      if (stopping_ && open_.empty()) return;
      changed_.wait(lock, [this] { return !work_.empty() || (stopping_ && open_.empty()); });
      continue;
    }
    std::vector<std::shared_ptr<Stream>> batch;
    batch.swap(work_);
    has_new_work_ = false;
    lock.unlock();
    bool progress = false;
    std::vector<std::shared_ptr<Stream>> waiting;  // Clients still full.
    for (std::shared_ptr<Stream>& stream : batch) {
      // A stream the drainer lets go (caught up) is scheduled again by the sink if needed.
      bool still_backlogged = false;
      progress = DrainSome(stream, &still_backlogged) || progress;
      if (still_backlogged) waiting.push_back(std::move(stream));
    }
    batch.clear();
    lock.lock();
    work_.insert(work_.end(), std::make_move_iterator(waiting.begin()),
                 std::make_move_iterator(waiting.end()));
    if (!progress && !work_.empty()) {
      // Every backlogged client is still full: retry shortly, or as soon as new work arrives.
      changed_.wait_for(lock, options_.full_retry_interval, [this] { return has_new_work_; });
    }
  }
}

}  // namespace lai::server
