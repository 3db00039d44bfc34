#include "workspace/process.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "workspace/internal/spawn.h"

namespace lai::workspace {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kPollInterval{50};     // Cancellation is seen this fast.
constexpr std::chrono::milliseconds kKillGrace{2000};      // SIGTERM, then SIGKILL after this.
constexpr std::chrono::milliseconds kDrainAfterExit{250};  // Output of background children
                                                           // holding the pipe is read this long
                                                           // after the shell exits.

// Each command and child leads a session of its own, so nothing reaches it when the engine dies:
// no hang-up, and PR_SET_PDEATHSIG would follow the thread that started it, not the process. A
// watcher does: /bin/sh reading one end of a socket pair, told "+GROUP" and "-GROUP" as process
// groups start and end. When the other end closes (the engine exits or is killed, even with
// SIGKILL), it sends SIGTERM to the groups still listed and SIGKILL to what is left 2 s later.
// The engine's end is close-on-exec: no command holds it open. (dash's kill takes a negative pid
// after `--` only with `-s`.)
constexpr char kWatcherScript[] = R"(g=' '
while read -r line; do
  case $line in
    +[0-9]*) g="$g${line#+} " ;;
    -[0-9]*) n=${line#-}; case $g in *" $n "*) g="${g%%" $n "*} ${g#*" $n "}" ;; esac ;;
  esac
done
set -- $g
[ $# -eq 0 ] && exit 0
for n; do kill -s TERM -- "-$n"; done 2>/dev/null
alive() { for n; do kill -s 0 -- "-$n" 2>/dev/null && return 0; done; return 1; }
i=0
while [ $i -lt 20 ] && alive "$@"; do sleep 0.1; i=$((i + 1)); done
for n; do kill -s KILL -- "-$n"; done 2>/dev/null
)";

// Whether anything of process group `group` still runs.
bool GroupLives(pid_t group) { return ::kill(-group, 0) == 0 || errno == EPERM; }

// The process groups of the commands running now (for SignalRunningCommands), and every group
// the watcher must end should the engine die: commands, children, and what a finished command
// left running in the background (a dev server started with `&`), which lives as long as the
// engine. Never destroyed: usable at exit, and its socket closes only with the process.
class RunningGroups {
 public:
  static RunningGroups& Get() {
    static RunningGroups* groups = new RunningGroups();
    return *groups;
  }
  // A process forked from this one (and not exec'd) is an engine of its own: it starts its own
  // watcher for its own commands, and must not tell ours, or inherit our list.
  RunningGroups() {
    ::pthread_atfork([] { Get().mutex_.lock(); }, [] { Get().mutex_.unlock(); },
                     [] {
                       RunningGroups& groups = Get();
                       groups.mutex_.unlock();
                       groups.socket_.Reset();
                       groups.watcher_ = -1;
                       groups.commands_.clear();
                       groups.lingering_.clear();
                       groups.watched_.clear();
                     });
  }
  // Spawns and lists the child in one step: a signal handled meanwhile waits for the listing,
  // so a command that has already started is never missed.
  Result<internal::SpawnedChild> SpawnListed(const internal::SpawnOptions& options,
                                             bool is_command) {
    std::lock_guard lock(mutex_);
    ForgetEndedLingering();
    // The watcher is running before the child is: started after it, it left the first command
    // unwatched for the millisecond its start takes.
    if (!socket_.is_valid()) StartWatcher();
    ASSIGN_OR_RETURN(internal::SpawnedChild child, internal::Spawn(options));
    if (is_command) commands_.push_back(child.pid);
    watched_.push_back(child.pid);
    // Told once it runs (its pid is known only now): an engine SIGKILLed in the microseconds
    // between leaves this one child unwatched.
    Tell('+', child.pid);
    return child;
  }
  // The command's shell was reaped (or a child is about to be). A group with nothing left in it
  // is unlisted; one still running stays with the watcher.
  void Remove(pid_t group) {
    std::lock_guard lock(mutex_);
    // Each ending command also unlists lingering groups that have ended, so that the watcher's
    // list holds no id the system may give to someone else's process group meanwhile.
    ForgetEndedLingering();
    if (Erase(commands_, group) && GroupLives(group)) {
      lingering_.push_back(group);
      return;
    }
    Unwatch(group);
  }
  size_t Signal(int signal) {
    std::lock_guard lock(mutex_);
    for (pid_t group : commands_) ::kill(-group, signal);
    return commands_.size();
  }
  // Whether a watcher runs now (an empty line, which it ignores, reaches it).
  bool IsWatched() {
    std::lock_guard lock(mutex_);
    return socket_.is_valid() && ::send(socket_.get(), "\n", 1, MSG_NOSIGNAL) == 1;
  }

 private:
  static bool Erase(std::vector<pid_t>& groups, pid_t group) {
    auto it = std::find(groups.begin(), groups.end(), group);
    if (it == groups.end()) return false;
    groups.erase(it);
    return true;
  }
  void Unwatch(pid_t group) {
    Erase(watched_, group);
    Tell('-', group);
  }
  // Lingering groups that have ended since are unlisted before their ids can be reused.
  void ForgetEndedLingering() {
    for (size_t i = lingering_.size(); i-- > 0;) {
      if (GroupLives(lingering_[i])) continue;
      Unwatch(lingering_[i]);
      lingering_.erase(lingering_.begin() + static_cast<ptrdiff_t>(i));
    }
  }

  // Tells the watcher; when there is none, or it died (someone killed it), starts one and tells
  // it every group listed. Best effort: a command runs even when no watcher can be started.
  void Tell(char sign, pid_t group) {
    if (socket_.is_valid() && Send(sign, group)) return;
    if (socket_.is_valid()) {
      socket_.Reset();
      ::waitpid(watcher_, nullptr, WNOHANG);
      watcher_ = -1;
    }
    if (!watched_.empty()) StartWatcher();
  }
  bool Send(char sign, pid_t group) {
    char line[24];
    int n = std::snprintf(line, sizeof(line), "%c%d\n", sign, static_cast<int>(group));
    return ::send(socket_.get(), line, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
  }
  // Starts a watcher unless one runs, and tells it every group listed. Best effort: without one,
  // commands still run, and only the engine's own stopping ends them.
  void StartWatcher() {
    if (socket_.is_valid()) return;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
    UniqueFd ours(pair[0]);
    UniqueFd theirs(pair[1]);
    internal::SpawnOptions spawn;
    spawn.argv = {"/bin/sh", "-c", kWatcherScript};
    spawn.is_new_session = true;  // Out of the terminal's process group: Ctrl-C spares it.
    spawn.stdin_fd = theirs.get();
    spawn.discards_output = true;
    // Nothing of the engine's environment: it holds the provider keys, and the watcher runs as
    // the user, so any command could read them in /proc/<watcher>/environ.
    spawn.clears_env = true;
    spawn.extra_env = {"PATH=/usr/bin:/bin"};
    Result<internal::SpawnedChild> watcher = internal::Spawn(spawn);
    if (!watcher.ok()) return;
    watcher_ = watcher->pid;
    socket_ = std::move(ours);
    for (pid_t listed : watched_) Send('+', listed);
  }

  std::mutex mutex_;
  std::vector<pid_t> commands_;   // Running commands.
  std::vector<pid_t> lingering_;  // Finished commands whose groups still run.
  std::vector<pid_t> watched_;    // All the watcher knows of: the above and children.
  UniqueFd socket_;               // Ours; the watcher's stdin is the other end.
  pid_t watcher_ = -1;
};

// Reads `fd` (non-blocking) to its end on a thread of its own, dropping what it reads.
void DrainInBackground(UniqueFd fd) {
  std::thread([fd = std::move(fd)] {
    std::array<char, 4096> buffer;
    for (;;) {
      pollfd ready{fd.get(), POLLIN, 0};
      if (::poll(&ready, 1, -1) < 0 && errno != EINTR) return;
      ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
      if (count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN)) return;
    }
  }).detach();
}

std::string ShellPath() {
  const char* shell = std::getenv("SHELL");
  if (shell != nullptr && shell[0] == '/' && ::access(shell, X_OK) == 0) return shell;
  return "/bin/sh";
}

}  // namespace

size_t SignalRunningCommands(int signal) { return RunningGroups::Get().Signal(signal); }

std::string FindOnPath(std::string_view program, std::string_view path) {
  for (size_t at = 0; at <= path.size();) {
    const size_t end = std::min(path.find(':', at), path.size());
    std::string dir(path.substr(at, end - at));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + std::string(program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  return {};
}

bool CommandsAreWatched() { return RunningGroups::Get().IsWatched(); }

Result<CommandOutcome> RunCommand(std::string_view command, const CommandOptions& options) {
  struct stat info;
  if (options.cwd.empty() || ::stat(options.cwd.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Error(ErrorCode::kNotFound,
                 "execute_command: working directory '" + options.cwd + "' does not exist");
  }
  internal::SpawnOptions spawn;
  spawn.argv = {ShellPath(), "-c", std::string(command)};
  spawn.cwd = options.cwd;
  spawn.removed_env = options.hidden_env;
  // Nobody can answer an editor, a pager or a password prompt: they give way at once. `cd -`
  // has nowhere to go back to (this process's OLDPWD would be outside the checks).
  spawn.extra_env = {
      "PAGER=cat",   "GIT_PAGER=cat", "GIT_EDITOR=true",      "GIT_SEQUENCE_EDITOR=true",
      "EDITOR=true", "VISUAL=true",   "GIT_TERMINAL_PROMPT=0"};
  spawn.removed_env.push_back("OLDPWD");
  spawn.removed_env.push_back("CDPATH");  // `cd sub` goes where the checks follow it.
  // git uses a bare repository only when named (--git-dir, which is asked about): one a model
  // wrote into the workspace, with a config that runs commands (core.fsmonitor), is not found by
  // a `git status` run inside it. (Unless the user's environment passes git configuration.)
  if (std::getenv("GIT_CONFIG_COUNT") == nullptr) {
    spawn.extra_env.insert(spawn.extra_env.end(),
                           {"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.bareRepository",
                            "GIT_CONFIG_VALUE_0=explicit"});
  }
  spawn.is_new_session = true;
  spawn.merges_stderr = true;
  // Listed until RunCommand returns (and after, while what the shell left in its group runs):
  // the group id cannot be reused while anything of it is alive.
  ASSIGN_OR_RETURN(internal::SpawnedChild child,
                   RunningGroups::Get().SpawnListed(spawn, /*is_command=*/true));
  const pid_t pid = child.pid;  // Also the process group id (setsid).
  struct Unlist {
    pid_t pid;
    ~Unlist() { RunningGroups::Get().Remove(pid); }
  } unlist{pid};

  CommandOutcome outcome;
  // Output beyond the first half of keep_bytes goes to `tail`, trimmed from its front to the
  // other half as it grows (amortised: when it doubles); what is trimmed is counted, not kept.
  const size_t half = std::max<size_t>(options.keep_bytes / 2, 1);
  std::string tail;
  auto trim_tail = [&] {
    if (tail.size() <= half) return;
    size_t drop = tail.size() - half;
    outcome.dropped_bytes += drop;
    outcome.dropped_lines += static_cast<uint64_t>(
        std::count(tail.begin(), tail.begin() + static_cast<ptrdiff_t>(drop), '\n'));
    tail.erase(0, drop);
  };
  auto keep = [&](std::string_view chunk) {
    if (outcome.output.size() < half) {
      size_t taken = std::min(chunk.size(), half - outcome.output.size());
      outcome.output.append(chunk.substr(0, taken));
      chunk.remove_prefix(taken);
    }
    tail.append(chunk);
    if (tail.size() >= 2 * half) trim_tail();
  };
  const Clock::time_point start = Clock::now();
  std::optional<Clock::time_point> term_sent_at;  // SIGTERM sent to the group.
  bool kill_sent = false;
  std::optional<Clock::time_point> exited_at;  // The shell itself has exited.
  int status = 0;
  std::array<char, 65536> buffer;

  auto signal_group = [&](int signal) { ::kill(-pid, signal); };
  // A pidfd turns the child's exit into a poll event; without one the loop ticks every 50 ms.
  UniqueFd pid_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  while (child.stdout_fd.is_valid() || !exited_at) {
    const Clock::time_point now = Clock::now();
    if (!term_sent_at) {
      if (options.timeout.count() > 0 && now - start >= options.timeout) {
        outcome.timed_out = true;
      } else if (options.cancelled != nullptr &&
                 options.cancelled->load(std::memory_order_relaxed)) {
        outcome.cancelled = true;
      }
      if (outcome.timed_out || outcome.cancelled) {
        signal_group(SIGTERM);
        term_sent_at = now;
      }
    } else if (!kill_sent && now - *term_sent_at >= kKillGrace) {
      signal_group(SIGKILL);
      kill_sent = true;
    }
    if (exited_at && child.stdout_fd.is_valid() && now - *exited_at >= kDrainAfterExit) {
      if (term_sent_at) {  // Timed out or cancelled: what the shell left goes with it.
        signal_group(SIGKILL);
        child.stdout_fd.Reset();
        break;
      }
      // The shell is gone, but something it started in the background still holds the pipe (a
      // dev server started with `&`): it runs on, as in a terminal, until the engine ends (the
      // watcher). Its later output is read and dropped, so that its writes never block.
      outcome.left_running = true;
      DrainInBackground(std::move(child.stdout_fd));
      break;
    }

    // Wait for output, the shell's exit (pidfd) or the next 50 ms tick.
    std::array<pollfd, 2> fds = {pollfd{child.stdout_fd.get(), POLLIN, 0},
                                 pollfd{exited_at ? -1 : pid_fd.get(), POLLIN, 0}};
    if (!child.stdout_fd.is_valid() && !pid_fd.is_valid()) {
      fds[0].fd = -1;  // No pidfd (old kernel): plain 50 ms steps until the shell exits.
    }
    int ready = ::poll(fds.data(), fds.size(), static_cast<int>(kPollInterval.count()));
    if (ready > 0 && fds[0].revents != 0) {
      ssize_t count = ::read(child.stdout_fd.get(), buffer.data(), buffer.size());
      if (count > 0) {
        std::string_view chunk(buffer.data(), static_cast<size_t>(count));
        keep(chunk);
        if (options.on_output) options.on_output(chunk);
      } else if (count == 0 || (errno != EINTR && errno != EAGAIN)) {
        child.stdout_fd.Reset();  // EOF: every writer closed the pipe.
      }
    }
    if (!exited_at) {
      pid_t reaped = ::waitpid(pid, &status, WNOHANG);
      if (reaped == pid) {
        exited_at = Clock::now();
      } else if (reaped < 0 && errno != EINTR) {
        // Someone else reaped our child (a SIGCHLD handler set to SIG_IGN): nothing to wait for.
        exited_at = Clock::now();
        status = -1;  // Neither exited nor signalled: exit_code stays -1, signal 0.
      }
    }
  }

  if (WIFEXITED(status)) {
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
  trim_tail();
  outcome.output += tail;
  return outcome;
}

Result<std::unique_ptr<Child>> Child::Start(const ChildOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Error(ErrorCode::kInvalidArgument, "start a child process: no program given");
  }
  internal::SpawnOptions spawn;
  spawn.argv = options.argv;
  spawn.cwd = options.cwd;
  spawn.is_new_session = true;
  spawn.pipes_stdin = true;
  spawn.extra_env = options.env;
  spawn.clears_env = true;
  ASSIGN_OR_RETURN(internal::SpawnedChild spawned,
                   RunningGroups::Get().SpawnListed(spawn, /*is_command=*/false));
  auto child = std::unique_ptr<Child>(new Child());
  child->pid_ = spawned.pid;
  child->stdin_fd_ = spawned.stdin_fd.Release();
  child->stdout_fd_ = spawned.stdout_fd.Release();
  child->stderr_fd_ = spawned.stderr_fd.Release();
  return child;
}

Child::~Child() {
  Stop(std::chrono::milliseconds(0));
  for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void Child::CloseStdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void Child::Stop(std::chrono::milliseconds grace) {
  CloseStdin();
  if (pid_ <= 0 || is_reaped_) return;
  RunningGroups::Get().Remove(pid_);  // Before reaping: the group id is not reused meanwhile.
  auto wait_for_exit = [this](std::chrono::milliseconds limit) {
    const Clock::time_point deadline = Clock::now() + limit;
    for (;;) {
      pid_t reaped = ::waitpid(pid_, nullptr, WNOHANG);
      if (reaped == pid_ || (reaped < 0 && errno != EINTR)) return true;
      if (Clock::now() >= deadline) return false;
      ::usleep(5000);
    }
  };
  if (!wait_for_exit(grace)) {
    ::kill(-pid_, SIGTERM);
    if (!wait_for_exit(kKillGrace)) {
      ::kill(-pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  ::kill(-pid_, SIGTERM);  // What the leader started and left behind (ESRCH when nothing).
  is_reaped_ = true;
}

}  // namespace lai::workspace
