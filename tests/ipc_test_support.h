// Helpers for the cross-process IPC tests: a private temporary directory, child processes
// (`lapce-ai serve` and the test helper) started with fork+exec and killed on destruction, and
// small readers for health/metrics replies and /proc. Thread-compatible.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "ipc/client.h"

namespace lai::ipc_test {

using std::chrono::milliseconds;

// A fresh 0700 directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// A child process started with fork+exec. The child gets a pipe's write end as fd 3 (its "ready
// fd"), stderr redirected to `log_path` when given, a minimal environment whose HOME and XDG_*
// point into `home` (so no user configuration is read), and dies with the test (PDEATHSIG).
// The destructor SIGKILLs and reaps it if it is still running.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  Status Spawn(const std::vector<std::string>& argv, const std::string& home,
               const std::string& log_path);
  // Reads the ready fd until "ready\n". kTimeout after `timeout`; kUnavailable when the child
  // closed it first (it exited: the message includes its log).
  Status WaitReady(milliseconds timeout);
  // Monotonic time (ipc::NowNs) at which the ready line was read.
  uint64_t ready_ns() const { return ready_ns_; }

  void Signal(int signal_number);
  // Waits for the child to exit; its wait status, or nullopt at the deadline.
  std::optional<int> WaitExit(milliseconds timeout);
  // SIGKILL and reap. No-op when not running.
  void Kill();

  pid_t pid() const { return pid_; }
  bool is_running() const { return pid_ > 0; }
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int ready_fd_ = -1;
  std::string log_path_;
  uint64_t ready_ns_ = 0;
};

// `lapce-ai serve --socket <socket_path> --metrics-addr '' --ready-fd 3`. Set the environment
// variable LAI_IT_SERVER_WRAPPER (e.g. "/usr/bin/valgrind -q") to run it under a checker.
class ServerProcess {
 public:
  ServerProcess(const TempDir& dir, std::string socket_path, std::string log_name = "server.log");
  // Kills the server; when the current test failed, prints its log.
  ~ServerProcess();

  // Spawns and waits for the ready line.
  Status Start(milliseconds timeout = milliseconds(10'000));
  Status Spawn();
  ChildProcess& process() { return process_; }
  pid_t pid() const { return process_.pid(); }
  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string home_;
  std::string socket_path_;
  std::string log_path_;
  ChildProcess process_;
};

// Path of the lapce-ai binary and of the test helper (compile definitions).
const char* LapceAiBinary();
const char* HelperBinary();

// Environment limits the tests need: raises RLIMIT_NOFILE; the new soft limit.
size_t RaiseFileLimitForTest();

// Payload bytes that depend on (seed, index), so reordered or misplaced fragments show.
std::vector<std::byte> Pattern(size_t bytes, uint64_t seed);
void FillPattern(std::span<std::byte> out, uint64_t seed);

std::string_view AsText(std::span<const std::byte> bytes);

struct Health {
  uint64_t pid = 0;
  uint64_t connections = 0;
  uint64_t allocations = 0;
};
// Calls the health service (type 3) and parses the numbers the tests use.
Result<Health> QueryHealth(ipc::Client& client, milliseconds timeout = milliseconds(5'000));
// Calls the metrics service (type 4); the Prometheus text.
Result<std::string> QueryMetrics(ipc::Client& client, milliseconds timeout = milliseconds(5'000));
// The value of the sample named exactly `series` (e.g. `lapce_ai_ipc_requests_total{type="echo"}`).
std::optional<uint64_t> MetricSample(std::string_view text, std::string_view series);
// The unsigned number after `"key":` in a flat JSON object.
std::optional<uint64_t> JsonNumber(std::string_view json, std::string_view key);

// /proc readers for another process.
size_t OpenFdCount(pid_t pid);
size_t VmRssBytes(pid_t pid);

// Polls `done` (between short naps) until it returns true or `timeout` passes; its last answer.
template <typename F>
bool PollUntil(F&& done, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

ipc::ClientOptions DefaultClientOptions(const std::string& socket_path);

}  // namespace lai::ipc_test
