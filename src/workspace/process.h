// Running a shell command for execute_command: the user's shell, its own process group, output
// streamed as it arrives, a timeout and cancellation that kill the whole group, no zombies.
// Thread-safe (each call owns its child).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::workspace {

struct CommandOptions {
  std::string cwd;                       // Absolute.
  std::chrono::milliseconds timeout{0};  // 0 = none.
  const std::atomic<bool>* cancelled = nullptr;
  // stdout and stderr merged, in arrival order; called on the calling thread.
  std::function<void(std::string_view chunk)> on_output;
  // The output kept in CommandOutcome::output: its first and last halves of this many bytes
  // (a command printing without end must not fill memory). on_output sees everything.
  size_t keep_bytes = 2 << 20;
  // Variables of this process's environment the command does not inherit (the provider keys').
  std::vector<std::string> hidden_env;
};

struct CommandOutcome {
  int exit_code = -1;  // -1 when killed by a signal.
  int signal = 0;      // The signal that ended it, 0 if it exited.
  bool timed_out = false;
  bool cancelled = false;
  // Something the command started in the background still runs, holding its output (which is
  // no longer read into `output`); it ends with the engine.
  bool left_running = false;
  std::string output;  // What on_output saw, or its start and end (see keep_bytes).
  // The middle of the output that was not kept, between the two halves in `output`.
  uint64_t dropped_bytes = 0;
  uint64_t dropped_lines = 0;  // Newlines in it.
  // Set by runners that do not own the process (an editor's terminal, ACP terminal/*): why how
  // it ended, or its output, could not be learnt. The command did run.
  std::string exit_unknown;
  std::string output_unknown;
};

// Runs `command` with $SHELL -c (falling back to /bin/sh), stdin from /dev/null. On timeout or
// cancellation sends SIGTERM to the process group, then SIGKILL after a grace period; always
// reaps. Returns 250 ms after the shell exits even when something it started in the background
// still holds its output (left_running). Errors only when the command could not be started
// (kNotFound cwd, kIo).
Result<CommandOutcome> RunCommand(std::string_view command, const CommandOptions& options);

// Sends `signal` to the process group of every command RunCommand is running now. For a front end
// about to exit without unwinding (a second Ctrl-C, SIGTERM, a closed terminal): each command
// runs in a session of its own, so nothing else would stop it. Returns how many groups were
// signalled. Thread-safe.
size_t SignalRunningCommands(int signal);

// The executable `program` in the first directory of `path` (a PATH value, ':'-separated; an
// empty entry is the current directory) that has it; "" when none does.
std::string FindOnPath(std::string_view program, std::string_view path);

// Whether the commands and children are watched now: should this process end without stopping
// them, a watcher process gives them SIGTERM and, 2 s later, SIGKILL. Thread-safe.
bool CommandsAreWatched();

// A long-running child speaking over pipes (an MCP server): stdin, stdout and stderr are pipes,
// and it leads its own process group. Stop() (and the destructor) closes its stdin, gives it
// `grace` to exit, then SIGTERMs and finally SIGKILLs the group, and reaps it. Thread-compatible.
struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'.
  std::vector<std::string> env;   // "NAME=value": the child's whole environment.
  std::string cwd;                // Empty: inherit.
};
class Child {
 public:
  // Errors: kNotFound (the program or cwd does not exist), kIo.
  static Result<std::unique_ptr<Child>> Start(const ChildOptions& options);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  int stdin_fd() const { return stdin_fd_; }    // Blocking.
  int stdout_fd() const { return stdout_fd_; }  // Non-blocking.
  int stderr_fd() const { return stderr_fd_; }  // Non-blocking.
  pid_t pid() const { return pid_; }
  void CloseStdin();  // End of input: most servers exit on it. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  Child() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  bool is_reaped_ = false;
};

}  // namespace lai::workspace
