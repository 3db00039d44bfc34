#include "ipc/server.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <latch>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "base/check.h"
#include "base/json_text.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "ipc/buffer_pool.h"
#include "ipc/handshake.h"
#include "ipc/shm.h"
#include "ipc/socket.h"
#include "ipc/wait.h"

namespace lai::ipc {
namespace {

constexpr size_t kOutboxLimitBytes = size_t{1} << 20;  // Queued output per connection.
constexpr int kMaxMessagesPerVisit = 64;               // Fairness between connections.
constexpr size_t kMaxHotConnections = 8;
constexpr uint64_t kEpollTokenEventfd = UINT64_MAX;

}  // namespace

std::string ErrorPayload(const Error& error) {
  std::string out = "{\"code\":";
  AppendJsonEscaped(out, ErrorCodeName(error.code()));
  out += ",\"message\":";
  AppendJsonEscaped(out, error.message());
  out += '}';
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-connection state.

namespace internal {

// A reply waiting for ring space, in a pooled buffer.
struct Outbound {
  FrameHeader header;
  PooledBuffer buffer;
  size_t size = 0;
  size_t offset = 0;  // Bytes already sent (fragments).
};

}  // namespace internal

// What a connection shares with its responders on other threads. Thread-safe.
struct Responder::Shared {
  std::mutex mutex;
  std::condition_variable space;
  // Queued output: queue[head..] in order. Guarded by mutex. A vector, not a deque: an idle
  // connection's empty queue then costs no heap memory.
  std::vector<internal::Outbound> queue;
  size_t head = 0;
  size_t queued_bytes = 0;                 // Guarded by mutex.
  bool closed = false;                     // Guarded by mutex.
  std::map<uint64_t, Responder*> streams;  // Open streams by request id; guarded by mutex.
  std::atomic<bool> has_output{false};     // Hint for the worker: queue non-empty.
  BufferPool* pool = nullptr;
  uint32_t max_message_bytes = 0;  // The connection's agreed limit: larger items are refused.
  PeerWaker poke;  // Rings this connection's bit in its worker's doorbell.
  // The connection's channel. Its sending side belongs to whoever holds `mutex` while a
  // Responder is alive (`responders` > 0), and to the worker alone otherwise; see
  // Worker::MayWriteDirect. Used under `mutex` only while !closed (Close frees it after).
  Channel* channel = nullptr;
  // Responders alive on this connection. Only the worker creates them, so when it reads zero no
  // other thread can be sending; the decrement (release) publishes a Responder's last sends.
  std::atomic<uint32_t> responders{0};
  // Where a streamed reply's bytes and outcome are counted when it ends (RecordStreamed).
  MetricsRegistry* metrics = nullptr;
};

namespace internal {

struct Connection {
  uint64_t id = 0;
  uint32_t slot = 0;
  UniqueFd socket;
  UniqueFd client_eventfd;
  std::shared_ptr<Mapping> file;
  std::optional<Channel> channel;
  std::shared_ptr<Responder::Shared> shared;
  bool is_hot = false;
  uint64_t last_active = 0;  // TickNow() of the last message served.
};

struct HandlerEntry {
  std::string name;
  Handler sync;
  StreamHandler stream;
};

// One worker thread: serves the rings of the connections assigned to it.
class Worker {
 public:
  Worker(Server& server, MetricsShard& metrics, uint32_t slots)
      : server_(server), metrics_(metrics), slots_(slots) {}

  Status Init() {
    epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.is_valid()) return ErrnoError("epoll_create1", errno);
    eventfd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!eventfd_.is_valid()) return ErrnoError("eventfd", errno);
    doorbell_bytes_ = static_cast<uint32_t>(DoorbellLayout::Bytes(slots_));
    ASSIGN_OR_RETURN(doorbell_fd_, CreateSharedFile("lapce-ai-doorbell", doorbell_bytes_));
    ASSIGN_OR_RETURN(doorbell_, MapOwnFile(doorbell_fd_.get(), doorbell_bytes_));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kEpollTokenEventfd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, eventfd_.get(), &ev) != 0) {
      return ErrnoError("epoll_ctl eventfd", errno);
    }
    hot_.reserve(kMaxHotConnections);  // Promoting a connection later must not allocate.
    return OkStatus();
  }

  // Returns at once; the thread counts `running` down once it is about to serve.
  void Start(std::latch& running) {
    thread_ = std::thread([this, &running] {
      log::NameThisThread("lai-ipc-worker");
      running.count_down();
      Run();
    });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  // Acceptor thread. Reserves a slot; nullopt when the worker is full.
  std::optional<uint32_t> AllocateSlot() {
    std::lock_guard lock(pending_mutex_);
    uint32_t slot = unused_slot_;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else if (unused_slot_ < slots_) {
      ++unused_slot_;
    } else {
      return std::nullopt;
    }
    count_.fetch_add(1, std::memory_order_relaxed);
    return slot;
  }
  void ReturnSlot(uint32_t slot) {
    std::lock_guard lock(pending_mutex_);
    free_slots_.push_back(slot);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Acceptor thread: hands over a connection whose Hello was accepted. The worker registers it,
  // then sends `welcome`: the client can only ring the doorbell once the worker owns its slot.
  void Adopt(std::unique_ptr<Connection> connection, const Welcome& welcome) {
    {
      std::lock_guard lock(pending_mutex_);
      pending_.push_back({std::move(connection), welcome});
    }
    has_pending_.store(true, std::memory_order_release);
    WakeSelf();
  }

  void RequestStop() {
    stopping_.store(true, std::memory_order_release);
    WakeSelf();
  }

  uint32_t connection_count() const { return count_.load(std::memory_order_relaxed); }
  int doorbell_fd() const { return doorbell_fd_.get(); }
  int eventfd() const { return eventfd_.get(); }
  uint32_t doorbell_bytes() const { return doorbell_bytes_; }
  std::byte* doorbell() const { return doorbell_.data(); }
  BufferPool& pool() { return pool_; }

  // Whether the worker may write `c`'s ring itself, without its lock: no Responder can be
  // writing it (none is alive) and nothing is queued before the new message.
  static bool MayWriteDirect(const Connection& c) {
    return c.shared->responders.load(std::memory_order_acquire) == 0 &&
           !c.shared->has_output.load(std::memory_order_relaxed);
  }

  // Any thread: queue a reply on `connection` (shared state) and poke the worker.
  Status SendQueued(Connection& connection, const FrameHeader& header, PooledBuffer buffer,
                    size_t size);

  void SendError(Connection& c, uint64_t request_id, uint16_t type, const Error& error);

 private:
  friend class lai::ipc::Reply;

  void WakeSelf() {
    uint64_t one = 1;
    ssize_t n = ::write(eventfd_.get(), &one, sizeof(one));
    (void)n;
  }

  void Run();
  void AdoptPending();
  int Visit(Connection& c);
  bool Flush(Connection& c);
  // Handles one request and records its outcome. True when it also counts in its type's latency
  // histogram: the caller times it, with the requests handled back to back around it (TimedRun).
  bool Dispatch(Connection& c, const Message& message);
  // Requests of one type handled back to back, timed together by one clock read at the end
  // (each begins where the one before ended), each recorded with the run's mean latency: the
  // clock (13 ns a read here) would otherwise cost a fifth of a small message's handling.
  struct TimedRun {
    uint64_t start = 0;  // TickNow() at its start; 0 until the visit's first message.
    uint16_t type = 0;
    uint32_t count = 0;
  };
  static constexpr uint32_t kMaxTimedRun = 16;
  // Ends `run` (once a message was handled): reads the clock into last_tick_, records the run's
  // requests, and starts the next run there.
  void EndRun(TimedRun& run);
  void Close(Connection& c, const char* why);
  void HandleEpoll(int timeout_ms);
  bool ScanDoorbell(int* handled);
  void CoolDown(uint64_t now);
  void Drain();

  Server& server_;
  MetricsShard& metrics_;
  const uint32_t slots_;
  UniqueFd epoll_;
  UniqueFd eventfd_;
  UniqueFd doorbell_fd_;
  Mapping doorbell_;
  uint32_t doorbell_bytes_ = 0;
  // The server's budget (shared by its workers) and message limit, not the pool's defaults.
  BufferPool pool_{BufferPoolOptions{
      .budget_bytes = server_.options().buffer_budget_bytes / server_.options().workers,
      .max_message_bytes = server_.options().max_message_bytes}};
  // Discarded replies are written here. Not zero-filled: its pages become resident only as far as
  // replies reach into it.
  static constexpr size_t kScratchBytes = 64 * 1024;
  std::unique_ptr<std::byte[]> scratch_{new std::byte[kScratchBytes]};
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> count_{0};

  // Confined to the worker thread.
  std::vector<std::unique_ptr<Connection>> connections_;  // By slot.
  std::vector<uint32_t> hot_;
  uint32_t high_slot_ = 0;  // One past the highest slot ever used: bound of the doorbell scan.
  const double ns_per_tick_ = NsPerTick();
  uint64_t spin_ticks_ = 0;  // The spin budget in TickNow() ticks.
  // When the last run of messages handled ended, for the callers of Visit(): not read again by
  // each caller that wants to know when.
  uint64_t last_tick_ = 0;

  // Guarded by pending_mutex_.
  std::mutex pending_mutex_;
  struct Pending {
    std::unique_ptr<Connection> connection;
    Welcome welcome;
  };
  std::vector<Pending> pending_;
  // Slots given back, reused first; then the never-used ones from unused_slot_ up. (Both grow
  // with use, so a server sized for 4096 connections costs memory for the ones it has had.)
  std::vector<uint32_t> free_slots_;
  uint32_t unused_slot_ = 0;
  std::atomic<bool> has_pending_{false};
};

}  // namespace internal

struct Server::Impl {
  std::vector<std::unique_ptr<internal::HandlerEntry>> handlers{kMaxMessageTypes};
  std::vector<std::unique_ptr<internal::Worker>> workers;
  SharedFileCache files;
  LockFile lock;
  UniqueFd listen;
  UniqueFd stop_eventfd;
  std::thread acceptor;
  // Start() returns once every server thread is running: their start-up is then over before the
  // caller goes on (e.g. to server::TrimResidentMemory), and never mixed into serving.
  std::unique_ptr<std::latch> running;
  std::atomic<uint64_t> next_connection_id{1};
  std::mutex state_mutex;
  std::condition_variable state_changed;
  bool started = false;   // Guarded by state_mutex.
  bool stopping = false;  // Guarded by state_mutex.
  bool stopped = false;   // Guarded by state_mutex.

  void AcceptLoop(Server& server);
  // Handshakes one accepted socket that poll() found readable (its Hello, or a hang-up, is there),
  // and hands it to a worker.
  void Accept(Server& server, UniqueFd socket);
};

// ---------------------------------------------------------------------------------------------
// Reply and Responder.

Reply::Reply(internal::Worker& worker, internal::Connection& connection, const FrameHeader& request)
    : worker_(worker), connection_(connection) {
  header_.type = request.type;
  header_.request_id = request.request_id;
  header_.flags = kFlagResponse;
  discard_ = (request.flags & kFlagNoReply) != 0;
}

Result<std::span<std::byte>> Reply::Reserve(uint32_t bytes) {
  LAI_CHECK(!sent_) << "a synchronous handler replies once";
  if (bytes > connection_.channel->max_message_bytes()) return TooLarge(bytes);
  reserved_bytes_ = bytes;
  if (std::span<std::byte> in_ring = ClaimInRing(bytes); in_ring.data() != nullptr) return in_ring;
  return ReserveOffRing(bytes);
}

std::span<std::byte> Reply::ClaimInRing(uint32_t bytes) {
  if (discard_ || !internal::Worker::MayWriteDirect(connection_)) return {};
  // A granted claim has a payload pointer even for 0 bytes; a refused one is null.
  std::span<std::byte> out = connection_.channel->TryBeginMessage(header_, bytes);
  in_ring_ = out.data() != nullptr;
  return out;
}

Result<std::span<std::byte>> Reply::ReserveOffRing(uint32_t bytes) {
  if (discard_ && bytes <= internal::Worker::kScratchBytes) {
    return std::span(worker_.scratch_.get(), bytes);
  }
  ASSIGN_OR_RETURN(PooledBuffer buffer, worker_.pool().Acquire(std::max<uint32_t>(bytes, 1)));
  buffer_.emplace(std::move(buffer));
  return std::span<std::byte>(buffer_->data(), bytes);
}

void Reply::Commit() {
  sent_ = true;
  if (in_ring_) {
    connection_.channel->FinishMessage();
    return;
  }
  if (discard_) {
    buffer_.reset();
    return;
  }
  (void)worker_.SendQueued(connection_, header_, std::move(*buffer_), reserved_bytes_);
  buffer_.reset();
}

Error Reply::TooLarge(size_t bytes) const {
  return Error(ErrorCode::kInvalidArgument,
               "reply of " + std::to_string(bytes) + " bytes exceeds the connection's maximum of " +
                   std::to_string(connection_.channel->max_message_bytes()));
}

// Reserve + copy + Commit, with the usual case (the reply goes straight into the ring) kept off
// Result's path.
Status Reply::Send(std::span<const std::byte> payload) {
  LAI_CHECK(!sent_) << "a synchronous handler replies once";
  // Checked before the size is narrowed to 32 bits.
  if (payload.size() > connection_.channel->max_message_bytes()) return TooLarge(payload.size());
  if (discard_) {  // The client asked for no reply: nothing to copy anywhere.
    sent_ = true;
    return OkStatus();
  }
  const auto bytes = static_cast<uint32_t>(payload.size());
  reserved_bytes_ = bytes;
  std::span<std::byte> out = ClaimInRing(bytes);
  if (out.data() == nullptr) {
    Result<std::span<std::byte>> off_ring = ReserveOffRing(bytes);
    if (!off_ring.ok()) return std::move(off_ring).error();
    out = *off_ring;
  }
  if (!payload.empty()) std::memcpy(out.data(), payload.data(), payload.size());
  Commit();
  return OkStatus();
}

Responder::Responder(std::shared_ptr<Shared> shared, uint64_t request_id, uint16_t type)
    : shared_(std::move(shared)), request_id_(request_id), type_(type) {
  shared_->responders.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(shared_->mutex);
  shared_->streams[request_id_] = this;
}

Responder::~Responder() {
  if (!finished_.load()) {
    (void)Fail(Error(ErrorCode::kInternal, "the handler dropped the request without answering"));
  }
  {
    std::lock_guard lock(shared_->mutex);
    auto it = shared_->streams.find(request_id_);
    if (it != shared_->streams.end() && it->second == this) shared_->streams.erase(it);
  }
  shared_->responders.fetch_sub(1, std::memory_order_release);
}

bool Responder::is_cancelled() const { return cancelled_.load(std::memory_order_acquire); }

std::function<void()> Responder::CancelLocked() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return nullptr;
  return std::move(on_cancel_);
}

void Responder::OnCancel(std::function<void()> callback) {
  {
    std::lock_guard lock(shared_->mutex);
    if (!is_cancelled()) {
      on_cancel_ = std::move(callback);
      return;
    }
  }
  if (callback) callback();
}

Responder::SendResult Responder::TrySend(std::span<const std::byte> item) {
  if (is_cancelled()) return SendResult::kCancelled;
  return TryEnqueue(kFlagResponse | kFlagStream, item, false);
}

Responder::SendResult Responder::TryFinish(std::span<const std::byte> last) {
  return TryEnqueue(kFlagResponse, last, true);
}

Responder::SendResult Responder::TryFail(const Error& error) {
  std::string payload = ErrorPayload(error);
  return TryEnqueue(kFlagResponse | kFlagError, std::as_bytes(std::span(payload)), true);
}

Status Responder::Send(std::span<const std::byte> item) {
  if (is_cancelled()) return Error(ErrorCode::kCancelled, "the client cancelled the request");
  return Enqueue(kFlagResponse | kFlagStream, item, false);
}

Status Responder::Finish(std::span<const std::byte> last) {
  return Enqueue(kFlagResponse, last, true);
}

Status Responder::Fail(const Error& error) {
  std::string payload = ErrorPayload(error);
  return Enqueue(kFlagResponse | kFlagError, std::as_bytes(std::span(payload)), true);
}

namespace {

// Writes one frame straight into the client's ring, from the calling thread, when nothing is
// queued before it and it fits now: the client sees it without waiting for the worker to wake
// and copy it. False when it must be queued instead. Under s.mutex.
bool WriteDirectLocked(Responder::Shared& s, const FrameHeader& header,
                       std::span<const std::byte> payload) {
  if (s.closed || s.head < s.queue.size()) return false;
  std::span<std::byte> out =
      s.channel->TryBeginMessage(header, static_cast<uint32_t>(payload.size()));
  if (out.data() == nullptr) return false;  // Granted claims are non-null, even for 0 bytes.
  if (!payload.empty()) std::memcpy(out.data(), payload.data(), payload.size());
  s.channel->FinishMessage();  // Wakes the client if it sleeps.
  return true;
}

// Appends one frame to the connection's queue and wakes its worker. Under s.mutex.
void PushLocked(Responder::Shared& s, const FrameHeader& header, PooledBuffer buffer,
                std::span<const std::byte> payload) {
  if (!payload.empty()) std::memcpy(buffer.data(), payload.data(), payload.size());
  internal::Outbound out;
  out.header = header;
  out.buffer = std::move(buffer);
  out.size = payload.size();
  // Count what the item really holds (its buffer), so tiny items cannot exhaust the pool before
  // the queue limit applies back-pressure.
  s.queued_bytes += out.buffer.capacity();
  s.queue.push_back(std::move(out));
  s.has_output.store(true, std::memory_order_release);
  s.poke.Wake();
}

}  // namespace

void Responder::CountSentLocked(uint8_t flags, size_t bytes, bool final) {
  sent_bytes_ += bytes;
  if (!final) return;
  finished_.store(true, std::memory_order_relaxed);
  if (shared_->metrics != nullptr) {
    // The error that ends a request the client cancelled is not the service's failure.
    bool ok = (flags & kFlagError) == 0 || cancelled_.load(std::memory_order_relaxed);
    shared_->metrics->RecordStreamed(type_, sent_bytes_, ok);
  }
}

uint32_t Responder::max_message_bytes() const { return shared_->max_message_bytes; }

Error Responder::TooLarge(size_t bytes) const {
  return Error(ErrorCode::kResourceExhausted,
               "a message of " + std::to_string(bytes) + " bytes is over the limit of " +
                   std::to_string(shared_->max_message_bytes) +
                   " bytes this connection agreed (the client's max_message_bytes); it was not "
                   "sent, and the connection is still open");
}

Status Responder::Enqueue(uint8_t flags, std::span<const std::byte> payload, bool final) {
  Shared& s = *shared_;
  if (payload.size() > s.max_message_bytes) return TooLarge(payload.size());
  std::unique_lock lock(s.mutex);
  if (finished_.load(std::memory_order_relaxed)) {
    return Error(ErrorCode::kInternal, "the request was already answered");
  }
  const FrameHeader header{.flags = flags, .type = type_, .request_id = request_id_};
  if (WriteDirectLocked(s, header, payload)) {
    CountSentLocked(flags, payload.size(), final);
    return OkStatus();
  }
  // Back-pressure: wait while the connection's queue is full, or while the worker's buffer pool
  // is exhausted (the queue drains as the client reads, which frees buffers).
  Result<PooledBuffer> buffer = Error(ErrorCode::kResourceExhausted, "");
  for (;;) {
    s.space.wait(lock, [&] { return s.closed || s.queued_bytes < kOutboxLimitBytes; });
    if (s.closed) return Error(ErrorCode::kUnavailable, "the client disconnected");
    buffer = s.pool->Acquire(std::max<size_t>(payload.size(), 1));
    if (buffer.ok() || buffer.error().code() != ErrorCode::kResourceExhausted) break;
    s.space.wait_for(lock, std::chrono::milliseconds(10));
  }
  if (!buffer.ok()) return std::move(buffer).error();
  PushLocked(s, header, std::move(buffer).value(), payload);
  CountSentLocked(flags, payload.size(), final);
  return OkStatus();
}

Responder::SendResult Responder::TryEnqueue(uint8_t flags, std::span<const std::byte> payload,
                                            bool final) {
  Shared& s = *shared_;
  if (payload.size() > s.max_message_bytes) return SendResult::kTooLarge;
  std::lock_guard lock(s.mutex);
  if (finished_.load(std::memory_order_relaxed) || s.closed) return SendResult::kClosed;
  const FrameHeader header{.flags = flags, .type = type_, .request_id = request_id_};
  if (WriteDirectLocked(s, header, payload)) {
    CountSentLocked(flags, payload.size(), final);
    return SendResult::kSent;
  }
  if (s.queued_bytes >= kOutboxLimitBytes) return SendResult::kFull;
  Result<PooledBuffer> buffer = s.pool->Acquire(std::max<size_t>(payload.size(), 1));
  if (!buffer.ok()) {
    // kResourceExhausted: the pool frees buffers as the client reads. Anything else (an item
    // beyond the pool's largest class) would never fit: answer as Send would, with an error.
    if (buffer.error().code() == ErrorCode::kResourceExhausted) return SendResult::kFull;
    return SendResult::kClosed;
  }
  PushLocked(s, header, std::move(buffer).value(), payload);
  CountSentLocked(flags, payload.size(), final);
  return SendResult::kSent;
}

// ---------------------------------------------------------------------------------------------
// Worker.

namespace internal {

Status Worker::SendQueued(Connection& c, const FrameHeader& header, PooledBuffer buffer,
                          size_t size) {
  Responder::Shared& s = *c.shared;
  std::lock_guard lock(s.mutex);
  if (s.closed) return Error(ErrorCode::kUnavailable, "the client disconnected");
  Outbound out;
  out.header = header;
  out.buffer = std::move(buffer);
  out.size = size;
  s.queued_bytes += out.buffer.capacity();
  s.queue.push_back(std::move(out));
  s.has_output.store(true, std::memory_order_release);
  return OkStatus();
}

void Worker::SendError(Connection& c, uint64_t request_id, uint16_t type, const Error& error) {
  std::string payload = ErrorPayload(error);
  FrameHeader header{.flags = kFlagResponse | kFlagError, .type = type, .request_id = request_id};
  if (MayWriteDirect(c)) {
    std::span<std::byte> out =
        c.channel->TryBeginMessage(header, static_cast<uint32_t>(payload.size()));
    if (!out.empty()) {
      std::memcpy(out.data(), payload.data(), payload.size());
      c.channel->FinishMessage();
      return;
    }
  }
  Result<PooledBuffer> buffer = pool_.Acquire(payload.size());
  if (!buffer.ok()) return;  // Out of memory for even an error: the client times out.
  std::memcpy(buffer->data(), payload.data(), payload.size());
  (void)SendQueued(c, header, std::move(buffer).value(), payload.size());
}

// Writes queued output. True when the queue is empty afterwards.
bool Worker::Flush(Connection& c) {
  Responder::Shared& s = *c.shared;
  std::unique_lock lock(s.mutex);
  while (s.head < s.queue.size()) {
    Outbound& out = s.queue[s.head];
    Channel::SendStatus status =
        c.channel->SendSome(out.header, {out.buffer.data(), out.size}, &out.offset);
    if (status == Channel::SendStatus::kFull) {
      if (c.channel->PrepareToWaitForSpace()) continue;
      return false;  // The client's Release() will ring our doorbell.
    }
    if (status == Channel::SendStatus::kBroken) {
      lock.unlock();
      Close(c, "the client corrupted its ring");
      return false;
    }
    s.queued_bytes -= out.buffer.capacity();
    out.buffer.Reset();
    ++s.head;
    s.space.notify_all();
  }
  s.queue.clear();  // Keeps its capacity for the next burst.
  s.head = 0;
  s.has_output.store(false, std::memory_order_relaxed);
  return true;
}

bool Worker::Dispatch(Connection& c, const Message& message) {
  const FrameHeader& h = message.header;
  if ((h.flags & (kFlagResponse | kFlagStream | kFlagError)) != 0) {
    SendError(c, h.request_id, h.type,
              Error(ErrorCode::kProtocol,
                    "clients send requests only (flags " + std::to_string(h.flags) + ")"));
    return false;
  }
  const bool wants_reply = (h.flags & kFlagNoReply) == 0;
  if (h.type == static_cast<uint16_t>(MessageType::kCancel)) {
    std::function<void()> on_cancel;
    {
      std::lock_guard lock(c.shared->mutex);
      auto it = c.shared->streams.find(h.request_id);
      if (it != c.shared->streams.end()) on_cancel = it->second->CancelLocked();
    }
    if (on_cancel) on_cancel();
    return false;
  }
  HandlerEntry* entry = server_.impl_->handlers[h.type].get();
  if (entry == nullptr) {
    if (wants_reply) {
      SendError(c, h.request_id, h.type,
                Error(ErrorCode::kInvalidArgument,
                      "no handler for message type " + std::to_string(h.type)));
    }
    metrics_.RecordOutcome(h.type, static_cast<uint32_t>(message.payload.size()), 0, false);
    return true;
  }
  bool ok = true;
  uint32_t sent_bytes = 0;  // A streamed reply's are counted when it ends (RecordStreamed).
  if (entry->sync) {
    Reply reply(*this, c, h);
    Status status;
    try {
      status = entry->sync(message, reply);
    } catch (const std::exception& e) {
      status = Error(ErrorCode::kInternal, "handler '" + entry->name + "' threw: " + e.what());
    } catch (...) {
      status = Error(ErrorCode::kInternal, "handler '" + entry->name + "' threw");
    }
    ok = status.ok();
    if (!reply.is_sent() && wants_reply) {
      if (!ok) {
        SendError(c, h.request_id, h.type, status.error());
      } else {
        (void)reply.Send({});
      }
    }
    sent_bytes = reply.sent_bytes();
  } else {
    // Its outcome, failure included, is counted when it ends (RecordStreamed).
    auto responder = std::make_shared<Responder>(c.shared, h.request_id, h.type);
    try {
      entry->stream(message, responder);
    } catch (const std::exception& e) {
      (void)responder->Fail(
          Error(ErrorCode::kInternal, "handler '" + entry->name + "' threw: " + e.what()));
    } catch (...) {
      (void)responder->Fail(Error(ErrorCode::kInternal, "handler '" + entry->name + "' threw"));
    }
  }
  metrics_.RecordOutcome(h.type, static_cast<uint32_t>(message.payload.size()), sent_bytes, ok);
  return true;
}

void Worker::EndRun(TimedRun& run) {
  if (run.start == 0) return;
  uint64_t now = last_tick_ = TickNow();
  if (run.count != 0) {
    auto elapsed_ns = static_cast<uint64_t>(static_cast<double>(now - run.start) * ns_per_tick_);
    metrics_.RecordLatency(run.type, elapsed_ns, run.count);
  }
  run.start = now;
  run.count = 0;
}

// Serves one connection: flushes queued output, then handles up to kMaxMessagesPerVisit requests.
// Returns the number of messages handled.
int Worker::Visit(Connection& c) {
  // Flush() and Close() may free `c`: after either, only `slot` is safe to look at.
  const uint32_t slot = c.slot;
  auto alive = [&] { return connections_[slot] != nullptr; };
  if (c.shared->has_output.load(std::memory_order_acquire) && !Flush(c)) {
    // Output is stuck behind a slow reader: read no new requests (back-pressure), but let a
    // cancellation through, since it is how the client stops the stream that fills the queue.
    while (alive()) {
      Channel::Received r = c.channel->Receive();
      if (r.status != Channel::ReceiveStatus::kMessage ||
          r.message.header.type != static_cast<uint16_t>(MessageType::kCancel)) {
        break;  // Left in place: Receive() returns it again once output drains.
      }
      Dispatch(c, r.message);  // A cancel: not timed.
      c.channel->Consume();
    }
    // Everything consumed so far is published before we stop reading: a client waiting for
    // space sees all of it (a large ring publishes lazily, see RingReader::Release).
    if (alive()) c.channel->WakeWaitingProducer();
    return 0;
  }
  int handled = 0;
  // The clock is first read once there is a message, so a visit that finds the ring empty (most,
  // while spinning) reads none.
  TimedRun run;
  while (handled < kMaxMessagesPerVisit) {
    Channel::Received r = c.channel->Receive();
    if (r.status == Channel::ReceiveStatus::kEmpty) {
      EndRun(run);
      return handled;
    }
    if (r.status == Channel::ReceiveStatus::kBlocked) {
      c.shared->poke.Wake();  // Out of reassembly memory: come back later.
      break;
    }
    if (r.status == Channel::ReceiveStatus::kBroken) {
      EndRun(run);
      metrics_.RecordProtocolError();
      SendError(
          c, 0, static_cast<uint16_t>(MessageType::kError),
          Error(ErrorCode::kProtocol, c.channel->broken_reason() + "; closing the connection"));
      if (Flush(c) || alive()) Close(c, "protocol error");
      return handled;
    }
    if (run.start == 0) {
      run.start = TickNow();
    } else if (run.count != 0 && (r.message.header.type != run.type || run.count == kMaxTimedRun)) {
      EndRun(run);
    }
    if (Dispatch(c, r.message)) {
      run.type = r.message.header.type;
      ++run.count;
    }
    c.channel->Consume();
    ++handled;
    if (c.shared->has_output.load(std::memory_order_relaxed) && !Flush(c)) {
      if (alive()) break;
      EndRun(run);
      return handled;
    }
  }
  EndRun(run);
  // Stopped early with messages left: make sure a client waiting for ring space hears of what
  // we released (an empty ring does this inside Receive()).
  c.channel->WakeWaitingProducer();
  // At the fairness limit, a connection that is not watched (hot) is looked at again only when
  // its doorbell bit is set, and the bit was cleared before this visit: set it again, or what the
  // client already sent would wait for its next message.
  if (handled == kMaxMessagesPerVisit && !c.is_hot) c.shared->poke.Wake();
  return handled;
}

void Worker::Close(Connection& c, const char* why) {
  (void)why;
  std::vector<std::function<void()>> on_cancel;
  {
    std::lock_guard lock(c.shared->mutex);
    c.shared->closed = true;
    c.shared->queue.clear();
    c.shared->head = 0;
    c.shared->queued_bytes = 0;
    for (auto& [id, responder] : c.shared->streams) {
      if (std::function<void()> callback = responder->CancelLocked()) {
        on_cancel.push_back(std::move(callback));
      }
    }
    c.shared->space.notify_all();
  }
  for (const std::function<void()>& callback : on_cancel) callback();
  uint32_t slot = c.slot;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.socket.get(), nullptr);
  std::atomic_ref<uint64_t>(DoorbellLayout::Bits(doorbell_.data())[slot / 64])
      .fetch_and(~(uint64_t{1} << (slot % 64)), std::memory_order_relaxed);
  hot_.erase(std::remove(hot_.begin(), hot_.end(), slot), hot_.end());
  // Stop touching the rings before the client learns (socket close) that it may reuse them.
  connections_[slot].reset();
  metrics_.RecordConnectionClosed();
  ReturnSlot(slot);
}

void Worker::AdoptPending() {
  std::vector<Pending> adopted;
  {
    std::lock_guard lock(pending_mutex_);
    adopted.swap(pending_);
    has_pending_.store(false, std::memory_order_relaxed);
  }
  for (Pending& p : adopted) {
    uint32_t slot = p.connection->slot;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = slot;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, p.connection->socket.get(), &ev) != 0) {
      SendRefusal(p.connection->socket.get(), ErrnoError("epoll_ctl", errno));
      ReturnSlot(slot);
      continue;
    }
    high_slot_ = std::max(high_slot_, slot + 1);
    if (connections_.size() < high_slot_) connections_.resize(high_slot_);
    connections_[slot] = std::move(p.connection);
    metrics_.RecordConnectionOpened();
    // Only now may the client write: nothing it sends can reach an unowned slot. (Not touching
    // its rings here keeps an idle connection from costing the server a resident page.)
    Connection& c = *connections_[slot];
    if (!SendWelcome(c.socket.get(), p.welcome, doorbell_fd_.get(), eventfd_.get()).ok()) {
      Close(c, "welcome failed");
    }
  }
}

void Worker::HandleEpoll(int timeout_ms) {
  epoll_event events[64];
  int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms);
  for (int i = 0; i < n; ++i) {
    uint64_t token = events[i].data.u64;
    if (token == kEpollTokenEventfd) {
      uint64_t count;
      ssize_t r = ::read(eventfd_.get(), &count, sizeof(count));
      (void)r;
      continue;
    }
    if (token >= connections_.size() || connections_[token] == nullptr) continue;
    // The client never writes to its control socket after the handshake: readable means it
    // closed it (or sent garbage). Either way the connection is over.
    Close(*connections_[token], "control socket closed");
  }
}

bool Worker::ScanDoorbell(int* handled) {
  uint64_t* bits = DoorbellLayout::Bits(doorbell_.data());
  bool any = false;
  uint32_t words = (high_slot_ + 63) / 64;
  for (uint32_t w = 0; w < words; ++w) {
    std::atomic_ref<uint64_t> word(bits[w]);
    if (word.load(std::memory_order_relaxed) == 0) continue;
    uint64_t set = word.exchange(0, std::memory_order_seq_cst);
    // Pairs with the client's fence in PeerWaker::Wake: our ring reads below see its record.
    FullFence();
    while (set != 0) {
      uint32_t slot = w * 64 + static_cast<uint32_t>(__builtin_ctzll(set));
      set &= set - 1;
      Connection* c = slot < connections_.size() ? connections_[slot].get() : nullptr;
      if (c == nullptr) continue;
      any = true;
      int n = Visit(*c);
      *handled += n;
      if (connections_[slot] == nullptr || n == 0) continue;  // Visit() may have freed `c`.
      if (!c->is_hot && hot_.size() < kMaxHotConnections &&
          last_tick_ - c->last_active < spin_ticks_) {
        // Busy connection (rung again within the spin budget): watch its ring directly so its
        // client need not ring the doorbell. One message now and then does not qualify: among
        // many quiet connections, promoting each would only churn the hot set.
        c->is_hot = true;
        c->channel->SetParked(false);
        hot_.push_back(slot);
      }
      c->last_active = last_tick_;
    }
  }
  return any;
}

// Demotes hot connections idle for longer than the spin budget: their clients ring the doorbell
// again. Afterwards one more look, since a message may have arrived in between.
void Worker::CoolDown(uint64_t now) {
  for (size_t i = 0; i < hot_.size();) {
    Connection& c = *connections_[hot_[i]];
    if (now - c.last_active > spin_ticks_) {
      c.is_hot = false;
      c.channel->SetParked(true);
      hot_[i] = hot_.back();
      hot_.pop_back();
      if (c.channel->HasIncoming()) c.shared->poke.Wake();
    } else {
      ++i;
    }
  }
}

void Worker::Run() {
  uint32_t* sleeping = DoorbellLayout::Sleeping(doorbell_.data());
  uint64_t spin_ns = CanSpin() ? static_cast<uint64_t>(server_.options_.max_spin.count()) : 0;
  spin_ticks_ = static_cast<uint64_t>(static_cast<double>(spin_ns) / ns_per_tick_);
  uint64_t last_work = TickNow();
  // While spinning, epoll is looked at (for closed control sockets) once a millisecond, not
  // every 1024 iterations: the syscall (0.2 us here, empty) delays a request that arrives during
  // it, and counting iterations made it one round trip in fifty over 1000 connections.
  const auto epoll_every = static_cast<uint64_t>(1e6 / ns_per_tick_);
  uint64_t next_epoll = last_work + epoll_every;
  uint32_t iterations = 0;
  while (!stopping_.load(std::memory_order_acquire)) {
    if (has_pending_.load(std::memory_order_acquire)) AdoptPending();
    int handled = 0;
    for (size_t i = 0; i < hot_.size(); ++i) {
      uint32_t slot = hot_[i];
      Connection* c = connections_[slot].get();
      int n = Visit(*c);
      if (n > 0 && connections_[slot] != nullptr) {  // Visit() may have closed (freed) it.
        handled += n;
        c->last_active = last_tick_;
      }
    }
    ScanDoorbell(&handled);
    if (handled > 0) {
      last_work = last_tick_;
      if (last_work >= next_epoll) {
        HandleEpoll(0);
        next_epoll = last_work + epoll_every;
      }
      continue;
    }
    CpuRelax();
    if ((++iterations & 63) != 0) continue;
    uint64_t now = TickNow();
    if (now >= next_epoll) {
      HandleEpoll(0);
      next_epoll = now + epoll_every;
    }
    CoolDown(now);
    if (now - last_work < spin_ticks_) continue;

    // Nothing to do for a while: sleep in epoll_wait until a client rings, a control socket
    // closes, or a connection arrives. Connections still hot (CoolDown spares one visited within
    // the spin budget) are parked here; a client that published while it still saw us polling
    // did not ring, so look at each once more after the park's fence, as CoolDown does.
    for (uint32_t slot : hot_) connections_[slot]->channel->SetParked(true);
    for (uint32_t slot : hot_) connections_[slot]->is_hot = false;
    for (uint32_t slot : hot_) {
      if (connections_[slot]->channel->HasIncoming()) connections_[slot]->shared->poke.Wake();
    }
    hot_.clear();
    std::atomic_ref<uint32_t>(*sleeping).store(1, std::memory_order_relaxed);
    FullFence();
    bool rung = false;
    uint64_t* bits = DoorbellLayout::Bits(doorbell_.data());
    for (uint32_t w = 0; w < (high_slot_ + 63) / 64 && !rung; ++w) {
      rung = std::atomic_ref<uint64_t>(bits[w]).load(std::memory_order_relaxed) != 0;
    }
    if (!rung && !has_pending_.load() && !stopping_.load()) {
      metrics_.RecordPark();
      HandleEpoll(-1);
    } else {
      HandleEpoll(0);
    }
    std::atomic_ref<uint32_t>(*sleeping).store(0, std::memory_order_relaxed);
    last_work = TickNow();
  }
  Drain();
}

// Shutdown: tell every client, flush what is queued (bounded by drain_timeout), close.
void Worker::Drain() {
  AdoptPending();
  FrameHeader bye{.flags = kFlagResponse, .type = static_cast<uint16_t>(MessageType::kShutdown)};
  for (auto& c : connections_) {
    if (c == nullptr) continue;
    // Behind any queued replies, so the client sees every answer before the goodbye.
    size_t offset = 0;
    if (!MayWriteDirect(*c) ||
        c->channel->SendSome(bye, {}, &offset) != Channel::SendStatus::kDone) {
      (void)SendQueued(*c, bye, PooledBuffer(), 0);
    }
  }
  uint64_t deadline =
      NowNs() +
      static_cast<uint64_t>(std::chrono::nanoseconds(server_.options_.drain_timeout).count());
  uint32_t* sleeping = DoorbellLayout::Sleeping(doorbell_.data());
  for (;;) {
    bool pending = false;
    for (auto& c : connections_) {
      if (c != nullptr && c->shared->has_output.load() && !Flush(*c)) pending = true;
    }
    if (!pending || NowNs() >= deadline) break;
    // Sleep as in Run(): flagged, so a client that frees ring space writes our eventfd; and,
    // after the flag's fence, look at the doorbell once more, since a client that freed space
    // just before saw us awake and only rang its bit.
    std::atomic_ref<uint32_t>(*sleeping).store(1, std::memory_order_relaxed);
    FullFence();
    bool rung = false;
    uint64_t* bits = DoorbellLayout::Bits(doorbell_.data());
    for (uint32_t w = 0; w < (high_slot_ + 63) / 64; ++w) {
      rung |= std::atomic_ref<uint64_t>(bits[w]).exchange(0, std::memory_order_seq_cst) != 0;
    }
    HandleEpoll(rung ? 0 : 10);
    std::atomic_ref<uint32_t>(*sleeping).store(0, std::memory_order_relaxed);
  }
  for (auto& c : connections_) {
    if (c != nullptr) Close(*c, "server shutting down");
  }
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// Server.

Server::Server(ServerOptions options) : options_(std::move(options)), impl_(new Impl) {
  options_.workers = std::clamp<uint32_t>(options_.workers, 1, 64);
  for (uint16_t t = 1; t < 16; ++t) {
    std::string_view name = MessageTypeName(t);
    if (!name.empty()) metrics_.SetTypeName(t, std::string(name));
  }
}

Server::~Server() {
  Shutdown();
  Wait();
}

void Server::Handle(uint16_t type, std::string name, Handler handler) {
  LAI_CHECK(type > 0 && type < kMaxMessageTypes) << "message type " << type;
  metrics_.SetTypeName(type, name);
  impl_->handlers[type] = std::make_unique<internal::HandlerEntry>(
      internal::HandlerEntry{std::move(name), std::move(handler), nullptr});
}

void Server::HandleStream(uint16_t type, std::string name, StreamHandler handler) {
  LAI_CHECK(type > 0 && type < kMaxMessageTypes) << "message type " << type;
  metrics_.SetTypeName(type, name);
  impl_->handlers[type] = std::make_unique<internal::HandlerEntry>(
      internal::HandlerEntry{std::move(name), nullptr, std::move(handler)});
}

size_t Server::connection_count() const {
  size_t n = 0;
  for (const auto& w : impl_->workers) n += w->connection_count();
  return n;
}

Status Server::Start() {
  RaiseFileLimit();
  std::string dir = options_.socket_path.substr(0, options_.socket_path.find_last_of('/'));
  if (!dir.empty()) RETURN_IF_ERROR(EnsurePrivateDir(dir, options_.socket_dir));
  ASSIGN_OR_RETURN(impl_->lock, LockServerPath(options_.socket_path));
  ASSIGN_OR_RETURN(impl_->listen, ListenUnix(options_.socket_path, 1024));
  impl_->stop_eventfd.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl_->stop_eventfd.is_valid()) return ErrnoError("eventfd", errno);
  uint32_t slots = (options_.max_connections + options_.workers - 1) / options_.workers;
  for (uint32_t i = 0; i < options_.workers; ++i) {
    auto worker = std::make_unique<internal::Worker>(*this, metrics_.AddShard(), slots);
    RETURN_IF_ERROR(worker->Init());
    impl_->workers.push_back(std::move(worker));
  }
  (void)CanSpin();  // Its one-time probe (sysconf) runs here, not on a worker.
  impl_->running = std::make_unique<std::latch>(impl_->workers.size() + 1);
  for (auto& w : impl_->workers) w->Start(*impl_->running);
  {
    std::lock_guard lock(impl_->state_mutex);
    impl_->started = true;
  }
  impl_->acceptor = std::thread([this] {
    log::NameThisThread("lai-ipc-accept");
    impl_->running->count_down();
    impl_->AcceptLoop(*this);
  });
  impl_->running->wait();
  return OkStatus();
}

void Server::Impl::AcceptLoop(Server& server) {
  // Accepted sockets wait here for their Hello, all at once: one client that connects and says
  // nothing holds up only itself (until handshake_timeout), not the clients behind it.
  struct Handshaking {
    UniqueFd socket;
    uint64_t deadline_ns;
  };
  std::vector<Handshaking> handshaking;
  std::vector<pollfd> pfds;
  const uint64_t timeout_ns =
      static_cast<uint64_t>(std::chrono::nanoseconds(server.options_.handshake_timeout).count());
  for (;;) {
    pfds.assign({{listen.get(), POLLIN, 0}, {stop_eventfd.get(), POLLIN, 0}});
    uint64_t next_deadline = UINT64_MAX;
    for (const Handshaking& h : handshaking) {
      pfds.push_back({h.socket.get(), POLLIN, 0});
      next_deadline = std::min(next_deadline, h.deadline_ns);
    }
    int wait_ms = -1;
    if (next_deadline != UINT64_MAX) {
      uint64_t now = NowNs();
      wait_ms = now >= next_deadline ? 0 : static_cast<int>((next_deadline - now) / 1'000'000 + 1);
    }
    int rc = ::poll(pfds.data(), pfds.size(), wait_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || pfds[1].revents != 0) return;
    // Hellos that arrived (or hang-ups), and handshakes out of time. Accept() does not wait: the
    // Hello is there, or the socket is closed and the refusal says so.
    uint64_t now = NowNs();
    size_t kept = 0;
    for (size_t i = 0; i < handshaking.size(); ++i) {
      if (pfds[i + 2].revents != 0) {
        Accept(server, std::move(handshaking[i].socket));
      } else if (now >= handshaking[i].deadline_ns) {
        server.metrics_.shard(0).RecordProtocolError();
        SendRefusal(handshaking[i].socket.get(),
                    Error(ErrorCode::kTimeout,
                          "no handshake message within " +
                              std::to_string(server.options_.handshake_timeout.count()) + " ms"));
      } else {
        handshaking[kept++] = std::move(handshaking[i]);  // UniqueFd survives a self-move.
      }
    }
    handshaking.resize(kept);
    if (pfds[0].revents == 0) continue;
    for (;;) {
      UniqueFd socket(::accept4(listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!socket.is_valid()) break;  // EAGAIN: drained. EMFILE: retry on the next poll.
      handshaking.push_back({std::move(socket), now + timeout_ns});
    }
  }
}

void Server::Impl::Accept(Server& server, UniqueFd socket) {
  const ServerOptions& o = server.options_;
  MetricsShard& metrics = server.metrics_.shard(0);
  Result<AcceptedHello> hello = ReceiveHello(socket.get(), o.allowed_uid, o.max_message_bytes,
                                             files, std::chrono::milliseconds(0));
  if (!hello.ok()) {
    metrics.RecordProtocolError();
    SendRefusal(socket.get(), hello.error());
    return;
  }
  internal::Worker* worker = workers.front().get();
  for (auto& w : workers) {
    if (w->connection_count() < worker->connection_count()) worker = w.get();
  }
  std::optional<uint32_t> slot = worker->AllocateSlot();
  if (!slot) {
    SendRefusal(socket.get(), Error(ErrorCode::kResourceExhausted,
                                    "the server has " + std::to_string(o.max_connections) +
                                        " connections, its limit (server.max_connections)"));
    return;
  }
  auto c = std::make_unique<internal::Connection>();
  c->id = next_connection_id.fetch_add(1);
  c->slot = *slot;
  c->client_eventfd = std::move(hello->client_eventfd);
  c->file = hello->file;
  ConnectionLayout layout{hello->hello.c2s_cells, hello->hello.s2c_cells};
  std::byte* block = hello->block();
  c->channel.emplace(layout.S2c(block, hello->hello.s2c_salt),
                     layout.C2s(block, hello->hello.c2s_salt), hello->max_message_bytes,
                     worker->pool(), PeerWaker::ToClient(c->client_eventfd.get()));
  c->shared = std::make_shared<Responder::Shared>();
  c->shared->pool = &worker->pool();
  c->shared->max_message_bytes = hello->max_message_bytes;
  c->shared->poke = PeerWaker::ToServer(worker->doorbell(), *slot, worker->eventfd());
  c->shared->channel = &*c->channel;
  c->shared->metrics = &server.metrics_;
  Welcome welcome;
  welcome.version = kProtocolVersion;
  welcome.slot = *slot;
  welcome.doorbell_bytes = worker->doorbell_bytes();
  welcome.max_message_bytes = hello->max_message_bytes;
  c->socket = std::move(socket);
  worker->Adopt(std::move(c), welcome);
}

void Server::Shutdown() {
  {
    std::lock_guard lock(impl_->state_mutex);
    if (!impl_->started || impl_->stopping) return;
    impl_->stopping = true;
  }
  uint64_t one = 1;
  ssize_t n = ::write(impl_->stop_eventfd.get(), &one, sizeof(one));
  (void)n;
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  impl_->listen.Reset();
  ::unlink(options_.socket_path.c_str());
  for (auto& w : impl_->workers) w->RequestStop();
  for (auto& w : impl_->workers) w->Join();
  impl_->lock.Reset();
  {
    std::lock_guard lock(impl_->state_mutex);
    impl_->stopped = true;
  }
  impl_->state_changed.notify_all();
}

void Server::Wait() {
  std::unique_lock lock(impl_->state_mutex);
  impl_->state_changed.wait(lock, [&] { return !impl_->started || impl_->stopped; });
}

}  // namespace lai::ipc
