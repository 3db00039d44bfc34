// A `lapce-ai serve` child process for benchmarks and stress runs: started from this very
// executable, so the numbers come from the real server. Thread-compatible.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"

namespace lai::cli {

class ServerProcess {
 public:
  // Starts `<this executable> serve --socket PATH --metrics-addr '' ARGS...` and waits (up to
  // `timeout`) for its ready line. `ready_ns` is when the line was read (NowNs clock).
  static Result<ServerProcess> Start(const std::string& socket_path,
                                     const std::vector<std::string>& args = {},
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ServerProcess() = default;
  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&& other) noexcept;
  ~ServerProcess();  // SIGKILLs a server still running.

  // Sends `signal` and reaps the process; returns its wait status.
  int Stop(int signal);
  pid_t pid() const { return pid_; }
  uint64_t ready_ns() const { return ready_ns_; }
  // Resident memory (VmRSS), its high-water mark (VmHWM) and open descriptors of the server,
  // from /proc. Zero when the process is gone.
  uint64_t RssBytes() const;
  uint64_t PeakRssBytes() const;
  size_t OpenFds() const;
  // True while the process exists and is not a zombie (it may still have crashed if reaped).
  bool is_running() const;

 private:
  pid_t pid_ = -1;
  uint64_t ready_ns_ = 0;
};

// A private temporary directory (0700) for sockets, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lai::cli
