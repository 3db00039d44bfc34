// Unix-socket plumbing for the control connection: the per-user runtime directory, listening and
// connecting SOCK_SEQPACKET sockets, peer credentials, and messages carrying file descriptors.
// Free functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::ipc {

// `configured` if non-empty, else $XDG_RUNTIME_DIR/lapce-ai, else /tmp/lapce-ai-<uid>.
std::string RuntimeDir(const std::string& configured);

// Creates `dir` (and missing parents) as 0700, or checks an existing one: it must be a real
// directory owned by this user; a too-open mode of our own directory is tightened to 0700.
Status EnsurePrivateDir(const std::string& dir);

// Binds and listens on `path` (mode 0600). The caller must hold the server lock (below) so an
// existing socket file is known to be stale and is replaced.
Result<UniqueFd> ListenUnix(const std::string& path, int backlog);

// Takes an exclusive lock on `path` + ".lock" for the life of the returned fd. kUnavailable
// ("another lapce-ai server is serving <path>") when a live server holds it.
Result<UniqueFd> LockServerPath(const std::string& path);

Result<UniqueFd> ConnectUnix(const std::string& path);

// The uid of the process at the other end of a connected Unix socket (SO_PEERCRED).
Result<uid_t> PeerUid(int fd);

// Sends one datagram with up to 4 file descriptors attached (SCM_RIGHTS).
Status SendWithFds(int fd, std::span<const std::byte> data, std::span<const int> fds);

struct ReceivedPacket {
  size_t bytes = 0;
  std::vector<UniqueFd> fds;
};
// Receives one datagram into `buffer`, waiting at most `timeout`. kTimeout, kUnavailable on EOF,
// kProtocol for truncated data or descriptors.
Result<ReceivedPacket> ReceiveWithFds(int fd, std::span<std::byte> buffer,
                                      std::chrono::milliseconds timeout);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
size_t RaiseFileLimit();

}  // namespace lai::ipc
