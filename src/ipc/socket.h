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

#include "base/lock_file.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::ipc {

// `configured` if non-empty, else $XDG_RUNTIME_DIR/lapce-ai, else /tmp/lapce-ai-<uid>.
std::string RuntimeDir(const std::string& configured);

// Whose directory a socket goes in.
enum class SocketDir {
  kOwn,     // lapce-ai's runtime directory: made private (0700) if found open.
  kChosen,  // One the user named (`serve --socket`): never changed; refused if others may write.
};

// Creates `dir` (and missing parents) as 0700, or checks an existing one: it must be a real
// directory owned by this user. An open mode is tightened to 0700 for kOwn; for kChosen a
// directory group or others may write to is refused (kPermissionDenied), and one they may only
// read is left as it is.
Status EnsurePrivateDir(const std::string& dir, SocketDir use = SocketDir::kOwn);

// Binds and listens on `path` (mode 0600). The caller must hold the server lock (below) so an
// existing socket file is known to be stale and is replaced; anything else at `path` (a file, a
// directory) is never removed: kInvalidArgument.
Result<UniqueFd> ListenUnix(const std::string& path, int backlog);

// Takes an exclusive lock on `path` + ".lock" (removed when released). kUnavailable ("another
// lapce-ai server (pid N) is serving <path>") when a live server holds it.
Result<LockFile> LockServerPath(const std::string& path);

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
