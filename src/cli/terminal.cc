#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "agent/session.h"
#include "workspace/process.h"

namespace lai::cli {
namespace {

sigset_t InterruptSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  return signals;
}

// Whether standard output is a pipe or socket, whose reader can go away (a terminal's hangup
// arrives as SIGHUP; a file's reader never leaves).
bool OutputIsPipe() {
  struct stat info {};
  return ::fstat(STDOUT_FILENO, &info) == 0 && (S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode));
}

// Whether this process is in the foreground of the terminal `fd` (a background job that touched
// it would be stopped by SIGTTIN or SIGTTOU).
bool IsForeground(int fd) { return ::tcgetpgrp(fd) == ::getpgrp(); }

}  // namespace

TerminalInput TerminalInput::Open() {
  TerminalInput input;
  if (::isatty(STDIN_FILENO) == 1) {
    input.fd_ = STDIN_FILENO;
  } else if (int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY); fd >= 0) {
    // Only a job in the foreground asks there: `run … </dev/null &` is not to be asked (it was
    // stopped, waiting for a terminal it does not own).
    input.owned_.Reset(fd);
    if (IsForeground(fd)) {
      input.fd_ = fd;
    } else {
      input.owned_.Reset();
    }
  }
  return input;
}

void TerminalInput::DiscardTypeAhead() const {
  if (fd_ >= 0 && IsForeground(fd_)) ::tcflush(fd_, TCIFLUSH);
}

std::optional<std::string> TerminalInput::ReadLine(const std::atomic<bool>* cancelled,
                                                   bool* at_end) const {
  if (at_end != nullptr) *at_end = false;
  if (fd_ < 0) return std::nullopt;
  std::string line;
  while (true) {
    if (cancelled != nullptr && cancelled->load()) return std::nullopt;
    // Waits a little at a time, so a cancel (Ctrl-C) ends the question without an Enter.
    pollfd ready = {fd_, POLLIN, 0};
    int n = ::poll(&ready, 1, 100);
    if (n < 0 && errno != EINTR) return std::nullopt;
    if (n <= 0) continue;
    char c = 0;
    ssize_t got = ::read(fd_, &c, 1);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {  // The end of input (Ctrl-D on an empty line), or the terminal is gone.
      if (!line.empty()) return line;
      if (at_end != nullptr) *at_end = true;
      return std::nullopt;
    }
    if (c == '\n') return line;
    line += c;
  }
}

std::string_view AnswerWord(std::string_view typed) {
  std::string word;
  for (char c : typed) {
    if (c != ' ' && c != '\t' && c != '\r')
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (word == "y" || word == "yes") return "y";
  if (word == "n" || word == "no") return "n";
  if (word == "a" || word == "always") return "a";
  return "";
}

void BlockInterrupts() {
  sigset_t signals = InterruptSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

InterruptHandler::InterruptHandler() {
  BlockInterrupts();
  ::signal(SIGPIPE, SIG_IGN);  // A write to a closed pipe fails instead; Loop() sees the pipe.
  sigset_t signals = InterruptSignals();
  signals_.Reset(::signalfd(-1, &signals, SFD_CLOEXEC));
  wake_.Reset(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] { Loop(); });
}

InterruptHandler::~InterruptHandler() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  (void)n;
  thread_.join();
}

void InterruptHandler::Watch(std::shared_ptr<agent::Session> session) {
  std::lock_guard lock(mutex_);
  session_ = std::move(session);
}

void InterruptHandler::BeforeExit(std::function<void()> hook) {
  std::lock_guard lock(mutex_);
  before_exit_ = std::move(hook);
}

void InterruptHandler::SetTurnRunning(bool running) {
  std::lock_guard lock(mutex_);
  is_turn_running_ = running;
  if (running) interrupts_ = 0;
}

void InterruptHandler::Loop() {
  const bool watches_output = OutputIsPipe();
  while (true) {
    // A closed pipe shows as POLLERR on its write end, whatever events are asked for.
    pollfd fds[3] = {{signals_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    int n = ::poll(fds, watches_output ? 3 : 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int signal = 0;
    if (watches_output && (fds[2].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      // The reader has gone (a pipe's POLLERR, a socket's POLLHUP), or stdout was closed.
      signal = SIGPIPE;
    } else if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      if (::read(signals_.get(), &info, sizeof(info)) != sizeof(info)) continue;
      signal = static_cast<int>(info.ssi_signo);
    } else {
      continue;
    }
    std::unique_lock lock(mutex_);
    std::shared_ptr<agent::Session> session = session_;
    if (signal != SIGINT || !is_turn_running_ || ++interrupts_ > 1) {
      if (session) {
        // The turn stops first: killing its command must not let it go on to the next call
        // (a write ran in the 100 ms Exit waits for the commands to end).
        session->Cancel();
        // Its lock file goes now; _Exit below would leave it behind.
        session->ReleaseForExit();
      }
      if (before_exit_) before_exit_();  // Under mutex_: BeforeExit(nullptr) waits for it.
      lock.unlock();
      Exit(signal);
    }
    lock.unlock();
    std::fputs("\n[cancelling; Ctrl-C again to exit]\n", stderr);
    if (session) session->Cancel();
  }
}

void InterruptHandler::Exit(int signal) {
  if (signal != SIGPIPE) std::fputs("\n", stderr);
  // The commands get SIGTERM now; the watcher gives them their 2 s to finish, then SIGKILL, as
  // when the process is killed. Without one (it could not be started), they get 100 ms here.
  if (workspace::SignalRunningCommands(SIGTERM) != 0 && !workspace::CommandsAreWatched()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    workspace::SignalRunningCommands(SIGKILL);
  }
  std::_Exit(128 + signal);
}

}  // namespace lai::cli
