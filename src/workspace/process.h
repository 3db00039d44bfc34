// Running a shell command for execute_command: the user's shell, its own process group, output
// streamed as it arrives, a timeout and cancellation that kill the whole group, no zombies.
// Thread-safe (each call owns its child).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace lai::workspace {

struct CommandOptions {
  std::string cwd;                          // Absolute.
  std::chrono::milliseconds timeout{0};     // 0 = none.
  const std::atomic<bool>* cancelled = nullptr;
  // stdout and stderr merged, in arrival order; called on the calling thread.
  std::function<void(std::string_view chunk)> on_output;
};

struct CommandOutcome {
  int exit_code = -1;     // -1 when killed by a signal.
  int signal = 0;         // The signal that ended it, 0 if it exited.
  bool timed_out = false;
  bool cancelled = false;
  std::string output;     // Everything on_output saw.
};

// Runs `command` with $SHELL -c (falling back to /bin/sh), stdin from /dev/null. On timeout or
// cancellation sends SIGTERM to the process group, then SIGKILL after a grace period; always
// reaps. Errors only when the command could not be started (kNotFound cwd, kIo).
Result<CommandOutcome> RunCommand(std::string_view command, const CommandOptions& options);

}  // namespace lai::workspace
