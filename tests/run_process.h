// Runs a program to completion for the end-to-end tests: fork+exec with exactly the given
// environment, stdin fed from a string, stdout and stderr collected, a bounded deadline.
// Thread-compatible.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace lai::test {

struct ProcessResult {
  int exit_code = -1;  // -1: killed at the deadline or by a signal.
  std::string out;     // Also holds stderr when ProcessOptions::merge_stderr.
  std::string err;
};

struct ProcessOptions {
  std::string input;                  // Written to stdin, which is then closed.
  std::chrono::seconds deadline{20};  // SIGKILL and a test failure after this.
  bool merge_stderr = false;          // stderr goes to `out`.
  int signal_after_first_output = 0;  // Sent once when the first stdout bytes arrive.
};

// execve's view of `strings`: their characters, then a null pointer. `strings` must outlive it.
std::vector<char*> ExecStrings(std::vector<std::string>& strings);

// argv[0] is the program's path. Test failures (ADD_FAILURE) when a pipe cannot be made or the
// deadline passes.
ProcessResult RunProcess(std::vector<std::string> argv, std::vector<std::string> env,
                         const ProcessOptions& options = {});

// A long-running server (`lapce-ai serve --ready-fd 3`): started with exactly `env`, its stderr
// in `log_path`, ready once it writes a line to fd 3 (within `ready_timeout`). SIGTERMed and
// reaped by Stop() or on destruction.
class ServerProcess {
 public:
  // argv[0] is the program's path; "--ready-fd 3" is appended.
  ServerProcess(std::vector<std::string> argv, std::vector<std::string> env, std::string log_path,
                std::chrono::milliseconds ready_timeout);
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool is_ready() const { return is_ready_; }
  std::string log() const;  // What it wrote to stderr so far.
  // SIGTERM, then the waitpid status (-1 when it was never started or already stopped).
  int Stop();

 private:
  std::string log_path_;
  int pid_ = -1;
  bool is_ready_ = false;
};

}  // namespace lai::test
