#include "rpc/shm_transport.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include "base/check.h"
#include "base/log.h"

namespace lai::rpc {
namespace {

// How often a waiting channel reader looks whether Close() asked it to stop (only matters when
// the server does not answer the close frame).
constexpr std::chrono::milliseconds kReaderPoll{200};

void EncodeToken(uint64_t token, std::byte* out) {
  for (size_t i = 0; i < kChannelTokenBytes; ++i) out[i] = static_cast<std::byte>(token >> (8 * i));
}

uint64_t DecodeToken(const std::byte* in) {
  uint64_t token = 0;
  for (size_t i = 0; i < kChannelTokenBytes; ++i)
    token |= uint64_t{std::to_integer<uint8_t>(in[i])} << (8 * i);
  return token;
}

std::string Hex(uint64_t value) { return fmt::format("{:016x}", value); }

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The peer's transport on the server: each message is one item of the channel's streamed reply.
// Send never waits for a slow client (it may run on a thread many sessions share, such as the
// provider's I/O thread): what the ring cannot take now waits in an outbox that a thread of this
// channel delivers in order. A client that falls more than kMaxOutboxBytes behind makes Send wait,
// except on a thread many sessions share (log::IsThisThreadShared): there it loses its channel.
class ResponderTransport : public Transport {
 public:
  explicit ResponderTransport(std::shared_ptr<ipc::Responder> responder)
      : responder_(std::move(responder)) {}

  ~ResponderTransport() override {
    {
      std::lock_guard lock(mutex_);
      is_stopping_ = true;
    }
    changed_.notify_all();
    if (drainer_.joinable()) drainer_.join();
  }

  Status Send(std::string_view message) override {
    // A message the client's connection cannot take fails alone; the channel goes on.
    if (message.size() > responder_->max_message_bytes()) {
      return Error(ErrorCode::kResourceExhausted,
                   "a message of " + std::to_string(message.size()) +
                       " bytes is over the limit of " +
                       std::to_string(responder_->max_message_bytes()) +
                       " bytes the client's connection agreed; it was not sent");
    }
    std::unique_lock lock(mutex_);
    if (is_closed_) return Closed();
    if (outbox_.empty()) {
      switch (responder_->TrySend(std::as_bytes(std::span(message.data(), message.size())))) {
        case ipc::Responder::SendResult::kSent:
          return OkStatus();
        case ipc::Responder::SendResult::kClosed:
        case ipc::Responder::SendResult::kCancelled:
          is_closed_ = true;
          return Closed();
        case ipc::Responder::SendResult::kFull:
        case ipc::Responder::SendResult::kTooLarge:  // Not after the check above.
          break;
      }
    }
    if (!outbox_.empty() && outbox_bytes_ + message.size() > kMaxOutboxBytes) {
      if (log::IsThisThreadShared()) {
        // The client stopped reading (a hung editor window), and waiting here would hold up every
        // session's stream (this is the providers' I/O thread): the channel ends instead, its
        // turns are cancelled and the client gets the error when it reads again.
        spdlog::warn("rpc channel: the client is more than {} MiB behind; closing its channel",
                     kMaxOutboxBytes >> 20);
        is_closed_ = true;
        outbox_.clear();
        outbox_bytes_ = 0;
        changed_.notify_all();
        std::function<void(Error)> overflow = on_overflow_;
        lock.unlock();
        if (overflow) {
          overflow(Error(ErrorCode::kResourceExhausted,
                         "the client fell more than 16 MiB behind in reading its channel while "
                         "a model streamed; the server closed it"));
        }
        return Closed();
      }
      // Any other thread (a session/load replay, a request's handler) waits: back-pressure.
      changed_.wait(lock, [&] {
        return is_closed_ || outbox_bytes_ + message.size() <= kMaxOutboxBytes || outbox_.empty();
      });
      if (is_closed_) return Closed();
    }
    outbox_.emplace_back(message);
    outbox_bytes_ += message.size();
    if (!drainer_.joinable()) drainer_ = std::thread([this] { Drain(); });
    changed_.notify_all();
    return OkStatus();
  }

  // Called once (on the thread that gave up) when the channel is given up for a client too far
  // behind. Set before the first Send.
  void OnOverflow(std::function<void(Error)> callback) { on_overflow_ = std::move(callback); }

  // Waits until the outbox is delivered (or the client is gone): before the channel's final reply.
  void Flush() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return is_closed_ || outbox_.empty(); });
  }

 private:
  static constexpr size_t kMaxOutboxBytes = 16u << 20;

  static Error Closed() {
    return Error(ErrorCode::kUnavailable, "rpc channel closed by the client");
  }

  void Drain() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return is_stopping_ || is_closed_ || !outbox_.empty(); });
      if (is_closed_ || outbox_.empty()) return;  // Stopping with nothing left to deliver.
      std::string message = std::move(outbox_.front());
      lock.unlock();
      // Blocks while the client's ring is full: only this channel waits.
      Status sent = responder_->Send(std::as_bytes(std::span(message.data(), message.size())));
      lock.lock();
      if (is_closed_) return;  // Send() gave the channel up meanwhile, and emptied the outbox.
      outbox_.pop_front();
      outbox_bytes_ -= message.size();
      if (!sent.ok()) {
        is_closed_ = true;
        outbox_.clear();
        outbox_bytes_ = 0;
      }
      changed_.notify_all();
    }
  }

  const std::shared_ptr<ipc::Responder> responder_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> outbox_;  // Guarded by mutex_; its front is being sent.
  size_t outbox_bytes_ = 0;         // Guarded by mutex_.
  bool is_closed_ = false;          // Guarded by mutex_. The client is gone or cancelled.
  bool is_stopping_ = false;        // Guarded by mutex_.
  std::thread drainer_;             // Started on the first message the ring could not take.
  std::function<void(Error)> on_overflow_;
};

}  // namespace

struct ShmRpcService::Channel {
  uint64_t token = 0;
  std::shared_ptr<ipc::Responder> responder;
  std::unique_ptr<ResponderTransport> transport;
  std::unique_ptr<Peer> peer;
  std::unique_ptr<ChannelState> state;
  std::thread thread;  // Set and taken under the service's mutex_.

  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::string> inbox;  // Guarded by mutex.
  size_t inbox_bytes = 0;         // Guarded by mutex.
  bool is_closing = false;        // Guarded by mutex. The client asked to close: drain the inbox.
  bool is_cancelled = false;      // Guarded by mutex. Gone or shut down: stop at once.
  bool is_ending = false;         // Guarded by mutex. The server stops: answer what runs, end.
  std::optional<Error> failure;   // Guarded by mutex.
};

ShmRpcService::ShmRpcService(ShmRpcServiceOptions options, ChannelFactory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {
  LAI_CHECK(options_.open_type >= 16 && options_.message_type >= 16 &&
            options_.open_type != options_.message_type)
      << "ShmRpcServiceOptions needs two distinct service message types";
  std::random_device random;
  token_state_ = (uint64_t{random()} << 32) ^ random() ^
                 static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

ShmRpcService::~ShmRpcService() {
  FlagAll(&Channel::is_cancelled);
  std::unique_lock lock(mutex_);
  channel_ended_.wait(lock, [this] { return channels_.empty(); });
  ReapLocked();
}

void ShmRpcService::Register(ipc::Server& server) {
  server.HandleStream(options_.open_type, "rpc_open",
                      [this](const ipc::Message&, std::shared_ptr<ipc::Responder> responder) {
                        Open(std::move(responder));
                      });
  server.Handle(options_.message_type, "rpc_message",
                [this](const ipc::Message& message, ipc::Reply&) { return Receive(message); });
}

size_t ShmRpcService::open_channels() const {
  std::lock_guard lock(mutex_);
  return channels_.size();
}

void ShmRpcService::Open(std::shared_ptr<ipc::Responder> responder) {
  // On the IPC worker: nothing here blocks.
  auto channel = std::make_shared<Channel>();
  channel->responder = responder;
  channel->transport = std::make_unique<ResponderTransport>(responder);
  {
    std::lock_guard lock(mutex_);
    ReapLocked();
    do {
      channel->token = SplitMix64(token_state_);
    } while (channel->token == 0 || channels_.contains(channel->token));
  }
  PeerOptions peer_options = options_.peer;
  peer_options.name = "rpc channel " + Hex(channel->token);
  channel->peer = std::make_unique<Peer>(*channel->transport, peer_options);
  if (factory_) channel->state = factory_(*channel->peer);
  {
    // Registered before the client learns the token: it sends its first message over its other
    // connection, which another worker may serve, possibly before this one gets to run again.
    std::lock_guard lock(mutex_);
    channels_.emplace(channel->token, channel);
  }

  std::byte token[kChannelTokenBytes];
  EncodeToken(channel->token, token);
  if (responder->TrySend(token) != ipc::Responder::SendResult::kSent) {
    std::lock_guard lock(channel->mutex);
    channel->is_cancelled = true;  // The client is gone already (or cannot take 8 bytes).
  }
  std::weak_ptr<Channel> weak = channel;
  channel->transport->OnOverflow([weak](Error error) {
    if (std::shared_ptr<Channel> target = weak.lock()) {
      std::lock_guard lock(target->mutex);
      target->failure = std::move(error);
      target->is_cancelled = true;
      target->changed.notify_all();
    }
  });
  responder->OnCancel([weak] {
    if (std::shared_ptr<Channel> target = weak.lock()) {
      std::lock_guard lock(target->mutex);
      target->is_cancelled = true;
      target->changed.notify_all();
    }
  });
  std::lock_guard lock(mutex_);
  channel->thread = std::thread([this, channel] {
    log::NameThisThread("lai-rpc-channel");
    RunChannel(channel);
  });
}

Status ShmRpcService::Receive(const ipc::Message& message) {
  // On the IPC worker: queue the message for the channel's thread.
  if (message.payload.size() < kChannelTokenBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "rpc message frame of " + std::to_string(message.payload.size()) +
                     " bytes: it must start with the 8-byte channel token");
  }
  uint64_t token = DecodeToken(message.payload.data());
  std::shared_ptr<Channel> channel;
  {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(token);
    if (it != channels_.end()) channel = it->second;
  }
  if (!channel) {
    spdlog::warn("rpc: dropped a message for channel {}, which is not open", Hex(token));
    return Error(ErrorCode::kNotFound, "rpc channel " + Hex(token) + " is not open");
  }
  size_t size = message.payload.size() - kChannelTokenBytes;
  std::lock_guard lock(channel->mutex);
  if (channel->is_closing || channel->is_cancelled) {
    return Error(ErrorCode::kUnavailable, "rpc channel " + Hex(token) + " is closing");
  }
  if (size == 0) {
    channel->is_closing = true;  // The client's close frame.
  } else if (channel->inbox_bytes + size > options_.max_inbox_bytes) {
    channel->failure = Error(ErrorCode::kResourceExhausted,
                             "rpc channel " + Hex(token) + ": more than " +
                                 std::to_string(options_.max_inbox_bytes) +
                                 " bytes of messages waiting; the client sends faster than the "
                                 "server handles them");
    channel->is_cancelled = true;
  } else {
    channel->inbox.emplace_back(
        reinterpret_cast<const char*>(message.payload.data()) + kChannelTokenBytes, size);
    channel->inbox_bytes += size;
  }
  channel->changed.notify_all();
  return OkStatus();
}

void ShmRpcService::RunChannel(const std::shared_ptr<Channel>& channel) {
  Channel& c = *channel;
  for (;;) {
    std::string message;
    {
      std::unique_lock lock(c.mutex);
      c.changed.wait(
          lock, [&] { return c.is_closing || c.is_cancelled || c.is_ending || !c.inbox.empty(); });
      if (c.is_cancelled || c.is_ending || c.inbox.empty()) break;
      message = std::move(c.inbox.front());
      c.inbox.pop_front();
      c.inbox_bytes -= message.size();
    }
    c.peer->OnMessage(message);
  }
  bool is_ending;
  bool server_stops;  // EndAll ended it: the client must not take that for its own close.
  {
    std::lock_guard lock(c.mutex);
    is_ending = c.is_ending && !c.is_cancelled;
    server_stops = c.is_ending;
  }
  if (is_ending) {
    // The peer closes itself once its running requests have answered; the server's EndAll
    // bounds the wait (then cancels the channel).
    c.peer->OnClose([&c] {
      std::lock_guard lock(c.mutex);
      c.changed.notify_all();
    });
    c.peer->EndOfInput();
    std::unique_lock lock(c.mutex);
    c.changed.wait(lock, [&] { return c.is_cancelled || c.peer->is_closed(); });
  }
  c.peer->Close();
  c.peer->Drain();
  c.state.reset();
  c.transport->Flush();
  std::optional<Error> failure;
  {
    std::lock_guard lock(c.mutex);
    failure = c.failure;
  }
  if (!failure && server_stops) {
    failure = Error(ErrorCode::kUnavailable,
                    "the lapce-ai server is shutting down; open a new channel once it is back");
  }
  // Errors here mean the client has gone: nobody is left to tell.
  if (failure) {
    (void)c.responder->Fail(*failure);
  } else {
    (void)c.responder->Finish();
  }
  {
    std::lock_guard lock(mutex_);
    channels_.erase(c.token);
    ended_threads_.push_back(std::move(c.thread));
  }
  channel_ended_.notify_all();
}

void ShmRpcService::EndAll(std::chrono::milliseconds grace) {
  FlagAll(&Channel::is_ending);
  {
    std::unique_lock lock(mutex_);
    channel_ended_.wait_for(lock, grace, [this] { return channels_.empty(); });
  }
  FlagAll(&Channel::is_cancelled);  // Out of time: stop waiting for their answers.
}

void ShmRpcService::FlagAll(bool Channel::*flag) {
  std::vector<std::shared_ptr<Channel>> open;
  {
    std::lock_guard lock(mutex_);
    for (auto& [token, channel] : channels_) open.push_back(channel);
  }
  for (auto& channel : open) {
    std::lock_guard lock(channel->mutex);
    (*channel).*flag = true;
    channel->changed.notify_all();
  }
}

void ShmRpcService::ReapLocked() {
  for (std::thread& thread : ended_threads_) thread.join();
  ended_threads_.clear();
}

// ---- ShmClientTransport ----

ShmClientTransport::ShmClientTransport(const ipc::ClientOptions& options, uint16_t message_type)
    : reader_client_(options), message_type_(message_type), sender_client_(options) {}

Result<std::unique_ptr<ShmClientTransport>> ShmClientTransport::Connect(
    const ipc::ClientOptions& options, uint16_t open_type, uint16_t message_type) {
  std::unique_ptr<ShmClientTransport> transport(new ShmClientTransport(options, message_type));
  RETURN_IF_ERROR(transport->reader_client_.Connect());
  RETURN_IF_ERROR(transport->sender_client_.Connect());
  ASSIGN_OR_RETURN(transport->open_request_id_, transport->reader_client_.Send(open_type, {}));
  Result<ipc::Response> hello = transport->reader_client_.Next(transport->open_request_id_);
  if (!hello.ok()) return std::move(hello).error().WithContext("open rpc channel");
  if (hello->is_final || hello->payload.size() != kChannelTokenBytes) {
    return Error(ErrorCode::kProtocol,
                 "open rpc channel: expected the 8-byte channel token as the first item, got a " +
                     std::string(hello->is_final ? "final reply" : "stream item") + " of " +
                     std::to_string(hello->payload.size()) + " bytes");
  }
  transport->token_ = DecodeToken(hello->payload.data());
  return transport;
}

ShmClientTransport::~ShmClientTransport() { Close(); }

Status ShmClientTransport::Send(std::string_view message) {
  if (is_ended_.load(std::memory_order_acquire)) {
    return Error(ErrorCode::kUnavailable, "rpc channel " + Hex(token_) + " has ended");
  }
  std::lock_guard lock(send_mutex_);
  if (has_sent_close_) {
    return Error(ErrorCode::kUnavailable, "rpc channel " + Hex(token_) + " is closed");
  }
  frame_.resize(kChannelTokenBytes + message.size());
  EncodeToken(token_, frame_.data());
  if (!message.empty())
    std::memcpy(frame_.data() + kChannelTokenBytes, message.data(), message.size());
  return sender_client_.Notify(message_type_, frame_);
}

void ShmClientTransport::Start(Peer& peer) {
  LAI_CHECK(!reader_.joinable()) << "ShmClientTransport::Start called twice";
  reader_ = std::thread([this, &peer] { ReadLoop(peer); });
}

void ShmClientTransport::Close() {
  is_stopping_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(send_mutex_);
    if (!has_sent_close_ && !is_ended_.load(std::memory_order_acquire)) {
      has_sent_close_ = true;
      std::byte token[kChannelTokenBytes];
      EncodeToken(token_, token);
      (void)sender_client_.Notify(message_type_, token);
    }
  }
  if (reader_.joinable()) {
    LAI_CHECK(reader_.get_id() != std::this_thread::get_id())
        << "ShmClientTransport::Close on its reader thread";
    reader_.join();
  }
}

void ShmClientTransport::ReadLoop(Peer& peer) {
  for (;;) {
    Result<ipc::Response> item = reader_client_.Next(open_request_id_, kReaderPoll);
    if (!item.ok()) {
      if (item.error().code() == ErrorCode::kTimeout &&
          !is_stopping_.load(std::memory_order_acquire)) {
        continue;
      }
      if (!is_stopping_.load(std::memory_order_acquire)) {
        spdlog::warn("rpc channel {} ended: {}", Hex(token_), item.error().ToString());
      }
      break;
    }
    if (item->is_final) break;
    peer.OnMessage(std::string_view(reinterpret_cast<const char*>(item->payload.data()),
                                    item->payload.size()));
  }
  is_ended_.store(true, std::memory_order_release);
  peer.Close();
}

}  // namespace lai::rpc
