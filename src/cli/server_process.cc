#include "cli/server_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "ipc/wait.h"

extern char** environ;

namespace lai::cli {

Result<ServerProcess> ServerProcess::Start(const std::string& socket_path,
                                           const std::vector<std::string>& args,
                                           std::chrono::milliseconds timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  std::vector<std::string> argv_storage = {"lapce-ai", "serve", "--socket", socket_path,
                                           "--metrics-addr", "", "--ready-fd", "3"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 3);  // dup2 clears FD_CLOEXEC.
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return ErrnoError("spawn lapce-ai serve", rc);
  }
  ServerProcess server;
  server.pid_ = pid;
  pollfd pfd{pipe_fds[0], POLLIN, 0};
  char line[16] = {};
  int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  ssize_t n = ready > 0 ? ::read(pipe_fds[0], line, sizeof(line) - 1) : 0;
  server.ready_ns_ = ipc::NowNs();
  ::close(pipe_fds[0]);
  if (n <= 0 || std::strncmp(line, "ready", 5) != 0) {
    return Error(ErrorCode::kUnavailable,
                 "lapce-ai serve on '" + socket_path + "' did not become ready");
  }
  return server;
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), ready_ns_(other.ready_ns_) {}

ServerProcess& ServerProcess::operator=(ServerProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) Stop(SIGKILL);
    pid_ = std::exchange(other.pid_, -1);
    ready_ns_ = other.ready_ns_;
  }
  return *this;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return 0;
  ::kill(pid_, signal);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

namespace {

// A "Key:   123 kB" line of /proc/<pid>/status, in bytes; 0 when absent.
uint64_t ProcStatusBytes(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string word;
  while (status >> word) {
    if (word == key) {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    std::getline(status, word);
  }
  return 0;
}

}  // namespace

uint64_t ServerProcess::RssBytes() const { return ProcStatusBytes(pid_, "VmRSS:"); }

uint64_t ServerProcess::PeakRssBytes() const { return ProcStatusBytes(pid_, "VmHWM:"); }

bool ServerProcess::is_running() const {
  if (pid_ <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  // "pid (comm) S ...": the state letter follows the last ')'.
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z' &&
         line[paren + 2] != 'X';
}

size_t ServerProcess::OpenFds() const {
  size_t count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++count;
  }
  return count;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && base[0] == '/' ? base : "/tmp") +
                        "/lapce-ai-bench-XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  path_ = made != nullptr ? made : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
}

}  // namespace lai::cli
