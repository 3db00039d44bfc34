#include "ipc/socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lai::ipc {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument,
                 "socket path '" + path + "' is longer than " +
                     std::to_string(sizeof(addr.sun_path) - 1) + " bytes; set ipc.runtime_dir");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

std::string RuntimeDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/lapce-ai";
  return "/tmp/lapce-ai-" + std::to_string(::getuid());
}

Status EnsurePrivateDir(const std::string& dir, SocketDir use) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError("stat '" + dir + "'", errno);
    size_t slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      std::string parent = dir.substr(0, slash);
      struct stat pst;
      if (::stat(parent.c_str(), &pst) != 0) RETURN_IF_ERROR(EnsurePrivateDir(parent));
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError("create directory '" + dir + "'", errno);
    }
    if (::lstat(dir.c_str(), &st) != 0) return ErrnoError("stat '" + dir + "'", errno);
  }
  if (S_ISLNK(st.st_mode)) {  // Not followed: whoever controls the link controls the socket.
    return Error(ErrorCode::kPermissionDenied,
                 "'" + dir +
                     "' is a symbolic link; the socket's directory must be a real "
                     "directory of this user's (remove the link, or name the directory "
                     "it points to)");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kPermissionDenied, "'" + dir + "' is not a directory");
  }
  if (st.st_uid != ::getuid()) {
    return Error(ErrorCode::kPermissionDenied,
                 "'" + dir + "' belongs to uid " + std::to_string(st.st_uid) +
                     ", not to this user; remove it or set ipc.runtime_dir");
  }
  if ((st.st_mode & 077) == 0) return OkStatus();
  if (use == SocketDir::kOwn) {
    if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod 0700 '" + dir + "'", errno);
    return OkStatus();
  }
  if ((st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Error(ErrorCode::kPermissionDenied,
                 "'" + dir + "' may be written by other users (mode " + mode +
                     "), who could replace the socket; put it in a directory only you can write "
                     "to (lapce-ai's own runtime directory, the default, is one)");
  }
  return OkStatus();
}

// Anything but a socket at `path` is never replaced (see ListenUnix), and gets no lock file.
Status CheckSocketPathFree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + path + "' exists and is not a socket; lapce-ai will not replace it: " +
                     "choose another socket path");
  }
  return OkStatus();
}

Result<LockFile> LockServerPath(const std::string& path) {
  RETURN_IF_ERROR(CheckSocketPathFree(path));
  std::string lock_path = path + ".lock";
  Result<LockFile> lock = LockFile::Take(lock_path);
  if (lock.ok() || lock.error().code() != ErrorCode::kUnavailable) return lock;
  std::string pid = LockFile::HolderOf(lock_path);
  return Error(ErrorCode::kUnavailable, "another lapce-ai server" +
                                            (pid.empty() ? std::string() : " (pid " + pid + ")") +
                                            " is serving '" + path + "'; stop it first");
}

Result<UniqueFd> ListenUnix(const std::string& path, int backlog) {
  ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.is_valid()) return ErrnoError("socket", errno);
  // We hold the server lock, so a socket file left here belongs to a server that died. Nothing
  // else is ever removed: a mistyped --socket must not delete a file.
  RETURN_IF_ERROR(CheckSocketPathFree(path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("remove stale socket '" + path + "'", errno);
  }
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old_mask);
  if (rc != 0) return ErrnoError("bind '" + path + "'", bind_errno);
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoError("chmod '" + path + "'", errno);
  if (::listen(fd.get(), backlog) != 0) return ErrnoError("listen '" + path + "'", errno);
  return fd;
}

Result<UniqueFd> ConnectUnix(const std::string& path) {
  ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) return ErrnoError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return Error(ErrorCode::kUnavailable, "no lapce-ai server is listening on '" + path +
                                                "'; start one with `lapce-ai serve`");
    }
    return ErrnoError("connect '" + path + "'", err);
  }
  return fd;
}

Result<uid_t> PeerUid(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoError("SO_PEERCRED", errno);
  }
  return cred.uid;
}

Status SendWithFds(int fd, std::span<const std::byte> data, std::span<const int> fds) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    if (fds.size() > 4) return Error(ErrorCode::kInternal, "too many descriptors to send");
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(data.size())) return OkStatus();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("send on control socket", errno);
    return Error(ErrorCode::kIo, "short send on control socket");
  }
}

Result<ReceivedPacket> ReceiveWithFds(int fd, std::span<std::byte> buffer,
                                      std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return ErrnoError("poll control socket", errno);
  if (rc == 0) {
    return Error(ErrorCode::kTimeout,
                 "no handshake message within " + std::to_string(timeout.count()) + " ms");
  }
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("receive on control socket", errno);
  ReceivedPacket packet;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        packet.fds.emplace_back(received);
      }
    }
  }
  if (n == 0) return Error(ErrorCode::kUnavailable, "peer closed the control socket");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return Error(ErrorCode::kProtocol, "oversized handshake message or too many descriptors");
  }
  packet.bytes = static_cast<size_t>(n);
  return packet;
}

size_t RaiseFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<size_t>(limit.rlim_cur);
}

}  // namespace lai::ipc
