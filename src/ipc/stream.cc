#include "ipc/stream.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "ipc/handshake.h"
#include "ipc/shm.h"
#include "ipc/socket.h"
#include "ipc/stream_internal.h"
#include "ipc/wait.h"

namespace lai::ipc {
namespace {

// One shared file per client process holds the rings of all its connections, so a thousand
// connections cost the server a handful of mappings instead of a thousand 4 KiB pages.
// Thread-safe.
class ClientArena {
 public:
  static ClientArena& Get() {
    static ClientArena* arena = [] {
      auto* a = new ClientArena();  // Never destroyed: blocks may outlive main.
      // A forked child inherits our shared files and bookkeeping; were it to allocate from them,
      // its connections would share rings with its parent's. The child starts afresh (and the
      // mutex is held across fork, so the child never inherits it locked by another thread).
      ::pthread_atfork([] { Get().mutex_.lock(); }, [] { Get().mutex_.unlock(); },
                       [] {
                         ClientArena& self = Get();
                         self.chunks_.clear();
                         self.mutex_.unlock();
                       });
      return a;
    }();
    return *arena;
  }

  Result<ArenaBlock> Allocate(size_t bytes) {
    bytes = (bytes + kCacheLineBytes - 1) / kCacheLineBytes * kCacheLineBytes;
    std::lock_guard lock(mutex_);
    for (const std::shared_ptr<ArenaChunk>& chunk : chunks_) {
      auto it = chunk->free_blocks.find(bytes);
      if (it != chunk->free_blocks.end() && !it->second.empty()) {
        uint64_t offset = it->second.back();
        it->second.pop_back();
        return ArenaBlock{chunk, offset, bytes};
      }
      if (chunk->mapping.size() - chunk->used >= bytes) {
        uint64_t offset = chunk->used;
        chunk->used += bytes;
        return ArenaBlock{chunk, offset, bytes};
      }
    }
    size_t chunk_bytes = std::max<size_t>(kChunkBytes, (bytes + 4095) / 4096 * 4096);
    ASSIGN_OR_RETURN(UniqueFd fd, CreateSharedFile("lapce-ai-client", chunk_bytes));
    ASSIGN_OR_RETURN(Mapping mapping, MapOwnFile(fd.get(), chunk_bytes));
    auto chunk = std::make_shared<ArenaChunk>();
    chunk->fd = std::move(fd);
    chunk->mapping = std::move(mapping);
    chunk->used = bytes;
    chunks_.push_back(chunk);
    return ArenaBlock{chunk, 0, bytes};
  }

  // `reusable` only when the server confirmed it no longer touches the block.
  void Free(const ArenaBlock& block, bool reusable) {
    if (!reusable || block.chunk == nullptr) return;
    std::lock_guard lock(mutex_);
    block.chunk->free_blocks[block.bytes].push_back(block.offset);
  }

 private:
  static constexpr size_t kChunkBytes = 256 * 1024;
  std::mutex mutex_;
  std::vector<std::shared_ptr<ArenaChunk>> chunks_;  // Guarded by mutex_.
};

BufferPool& ClientBufferPool() {
  static BufferPool* pool = new BufferPool(BufferPoolOptions{.budget_bytes = 256u << 20,
                                                             .max_message_bytes = 1u << 30});
  return *pool;
}

constexpr uint64_t kSpinAfterWakingNs = 200'000;

uint32_t CellsFor(uint32_t ring_bytes) {
  uint32_t bytes = std::clamp<uint32_t>(ring_bytes, 256, kMaxCellsPerRing * kCellBytes);
  return std::bit_ceil((bytes + static_cast<uint32_t>(kCellBytes) - 1) /
                       static_cast<uint32_t>(kCellBytes));
}

}  // namespace

Stream::Stream() = default;
Stream::Stream(std::unique_ptr<State> state) : s_(std::move(state)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    Close();
    s_ = std::move(other.s_);
  }
  return *this;
}
Stream::~Stream() { Close(); }

Result<Stream> Stream::Connect(const std::string& socket_path, const StreamOptions& options) {
  auto fail = [&](Error e) { return std::move(e).WithContext("connect '" + socket_path + "'"); };
  Result<UniqueFd> sock = ConnectUnix(socket_path);
  if (!sock.ok()) return std::move(sock).error();
  Result<uid_t> server_uid = PeerUid(sock->get());
  if (!server_uid.ok()) return fail(std::move(server_uid).error());
  if (*server_uid != ::getuid()) {
    return fail(Error(ErrorCode::kPermissionDenied,
                      "the server runs as uid " + std::to_string(*server_uid) +
                          ", not as this user; refusing to send it anything"));
  }
  UniqueFd own_eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!own_eventfd.is_valid()) return fail(ErrnoError("eventfd", errno));

  ConnectionLayout layout{CellsFor(options.ring_bytes), CellsFor(options.ring_bytes)};
  Result<ArenaBlock> block = ClientArena::Get().Allocate(layout.bytes());
  if (!block.ok()) return fail(std::move(block).error());
  std::byte* base = block->data();
  std::memset(base, 0, ConnectionLayout::kControlsBytes);
  Hello hello;
  hello.c2s_cells = layout.c2s_cells;
  hello.s2c_cells = layout.s2c_cells;
  hello.block_offset = block->offset;
  hello.c2s_salt = RandomU64();
  hello.s2c_salt = RandomU64();
  hello.max_message_bytes = options.max_message_bytes;
  RingGeometry c2s = layout.C2s(base, hello.c2s_salt);
  RingGeometry s2c = layout.S2c(base, hello.s2c_salt);
  // The server does not watch a new connection's ring until we ring its doorbell.
  c2s.control->consumer_state = kConsumerParked;
  s2c.control->consumer_state = kConsumerPolling;

  int fds[2] = {block->chunk->fd.get(), own_eventfd.get()};
  if (Status s = SendWithFds(sock->get(), std::as_bytes(std::span(&hello, 1)), fds); !s.ok()) {
    ClientArena::Get().Free(*block, false);
    return fail(std::move(s).error());
  }
  Welcome welcome;
  Result<ReceivedPacket> reply = ReceiveWithFds(
      sock->get(), std::as_writable_bytes(std::span(&welcome, 1)), options.handshake_timeout);
  if (!reply.ok()) {
    ClientArena::Get().Free(*block, false);
    return fail(std::move(reply).error());
  }
  auto refuse = [&](Error e) {
    ClientArena::Get().Free(*block, false);
    return fail(std::move(e));
  };
  if (reply->bytes != sizeof(Welcome) || welcome.magic != kWelcomeMagic) {
    return refuse(Error(ErrorCode::kProtocol, "the server sent a malformed welcome"));
  }
  if (welcome.refused != 0) {
    welcome.reason[sizeof(welcome.reason) - 1] = '\0';
    auto code = static_cast<ErrorCode>(
        std::min<uint32_t>(welcome.error_code, static_cast<uint32_t>(ErrorCode::kInternal)));
    return refuse(Error(code, std::string("server refused the connection: ") + welcome.reason));
  }
  if (reply->fds.size() != 2 || welcome.version != kProtocolVersion ||
      welcome.slot == UINT32_MAX ||  // slot + 1 below would wrap to 0.
      welcome.doorbell_bytes < DoorbellLayout::Bytes(welcome.slot + 1) ||
      welcome.max_message_bytes == 0 || welcome.max_message_bytes > options.max_message_bytes) {
    return refuse(Error(ErrorCode::kProtocol, "the server sent an inconsistent welcome"));
  }
  Result<Mapping> doorbell = MapPeerFile(reply->fds[0].get(), welcome.doorbell_bytes);
  if (!doorbell.ok()) return refuse(std::move(doorbell).error());

  auto state = std::make_unique<State>(State{
      .socket = std::move(sock).value(),
      .own_eventfd = std::move(own_eventfd),
      .peer_eventfd = std::move(reply->fds[1]),
      .block = std::move(block).value(),
      .peer_file = nullptr,
      .doorbell = std::move(doorbell).value(),
      .own_sleeping = nullptr,
      .channel = std::nullopt,
      .spin = SpinBudget(std::chrono::microseconds(2), options.max_spin),
  });
  state->channel.emplace(
      c2s, s2c, welcome.max_message_bytes, ClientBufferPool(),
      PeerWaker::ToServer(state->doorbell.data(), welcome.slot, state->peer_eventfd.get()));
  return Stream(std::move(state));
}

bool Stream::is_open() const { return s_ != nullptr && s_->socket.is_valid(); }

bool Stream::HasPeerHungUp() const {
  if (!is_open()) return true;
  pollfd pfd{s_->socket.get(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0 && pfd.revents != 0;
}

void Stream::Close() {
  if (s_ == nullptr || !s_->socket.is_valid()) return;
  bool acknowledged = false;
  if (s_->block.chunk != nullptr) {
    // Reuse the block only once the server has closed its end, i.e. stopped touching the rings.
    ::shutdown(s_->socket.get(), SHUT_WR);
    pollfd pfd{s_->socket.get(), POLLIN, 0};
    char byte;
    acknowledged = ::poll(&pfd, 1, 100) == 1 && ::recv(s_->socket.get(), &byte, 1, 0) == 0;
  }
  s_->channel.reset();
  s_->socket.Reset();
  ClientArena::Get().Free(s_->block, acknowledged);
  s_->block = ArenaBlock{};
}

Status Stream::WaitForPeer(bool for_space, uint64_t deadline_ns, uint64_t timeout_ns) {
  State& s = *s_;
  Channel& channel = *s.channel;
  auto ready = [&] { return for_space ? channel.HasSpaceForFrame() : channel.HasIncoming(); };
  // Whatever we wait for, a peer waiting for the space we freed must not wait on us.
  channel.WakeWaitingProducer();
  // The clock is read only every 32 polls: a reply that comes within the first few hundred
  // nanoseconds costs no clock read at all.
  uint64_t spin_until = 0;
  // Having just woken the peer from sleep, its answer comes after its wake-up (tens of µs on a
  // VM): spin through that rather than add a wake-up of our own.
  uint64_t budget_ns = s.spin.budget_ns();
  if (!for_space && channel.TakeWokeSleepingPeer() && budget_ns != 0) {
    budget_ns = std::max<uint64_t>(budget_ns, kSpinAfterWakingNs);
  }
  for (uint32_t i = 1;; ++i) {
    if (ready()) return OkStatus();
    CpuRelax();
    if ((i & 31) != 0) continue;
    uint64_t now = NowNs();
    if (spin_until == 0) {
      spin_until = now + budget_ns;
      if (deadline_ns == 0 && timeout_ns != 0) deadline_ns = now + timeout_ns;
    }
    if (deadline_ns != 0 && now >= deadline_ns) {
      return Error(ErrorCode::kTimeout,
                   for_space ? "the peer read none of our messages before the deadline (its "
                               "receive ring stayed full: it is stopped, or too busy to read)"
                             : "no answer from the peer before the deadline");
    }
    if (now < spin_until) continue;

    // Park: announce it, look once more, then sleep until the peer writes our eventfd.
    // Server side: the client writes our eventfd only while our doorbell says we sleep, whether we
    // wait for data or for space. Both announcements below fence after this store.
    if (s.own_sleeping != nullptr) {
      std::atomic_ref<uint32_t>(*s.own_sleeping).store(1, std::memory_order_relaxed);
    }
    bool ready_now;
    if (for_space) {
      ready_now = channel.PrepareToWaitForSpace();
    } else {
      channel.SetParked(true);
      ready_now = channel.HasIncoming();
    }
    int timeout_ms = -1;
    if (deadline_ns != 0) {
      timeout_ms = static_cast<int>((deadline_ns - now + 999'999) / 1'000'000);
    }
    pollfd pfds[2] = {{s.socket.get(), POLLIN, 0}, {s.own_eventfd.get(), POLLIN, 0}};
    int rc = ready_now ? 0 : ::poll(pfds, 2, timeout_ms);
    if (!for_space) channel.SetParked(false);
    if (s.own_sleeping != nullptr) {
      std::atomic_ref<uint32_t>(*s.own_sleeping).store(0, std::memory_order_relaxed);
    }
    if (rc < 0 && errno != EINTR) return ErrnoError("poll", errno);
    if (rc > 0 && (pfds[1].revents & POLLIN) != 0) {
      uint64_t count;
      ssize_t n = ::read(s.own_eventfd.get(), &count, sizeof(count));
      (void)n;
    }
    if (rc > 0 && pfds[0].revents != 0) {
      // The control socket only ever becomes readable when the peer closes it (it died or shut
      // down). Deliver what it left in the ring first.
      if (ready()) return OkStatus();
      return Error(ErrorCode::kUnavailable, "the peer closed the connection");
    }
    uint64_t woke = NowNs();
    s.spin.OnParked(woke - now);
    spin_until = woke + s.spin.budget_ns();
  }
}

Status Stream::Send(const FrameHeader& header, std::span<const std::byte> payload,
                    uint64_t deadline_ns) {
  static const std::function<Status()> kNoDrain;
  return Send(header, payload, deadline_ns, kNoDrain);
}

Status Stream::Send(const FrameHeader& header, std::span<const std::byte> payload,
                    uint64_t deadline_ns, const std::function<Status()>& drain) {
  if (!is_open()) return Error(ErrorCode::kUnavailable, "send on a closed connection");
  Channel& channel = *s_->channel;
  if (payload.size() > channel.max_message_bytes()) {
    return Error(ErrorCode::kInvalidArgument,
                 "message of " + std::to_string(payload.size()) +
                     " bytes exceeds the connection's maximum of " +
                     std::to_string(channel.max_message_bytes()));
  }
  size_t offset = 0;
  for (;;) {
    switch (channel.SendSome(header, payload, &offset)) {
      case Channel::SendStatus::kDone:
        return OkStatus();
      case Channel::SendStatus::kBroken:
        Close();
        return Error(ErrorCode::kProtocol, "the peer corrupted the ring's read position");
      case Channel::SendStatus::kFull: {
        uint64_t wait_until = deadline_ns;
        if (drain) {
          if (Status drained = drain(); !drained.ok()) {
            if (offset != 0) Close();
            return drained;
          }
          if (!is_open()) return Error(ErrorCode::kUnavailable, "the connection was closed");
          uint64_t slice_end = NowNs() + kDrainSliceNs;
          wait_until = deadline_ns == 0 ? slice_end : std::min(deadline_ns, slice_end);
        }
        Status s = WaitForPeer(true, wait_until);
        if (!s.ok() && s.code() == ErrorCode::kTimeout && wait_until != deadline_ns) break;
        if (!s.ok()) {
          if (offset != 0 || s.code() != ErrorCode::kTimeout) Close();
          return s;
        }
        break;
      }
    }
  }
}

std::span<std::byte> Stream::TryBeginSend(const FrameHeader& header, uint32_t payload_bytes) {
  if (!is_open()) return {};
  return s_->channel->TryBeginMessage(header, payload_bytes);
}

void Stream::FinishSend() { s_->channel->FinishMessage(); }

Result<Message> Stream::Receive(uint64_t deadline_ns) { return ReceiveImpl(deadline_ns, 0); }

Result<Message> Stream::ReceiveWithin(std::chrono::nanoseconds timeout) {
  return ReceiveImpl(0, static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 1)));
}

Result<Message> Stream::ReceiveImpl(uint64_t deadline_ns, uint64_t timeout_ns) {
  if (!is_open()) return Error(ErrorCode::kUnavailable, "receive on a closed connection");
  Release();
  Channel& channel = *s_->channel;
  for (;;) {
    Channel::Received r = channel.Receive();
    switch (r.status) {
      case Channel::ReceiveStatus::kMessage:
        s_->holding = true;
        return r.message;
      case Channel::ReceiveStatus::kBroken: {
        Error e(ErrorCode::kProtocol, channel.broken_reason());
        Close();
        return e;
      }
      case Channel::ReceiveStatus::kBlocked:
        // Reassembly memory is exhausted: retry, but keep honouring the deadline and notice a
        // peer that has gone.
        if (deadline_ns != 0 && NowNs() >= deadline_ns) {
          return Error(ErrorCode::kTimeout,
                       "no memory to reassemble the incoming message before the deadline");
        }
        if (HasPeerHungUp()) return Error(ErrorCode::kUnavailable, "the peer closed the connection");
        std::this_thread::yield();
        break;
      case Channel::ReceiveStatus::kEmpty:
        if (deadline_ns == 0 && timeout_ns != 0) {
          // Fix the deadline on the first wait, so that further waits share it.
          Status waited = WaitForPeer(false, 0, timeout_ns);
          if (!waited.ok()) return std::move(waited).error();
          deadline_ns = NowNs() + timeout_ns;  // Conservative: extends by at most one wait.
          timeout_ns = 0;
        } else {
          RETURN_IF_ERROR(WaitForPeer(false, deadline_ns));
        }
        break;
    }
  }
}

Result<std::optional<Message>> Stream::TryReceive() {
  if (!is_open()) return Error(ErrorCode::kUnavailable, "receive on a closed connection");
  Release();
  Channel::Received r = s_->channel->Receive();
  switch (r.status) {
    case Channel::ReceiveStatus::kMessage:
      s_->holding = true;
      return std::optional<Message>(r.message);
    case Channel::ReceiveStatus::kBroken: {
      Error e(ErrorCode::kProtocol, s_->channel->broken_reason());
      Close();
      return e;
    }
    case Channel::ReceiveStatus::kBlocked:
    case Channel::ReceiveStatus::kEmpty:
      break;
  }
  return std::optional<Message>();
}

void Stream::Release() {
  if (s_ != nullptr && s_->holding) {
    s_->holding = false;
    if (s_->channel) s_->channel->Consume();
  }
}

}  // namespace lai::ipc
