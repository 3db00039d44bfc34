#include "ipc_test_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "ipc/frame.h"
#include "ipc/socket.h"
#include "ipc/wait.h"

namespace lai::ipc_test {

TempDir::TempDir() {
  char name[] = "/tmp/lai-it-XXXXXX";
  const char* made = ::mkdtemp(name);
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

ChildProcess::~ChildProcess() {
  Kill();
  if (ready_fd_ >= 0) ::close(ready_fd_);
}

Status ChildProcess::Spawn(const std::vector<std::string>& argv, const std::string& home,
                           const std::string& log_path) {
  if (pid_ > 0) return Error(ErrorCode::kInternal, "child already running");
  if (ready_fd_ >= 0) ::close(ready_fd_);
  ready_fd_ = -1;
  ready_ns_ = 0;
  log_path_ = log_path;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings = {"HOME=" + home, "XDG_CONFIG_HOME=" + home,
                                          "XDG_RUNTIME_DIR=" + home, "PATH=/usr/bin:/bin"};
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> args_c;
  for (std::string& a : args) args_c.push_back(a.data());
  args_c.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      int err = errno;
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      return ErrnoError("open '" + log_path + "'", err);
    }
  }
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    if (log_fd >= 0) ::close(log_fd);
    return ErrnoError("fork", err);
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Undo what a test may have changed about signals.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (pipe_fds[1] == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(pipe_fds[1], 3) < 0) {
      ::_exit(126);
    }
    if (log_fd >= 0 && ::dup2(log_fd, 2) < 0) ::_exit(126);
    ::execve(args_c[0], args_c.data(), env.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  if (log_fd >= 0) ::close(log_fd);
  ready_fd_ = pipe_fds[0];
  pid_ = pid;
  return OkStatus();
}

Status ChildProcess::WaitReady(milliseconds timeout) {
  if (ready_fd_ < 0) return Error(ErrorCode::kInternal, "no child was spawned");
  uint64_t deadline = ipc::NowNs() + static_cast<uint64_t>(timeout.count()) * 1'000'000;
  std::string seen;
  for (;;) {
    uint64_t now = ipc::NowNs();
    if (now >= deadline) {
      return Error(ErrorCode::kTimeout, "child " + std::to_string(pid_) + " not ready within " +
                                            std::to_string(timeout.count()) + " ms; log:\n" +
                                            Log());
    }
    pollfd pfd{ready_fd_, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>((deadline - now + 999'999) / 1'000'000));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoError("poll ready fd", errno);
    if (rc == 0) continue;
    char buffer[64];
    ssize_t n = ::read(ready_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Error(ErrorCode::kUnavailable,
                   "child " + std::to_string(pid_) + " closed its ready fd; log:\n" + Log());
    }
    seen.append(buffer, static_cast<size_t>(n));
    if (seen.find("ready\n") != std::string::npos) {
      ready_ns_ = ipc::NowNs();
      return OkStatus();
    }
  }
}

void ChildProcess::Signal(int signal_number) {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

std::optional<int> ChildProcess::WaitExit(milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  std::optional<int> result;
  PollUntil(
      [&] {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno == ECHILD)) {
          result = status;
          return true;
        }
        return false;
      },
      timeout);
  if (result.has_value()) pid_ = -1;
  return result;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string ChildProcess::Log() const {
  if (log_path_.empty()) return "(not captured)";
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ServerProcess::ServerProcess(const TempDir& dir, std::string socket_path, std::string log_name)
    : home_(dir.path()), socket_path_(std::move(socket_path)), log_path_(dir.File(log_name)) {}

ServerProcess::~ServerProcess() {
  process_.Kill();
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- %s ----\n%s---- end ----\n", log_path_.c_str(),
                 process_.Log().c_str());
  }
}

Status ServerProcess::Spawn() {
  // LAI_IT_SERVER_WRAPPER="/usr/bin/valgrind -q" (an absolute path, then its arguments, split at
  // spaces) runs the server under a checker.
  std::vector<std::string> argv;
  if (const char* wrapper = std::getenv("LAI_IT_SERVER_WRAPPER"); wrapper != nullptr) {
    std::istringstream words(wrapper);
    for (std::string word; words >> word;) argv.push_back(word);
  }
  for (const char* arg : {LapceAiBinary(), "--log-level", "warn", "serve", "--socket"}) {
    argv.push_back(arg);
  }
  argv.insert(argv.end(), {socket_path_, "--metrics-addr", "", "--ready-fd", "3"});
  return process_.Spawn(argv, home_, log_path_);
}

Status ServerProcess::Start(milliseconds timeout) {
  RETURN_IF_ERROR(Spawn());
  return process_.WaitReady(timeout);
}

const char* LapceAiBinary() { return LAPCE_AI_BIN; }
const char* HelperBinary() { return LAI_IT_HELPER_BIN; }

size_t RaiseFileLimitForTest() { return ipc::RaiseFileLimit(); }

void FillPattern(std::span<std::byte> out, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t v = x + i;
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < out.size(); ++i) out[i] = static_cast<std::byte>((x >> (i % 8 * 8)) + i);
}

std::vector<std::byte> Pattern(size_t bytes, uint64_t seed) {
  std::vector<std::byte> out(bytes);
  FillPattern(out, seed);
  return out;
}

std::string_view AsText(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::optional<uint64_t> JsonNumber(std::string_view json, std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\":";
  size_t at = json.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  at += needle.size();
  while (at < json.size() && json[at] == ' ') ++at;
  if (at >= json.size() || json[at] < '0' || json[at] > '9') return std::nullopt;
  uint64_t value = 0;
  while (at < json.size() && json[at] >= '0' && json[at] <= '9') {
    value = value * 10 + static_cast<uint64_t>(json[at] - '0');
    ++at;
  }
  return value;
}

Result<Health> QueryHealth(ipc::Client& client, milliseconds timeout) {
  ASSIGN_OR_RETURN(ipc::Response r,
                   client.Call(static_cast<uint16_t>(ipc::MessageType::kHealth), {}, timeout));
  std::string_view text = AsText(r.payload);
  static const std::regex kShape(
      R"(\{"status":"ok","pid":\d+,"uptime_ms":\d+,"connections":\d+,"allocations":\d+,)"
      R"("max_rss_bytes":\d+\})");
  if (!std::regex_match(text.begin(), text.end(), kShape)) {
    return Error(ErrorCode::kProtocol,
                 "health reply is not the expected JSON: " + std::string(text));
  }
  std::optional<uint64_t> pid = JsonNumber(text, "pid");
  std::optional<uint64_t> connections = JsonNumber(text, "connections");
  std::optional<uint64_t> allocations = JsonNumber(text, "allocations");
  if (!pid || !connections || !allocations) {
    return Error(ErrorCode::kProtocol, "unexpected health reply: " + std::string(text));
  }
  return Health{*pid, *connections, *allocations};
}

Result<std::string> QueryMetrics(ipc::Client& client, milliseconds timeout) {
  ASSIGN_OR_RETURN(ipc::Response r,
                   client.Call(static_cast<uint16_t>(ipc::MessageType::kMetrics), {}, timeout));
  return std::string(AsText(r.payload));
}

std::optional<uint64_t> MetricSample(std::string_view text, std::string_view series) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      std::string value(line.substr(series.size() + 1));
      char* parse_end = nullptr;
      unsigned long long v = std::strtoull(value.c_str(), &parse_end, 10);
      if (parse_end == value.c_str()) return std::nullopt;
      return static_cast<uint64_t>(v);
    }
    at = end + 1;
  }
  return std::nullopt;
}

size_t OpenFdCount(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return 0;
  size_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

size_t VmRssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return static_cast<size_t>(std::strtoull(line.c_str() + 6, nullptr, 10)) * 1024;
    }
  }
  return 0;
}

ipc::ClientOptions DefaultClientOptions(const std::string& socket_path) {
  ipc::ClientOptions options;
  options.socket_path = socket_path;
  options.request_timeout = milliseconds(10'000);
  return options;
}

}  // namespace lai::ipc_test
