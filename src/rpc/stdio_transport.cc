#include "rpc/stdio_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "base/check.h"

namespace lai::rpc {
namespace {

constexpr size_t kReadChunkBytes = 64 * 1024;

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// Blocks SIGPIPE on this thread for its lifetime, so a write to a closed pipe fails with EPIPE
// instead of killing the process; a SIGPIPE raised meanwhile is consumed before unblocking.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_set_);
  }
  ~ScopedSigpipeBlock() {
    if (raised_ && !was_pending_) {
      struct timespec zero = {};
      while (sigtimedwait(&pipe_set_, nullptr, &zero) == -1 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_set_, nullptr);
  }
  void NoteEpipe() { raised_ = true; }

 private:
  sigset_t pipe_set_;
  sigset_t old_set_;
  bool was_pending_ = false;
  bool raised_ = false;
};

}  // namespace

namespace {

// True when the process ignores SIGPIPE (servers usually do): a write to a closed pipe then just
// fails with EPIPE, and Send needs no signal-mask calls around it.
bool SigpipeIgnored() {
  struct sigaction action = {};
  return ::sigaction(SIGPIPE, nullptr, &action) == 0 && action.sa_handler == SIG_IGN;
}

}  // namespace

StdioTransport::StdioTransport(int in_fd, int out_fd, StdioOptions options)
    : in_fd_(in_fd), out_fd_(out_fd), options_(options), sigpipe_ignored_(SigpipeIgnored()) {}

StdioTransport::~StdioTransport() { Stop(); }

Status StdioTransport::Send(std::string_view message) {
  if (std::memchr(message.data(), '\n', message.size()) != nullptr) {
    return Error(ErrorCode::kInvalidArgument,
                 "stdio message contains a raw newline; serialise JSON compactly");
  }
  std::lock_guard lock(write_mutex_);
  if (is_out_closed_)
    return Error(ErrorCode::kUnavailable, "stdio output closed: the reader has gone");
  std::optional<ScopedSigpipeBlock> block_sigpipe;
  if (!sigpipe_ignored_) block_sigpipe.emplace();
  char newline = '\n';
  iovec parts[2] = {{const_cast<char*>(message.data()), message.size()}, {&newline, 1}};
  iovec* next = parts;
  int count = 2;
  while (count > 0) {
    ssize_t written = ::writev(out_fd_, next, count);
    if (written < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        pollfd out = {out_fd_, POLLOUT, 0};
        (void)::poll(&out, 1, -1);
        continue;
      }
      if (err == EPIPE) {
        if (block_sigpipe) block_sigpipe->NoteEpipe();
        is_out_closed_ = true;
        return Error(ErrorCode::kUnavailable, "stdio output closed: the reader has gone");
      }
      return ErrnoError("write stdio message", err);
    }
    size_t left = static_cast<size_t>(written);
    while (count > 0 && left >= next->iov_len) {
      left -= next->iov_len;
      ++next;
      --count;
    }
    if (count > 0) {
      next->iov_base = static_cast<char*>(next->iov_base) + left;
      next->iov_len -= left;
    }
  }
  return OkStatus();
}

Status StdioTransport::Start(Peer& peer) {
  LAI_CHECK(!reader_.joinable()) << "StdioTransport::Start called twice";
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError("stdio transport: pipe2", errno);
  wake_read_.Reset(fds[0]);
  wake_write_.Reset(fds[1]);
  reader_ = std::thread([this, &peer] { ReadLoop(peer); });
  return OkStatus();
}

void StdioTransport::Stop() {
  if (!reader_.joinable()) return;
  LAI_CHECK(reader_.get_id() != std::this_thread::get_id()) << "StdioTransport::Stop on its reader";
  char byte = 1;
  while (::write(wake_write_.get(), &byte, 1) < 0 && errno == EINTR) {
  }
  reader_.join();
}

void StdioTransport::Deliver(Peer& peer, std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (IsBlank(line)) return;
  peer.OnMessage(line);
}

void StdioTransport::ReadLoop(Peer& peer) {
  std::vector<char> chunk(kReadChunkBytes);
  std::string line;  // The start of a line that continues in a later chunk.
  bool is_skipping = false;
  size_t skipped_bytes = 0;
  std::string skipped_start;  // The first bytes of the line being skipped.
  for (;;) {
    pollfd fds[2] = {{in_fd_, POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    int ready = ::poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      spdlog::error("stdio transport: poll: {}", std::strerror(errno));
      break;
    }
    if (fds[1].revents != 0) return;  // Stop(): leave the peer open.
    ssize_t got = ::read(in_fd_, chunk.data(), chunk.size());
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      spdlog::error("stdio transport: read: {}", std::strerror(errno));
      break;
    }
    if (got == 0) {
      if (!is_skipping && !line.empty()) Deliver(peer, line);  // A last line without newline.
      break;
    }
    std::string_view data(chunk.data(), static_cast<size_t>(got));
    while (!data.empty()) {
      size_t newline = data.find('\n');
      std::string_view piece = data.substr(0, newline);
      if (!is_skipping && line.size() + piece.size() > options_.max_line_bytes) {
        is_skipping = true;
        skipped_bytes = line.size();
        // The start is kept: the answer goes to the message's id when it shows one.
        constexpr size_t kKeptBytes = 4096;
        line.resize(std::min(line.size(), kKeptBytes));
        line.append(piece.substr(0, kKeptBytes - line.size()));
        skipped_start = line;
        std::string().swap(line);
      }
      if (is_skipping) {
        skipped_bytes += piece.size();
      } else if (newline != std::string_view::npos && line.empty()) {
        Deliver(peer, piece);  // The whole line is in this chunk: no copy.
      } else {
        line.append(piece);
      }
      if (newline == std::string_view::npos) break;
      data.remove_prefix(newline + 1);
      if (is_skipping) {
        is_skipping = false;
        skipped_lines_.fetch_add(1, std::memory_order_relaxed);
        peer.RejectMessage("a line of " + std::to_string(skipped_bytes) +
                               " bytes exceeds the limit of " +
                               std::to_string(options_.max_line_bytes) +
                               " bytes; it was skipped. Send smaller messages",
                           skipped_start);
      } else if (!line.empty()) {
        Deliver(peer, line);
        line.clear();
      }
    }
  }
  peer.EndOfInput();
}

}  // namespace lai::rpc
