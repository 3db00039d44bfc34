#include "run_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

namespace lai::test {

std::vector<char*> ExecStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

ProcessResult RunProcess(std::vector<std::string> argv, std::vector<std::string> env,
                         const ProcessOptions& options) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  EXPECT_EQ(::pipe2(in_pipe, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
  std::vector<char*> c_argv = ExecStrings(argv);
  std::vector<char*> c_env = ExecStrings(env);
  pid_t pid = ::fork();
  if (pid == 0) {
    // No controlling terminal: the engine must not ask a developer's terminal (/dev/tty).
    ::setsid();
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(options.merge_stderr ? out_pipe[1] : err_pipe[1], 2);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (!options.input.empty()) {
    ssize_t n = ::write(in_pipe[1], options.input.data(), options.input.size());
    (void)n;
  }
  ::close(in_pipe[1]);

  ProcessResult result;
  auto deadline = std::chrono::steady_clock::now() + options.deadline;
  bool out_open = true, err_open = true, signalled = false;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      ADD_FAILURE() << argv[0] << " did not finish within " << options.deadline.count() << " s";
      break;
    }
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
    char buffer[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<size_t>(n));
      }
    }
    if (options.signal_after_first_output != 0 && !signalled && !result.out.empty()) {
      ::kill(pid, options.signal_after_first_output);
      signalled = true;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

ServerProcess::ServerProcess(std::vector<std::string> argv, std::vector<std::string> env,
                             std::string log_path, std::chrono::milliseconds ready_timeout)
    : log_path_(std::move(log_path)) {
  int ready[2];
  if (::pipe(ready) != 0) {
    ADD_FAILURE() << "pipe: " << errno;
    return;
  }
  argv.push_back("--ready-fd");
  argv.push_back("3");
  std::vector<char*> c_argv = ExecStrings(argv);
  std::vector<char*> c_env = ExecStrings(env);
  pid_ = ::fork();
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(log, 2);
    ::dup2(ready[1], 3);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::close(ready[1]);
  pollfd p = {ready[0], POLLIN, 0};
  char line[16] = {};
  is_ready_ = ::poll(&p, 1, static_cast<int>(ready_timeout.count())) == 1 &&
              ::read(ready[0], line, sizeof(line)) > 0;
  ::close(ready[0]);
}

std::string ServerProcess::log() const {
  std::ifstream file(log_path_);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

}  // namespace lai::test
