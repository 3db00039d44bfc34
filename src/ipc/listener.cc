#include "ipc/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>

#include "ipc/buffer_pool.h"
#include "ipc/handshake.h"
#include "ipc/socket.h"
#include "ipc/stream_internal.h"

namespace lai::ipc {

struct Listener::State {
  std::string path;
  ListenerOptions options;
  LockFile lock;
  UniqueFd socket;
  SharedFileCache files;
  BufferPool pool{BufferPoolOptions{.budget_bytes = size_t{256} << 20,
                                    .max_message_bytes = size_t{1} << 30}};
};

Listener::Listener() = default;
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() {
  if (s_ != nullptr && s_->socket.is_valid()) ::unlink(s_->path.c_str());
}

const std::string& Listener::path() const { return s_->path; }

Result<Listener> Listener::Bind(const std::string& socket_path, const ListenerOptions& options) {
  auto s = std::make_unique<State>();
  s->path = socket_path;
  s->options = options;
  std::string dir = socket_path.substr(0, socket_path.find_last_of('/'));
  if (!dir.empty()) RETURN_IF_ERROR(EnsurePrivateDir(dir));
  ASSIGN_OR_RETURN(s->lock, LockServerPath(socket_path));
  ASSIGN_OR_RETURN(s->socket, ListenUnix(socket_path, 128));
  Listener listener;
  listener.s_ = std::move(s);
  return listener;
}

Result<Stream> Listener::Accept(std::chrono::milliseconds timeout) {
  pollfd pfd{s_->socket.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return ErrnoError("poll listener", errno);
  if (rc == 0) return Error(ErrorCode::kTimeout, "no client connected in time");
  UniqueFd socket(::accept4(s_->socket.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!socket.is_valid()) return ErrnoError("accept", errno);

  const ListenerOptions& o = s_->options;
  Result<AcceptedHello> hello = ReceiveHello(socket.get(), o.allowed_uid, o.max_message_bytes,
                                             s_->files, o.handshake_timeout);
  if (!hello.ok()) {
    SendRefusal(socket.get(), hello.error());
    return std::move(hello).error();
  }
  // A one-slot doorbell of our own: the client rings it and writes our eventfd when we sleep.
  UniqueFd own_eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!own_eventfd.is_valid()) return ErrnoError("eventfd", errno);
  uint32_t doorbell_bytes = static_cast<uint32_t>(DoorbellLayout::Bytes(1));
  ASSIGN_OR_RETURN(UniqueFd doorbell_fd, CreateSharedFile("lapce-ai-doorbell", doorbell_bytes));
  ASSIGN_OR_RETURN(Mapping doorbell, MapOwnFile(doorbell_fd.get(), doorbell_bytes));

  Welcome welcome;
  welcome.version = kProtocolVersion;
  welcome.slot = 0;
  welcome.doorbell_bytes = doorbell_bytes;
  welcome.max_message_bytes = hello->max_message_bytes;
  RETURN_IF_ERROR(SendWelcome(socket.get(), welcome, doorbell_fd.get(), own_eventfd.get()));

  ConnectionLayout layout{hello->hello.c2s_cells, hello->hello.s2c_cells};
  std::byte* block = hello->block();
  auto state = std::make_unique<Stream::State>(Stream::State{
      .socket = std::move(socket),
      .own_eventfd = std::move(own_eventfd),
      .peer_eventfd = std::move(hello->client_eventfd),
      .block = ArenaBlock{},
      .peer_file = hello->file,
      .doorbell = std::move(doorbell),
      .own_sleeping = nullptr,
      .channel = std::nullopt,
      .spin = SpinBudget(std::chrono::microseconds(2), o.max_spin),
  });
  state->own_sleeping = DoorbellLayout::Sleeping(state->doorbell.data());
  state->channel.emplace(layout.S2c(block, hello->hello.s2c_salt),
                         layout.C2s(block, hello->hello.c2s_salt), hello->max_message_bytes,
                         s_->pool, PeerWaker::ToClient(state->peer_eventfd.get()));
  return Stream(std::move(state));
}

}  // namespace lai::ipc
