// StdioTransport: JSON-RPC messages as newline-delimited JSON over a pair of file descriptors
// (ACP's stdio transport: stdin/stdout). Thread-safe.
//
// In ACP mode stdout carries protocol messages only: nothing else may ever write to it. Logs go
// to stderr (log::Init never writes to stdout).
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string_view>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "rpc/peer.h"

namespace lai::rpc {

struct StdioOptions {
  // A longer line is answered with an "Invalid Request" error (id null) and skipped.
  size_t max_line_bytes = size_t{64} << 20;
};

// Reads lines from `in_fd` on its own thread and feeds them to a Peer; writes each message as one
// line to `out_fd`. CRLF line ends are accepted, blank lines skipped. End of input (or a read
// error) closes the peer, which runs its OnClose callback. The descriptors are borrowed (stdin
// and stdout are not ours to close) and must stay open until the transport is destroyed.
class StdioTransport : public Transport {
 public:
  StdioTransport(int in_fd, int out_fd, StdioOptions options = {});
  ~StdioTransport() override;  // Stop().
  StdioTransport(const StdioTransport&) = delete;
  StdioTransport& operator=(const StdioTransport&) = delete;

  // Writes `message` and a newline, retrying partial writes until the whole line is out.
  // kInvalidArgument if `message` contains a newline; kUnavailable once the reader of `out_fd`
  // has gone (EPIPE; SIGPIPE is blocked for the write, not raised); kIo for other write errors.
  Status Send(std::string_view message) override;

  // Starts the reader thread. `peer` must outlive the transport (or Stop() must run first).
  // Call once. kIo when the wake-up pipe cannot be made.
  Status Start(Peer& peer);
  // Stops and joins the reader thread (the peer is not closed). Idempotent; not from the reader.
  void Stop();

  // Over-long lines skipped so far (for tests).
  size_t skipped_lines() const { return skipped_lines_.load(std::memory_order_relaxed); }

 private:
  void ReadLoop(Peer& peer);
  // One complete line (without its newline).
  void Deliver(Peer& peer, std::string_view line);

  const int in_fd_;
  const int out_fd_;
  const StdioOptions options_;
  // SIGPIPE was ignored when this was made: Send skips blocking it (a signal-mask round trip).
  const bool sigpipe_ignored_;
  UniqueFd wake_read_;  // Stop() writes to wake_write_ to end the reader's poll.
  UniqueFd wake_write_;
  std::thread reader_;
  std::atomic<size_t> skipped_lines_{0};

  std::mutex write_mutex_;
  bool is_out_closed_ = false;  // Guarded by write_mutex_.
};

}  // namespace lai::rpc
