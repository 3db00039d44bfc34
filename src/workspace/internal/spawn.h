// Starting child processes with posix_spawn: pipes, working directory, own session. Used by
// search.cc (ripgrep) and process.cc (shell commands). Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::workspace::internal {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'.
  std::string cwd;                // Empty: inherit.
  bool is_new_session = false;    // setsid(): the child leads its own process group.
  bool merges_stderr = false;     // stderr into the stdout pipe, else a separate pipe.
  bool pipes_stdin = false;       // A pipe to the child's stdin, else /dev/null.
  int stdin_fd = -1;              // When not piped: this descriptor is the child's stdin.
  bool discards_output = false;   // stdout and stderr to /dev/null: no pipes are made.
  // Added to (or replacing in) this process's environment: "NAME=value".
  std::vector<std::string> extra_env;
  bool clears_env = false;  // The child's environment is extra_env alone.
  std::vector<std::string> removed_env;  // Names left out of this process's environment.
};

struct SpawnedChild {
  pid_t pid = -1;
  UniqueFd stdout_fd;  // Non-blocking read ends; invalid when discards_output.
  UniqueFd stderr_fd;  // Invalid when merges_stderr.
  UniqueFd stdin_fd;   // Blocking write end; valid when pipes_stdin.
};

// stdin is /dev/null unless piped; the child inherits no other descriptor (even one opened
// without close-on-exec); signal mask and dispositions are reset in it. Errors:
// kNotFound (the program or cwd does not exist), kIo.
Result<SpawnedChild> Spawn(const SpawnOptions& options);

}  // namespace lai::workspace::internal
