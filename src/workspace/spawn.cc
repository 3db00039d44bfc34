#include "workspace/internal/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

extern char** environ;

namespace lai::workspace::internal {

Result<SpawnedChild> Spawn(const SpawnOptions& options) {
  UniqueFd out_read;
  UniqueFd out_write;
  if (!options.discards_output) {
    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("create pipe", errno);
    out_read.Reset(out_pipe[0]);
    out_write.Reset(out_pipe[1]);
  }
  UniqueFd err_read;
  UniqueFd err_write;
  if (!options.merges_stderr && !options.discards_output) {
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("create pipe", errno);
    err_read.Reset(err_pipe[0]);
    err_write.Reset(err_pipe[1]);
  }

  UniqueFd in_read;
  UniqueFd in_write;
  if (options.pipes_stdin) {
    int in_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoError("create pipe", errno);
    in_read.Reset(in_pipe[0]);
    in_write.Reset(in_pipe[1]);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.pipes_stdin || options.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions,
                                     options.pipes_stdin ? in_read.get() : options.stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (options.discards_output) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
    posix_spawn_file_actions_adddup2(&actions,
                                     options.merges_stderr ? out_write.get() : err_write.get(), 2);
  }
  // Nothing else of the engine's: a descriptor a library opened without close-on-exec (libcurl's
  // provider connections and its wake-up pair) would let the child read or write it.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t default_signals;
  sigfillset(&default_signals);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.is_new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attributes, flags);
  posix_spawnattr_setsigmask(&attributes, &empty_mask);
  posix_spawnattr_setsigdefault(&attributes, &default_signals);

  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  char** env = environ;
  std::vector<std::string> merged;
  std::vector<char*> env_pointers;
  if (!options.extra_env.empty() || options.clears_env || !options.removed_env.empty()) {
    for (char** entry = environ; !options.clears_env && *entry != nullptr; ++entry) {
      std::string_view text(*entry);
      std::string_view name = text.substr(0, text.find('='));
      bool replaced = false;
      for (const std::string& extra : options.extra_env) {
        replaced = replaced || std::string_view(extra).substr(0, extra.find('=')) == name;
      }
      for (const std::string& removed : options.removed_env) replaced = replaced || removed == name;
      if (!replaced) merged.emplace_back(text);
    }
    merged.insert(merged.end(), options.extra_env.begin(), options.extra_env.end());
    for (std::string& entry : merged) env_pointers.push_back(entry.data());
    env_pointers.push_back(nullptr);
    env = env_pointers.data();
  }
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (err != 0) {
    if (err == ENOENT) {
      // Either may be missing (spawn does not say which): the directory is looked at.
      struct stat cwd_info;
      if (options.cwd.empty() ||
          (::stat(options.cwd.c_str(), &cwd_info) == 0 && S_ISDIR(cwd_info.st_mode))) {
        return Error(ErrorCode::kNotFound, "start '" + options.argv[0] + "': program not found");
      }
      return Error(ErrorCode::kNotFound, "start '" + options.argv[0] + "': working directory '" +
                                             options.cwd + "' not found");
    }
    return ErrnoError("start '" + options.argv[0] + "'", err);
  }

  SpawnedChild child;
  child.pid = pid;
  child.stdin_fd = std::move(in_write);
  if (out_read.is_valid()) {
    ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
    child.stdout_fd = std::move(out_read);
  }
  if (err_read.is_valid()) {
    ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
    child.stderr_fd = std::move(err_read);
  }
  return child;
}

}  // namespace lai::workspace::internal
