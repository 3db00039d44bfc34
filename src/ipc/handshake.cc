#include "ipc/handshake.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "ipc/channel.h"
#include "ipc/frame.h"
#include "ipc/socket.h"

namespace lai::ipc {

Status ValidateHello(const Hello& hello, uint64_t file_bytes) {
  if (hello.magic != kHelloMagic) {
    return Error(ErrorCode::kProtocol, "handshake: not a lapce-ai client (bad hello magic)");
  }
  if (hello.min_version > kProtocolVersion || hello.max_version < kProtocolVersion ||
      hello.min_version > hello.max_version) {
    return Error(ErrorCode::kProtocol,
                 "handshake: client speaks protocol versions " + std::to_string(hello.min_version) +
                     ".." + std::to_string(hello.max_version) + ", server speaks " +
                     std::to_string(kProtocolVersion) + "; upgrade the older side");
  }
  for (uint32_t cells : {hello.c2s_cells, hello.s2c_cells}) {
    // Not std::has_single_bit: without -mpopcnt it calls libgcc's __popcountdi2, whose code page
    // an idle server would otherwise keep resident for this one check.
    bool power_of_two = (cells & (cells - 1)) == 0;
    if (cells < kMinCellsPerRing || cells > kMaxCellsPerRing || !power_of_two) {
      return Error(ErrorCode::kInvalidArgument, "handshake: ring of " + std::to_string(cells) +
                                                    " cells; must be a power of two between " +
                                                    std::to_string(kMinCellsPerRing) + " and " +
                                                    std::to_string(kMaxCellsPerRing));
    }
  }
  ConnectionLayout layout{hello.c2s_cells, hello.s2c_cells};
  if (hello.block_offset % kCacheLineBytes != 0 || hello.block_offset > file_bytes ||
      file_bytes - hello.block_offset < layout.bytes()) {
    return Error(ErrorCode::kProtocol, "handshake: connection block at offset " +
                                           std::to_string(hello.block_offset) +
                                           " does not fit in the shared file of " +
                                           std::to_string(file_bytes) + " bytes");
  }
  if (hello.max_message_bytes == 0) {
    return Error(ErrorCode::kInvalidArgument, "handshake: maximum message size of 0 bytes");
  }
  return OkStatus();
}

Welcome MakeRefusal(const Error& error) {
  Welcome w;
  w.refused = 1;
  w.error_code = static_cast<uint32_t>(error.code());
  size_t n = std::min(error.message().size(), sizeof(w.reason) - 1);
  std::memcpy(w.reason, error.message().data(), n);
  return w;
}

Result<std::shared_ptr<Mapping>> SharedFileCache::Map(int fd, size_t min_size_bytes) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat client shared file", errno);
  std::pair<uint64_t, uint64_t> key{st.st_dev, st.st_ino};
  std::lock_guard lock(mutex_);
  auto it = files_.find(key);
  if (it != files_.end()) {
    if (std::shared_ptr<Mapping> existing = it->second.lock()) {
      if (existing->size() < min_size_bytes) {
        return Error(ErrorCode::kProtocol, "client shared file is smaller than announced");
      }
      return existing;
    }
  }
  ASSIGN_OR_RETURN(Mapping mapping, MapPeerFile(fd, min_size_bytes));
  auto shared = std::make_shared<Mapping>(std::move(mapping));
  for (auto i = files_.begin(); i != files_.end();) {
    i = i->second.expired() ? files_.erase(i) : std::next(i);
  }
  files_[key] = shared;
  return shared;
}

namespace {

// We write to the client's wake descriptor from worker threads: it must be an eventfd (never
// blocks), not a pipe or socket a client could fill.
bool IsEventFd(int fd) {
  char link[64];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  return n > 0 && std::string_view(link, static_cast<size_t>(n)) == "anon_inode:[eventfd]";
}

}  // namespace

Result<AcceptedHello> ReceiveHello(int sock, uid_t allowed_uid, uint32_t server_max_message_bytes,
                                   SharedFileCache& files, std::chrono::milliseconds timeout) {
  // Read the Hello before judging the peer: closing a socket with unread data resets it, and the
  // client would see "connection reset" instead of our refusal. Nothing is mapped or kept before
  // the uid check; received descriptors close with `packet`.
  Hello hello;
  ASSIGN_OR_RETURN(ReceivedPacket packet,
                   ReceiveWithFds(sock, std::as_writable_bytes(std::span(&hello, 1)), timeout));
  ASSIGN_OR_RETURN(uid_t uid, PeerUid(sock));
  if (uid != allowed_uid) {
    return Error(ErrorCode::kPermissionDenied,
                 "handshake: client runs as uid " + std::to_string(uid) +
                     "; this server serves only uid " + std::to_string(allowed_uid));
  }
  if (packet.bytes != sizeof(Hello)) {
    return Error(ErrorCode::kProtocol, "handshake: hello of " + std::to_string(packet.bytes) +
                                           " bytes, expected " + std::to_string(sizeof(Hello)));
  }
  if (packet.fds.size() != 2) {
    return Error(ErrorCode::kProtocol, "handshake: hello carries " +
                                           std::to_string(packet.fds.size()) +
                                           " descriptors, expected 2 (shared file, eventfd)");
  }
  RETURN_IF_ERROR(ValidateHello(hello, UINT64_MAX));
  if (!IsEventFd(packet.fds[1].get())) {
    return Error(ErrorCode::kProtocol,
                 "handshake: the hello's second descriptor is not an eventfd");
  }
  ConnectionLayout layout{hello.c2s_cells, hello.s2c_cells};
  ASSIGN_OR_RETURN(std::shared_ptr<Mapping> file,
                   files.Map(packet.fds[0].get(), hello.block_offset + layout.bytes()));
  RETURN_IF_ERROR(ValidateHello(hello, file->size()));
  AcceptedHello accepted;
  accepted.hello = hello;
  accepted.file = std::move(file);
  accepted.client_eventfd = std::move(packet.fds[1]);
  accepted.max_message_bytes = std::min(hello.max_message_bytes, server_max_message_bytes);
  return accepted;
}

Status SendWelcome(int sock, const Welcome& welcome, int doorbell_fd, int worker_eventfd) {
  int fds[2] = {doorbell_fd, worker_eventfd};
  return SendWithFds(sock, std::as_bytes(std::span(&welcome, 1)), fds);
}

void SendRefusal(int sock, const Error& error) {
  Welcome refusal = MakeRefusal(error);
  (void)SendWithFds(sock, std::as_bytes(std::span(&refusal, 1)), {});
}

}  // namespace lai::ipc
