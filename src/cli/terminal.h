// What the terminal commands (`run`, `sessions resume`, `tool run`) share: where the user's
// answers are read from, how an answer is understood, and what Ctrl-C, SIGTERM, SIGHUP and a
// closed output pipe do to a running agent.
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "base/unique_fd.h"

namespace lai::agent {
class Session;
}

namespace lai::cli {

// The terminal questions are asked on: standard input when it is one, else the controlling
// terminal (/dev/tty), so `… | lapce-ai run -` can still ask. Closed when there is neither.
class TerminalInput {
 public:
  static TerminalInput Open();

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Drops what was typed before the question was shown: type-ahead must not answer it.
  void DiscardTypeAhead() const;
  // One line, without its end. nullopt when `cancelled` (may be null) turns true first, or when
  // input ends (Ctrl-D) before anything was typed (`*at_end` is then set, when given).
  std::optional<std::string> ReadLine(const std::atomic<bool>* cancelled,
                                      bool* at_end = nullptr) const;

 private:
  int fd_ = -1;
  UniqueFd owned_;  // /dev/tty, when that is what fd_ is.
};

// An answer to an approval question, as typed: "y", "yes", "n", "no", "a", "always" in any case
// and with spaces around are those words ("y", "n", "a"); anything else is feedback ("").
std::string_view AnswerWord(std::string_view typed);

// SIGINT, SIGTERM and SIGHUP (the terminal closed), blocked in the calling thread and every thread
// it creates from then on. Call before anything starts a thread (the provider pool, the store): a
// thread that left them unblocked would take Ctrl-C with the default action and kill the process.
void BlockInterrupts();

// Ctrl-C during a turn cancels it, a second one exits at once; between turns (at the `> ` prompt,
// or with no session watched) Ctrl-C exits. SIGTERM and SIGHUP exit at once, and so does the
// reader of standard output going away (`lapce-ai run … | head`; SIGPIPE is ignored so that a
// write cannot kill the process first). Exiting first cancels the watched session's turn, then
// stops every command the agent is running (they run in sessions of their own and would outlive
// us), and exits 128 + the signal. Takes the signals on its own thread; every other thread must
// block them (the constructor blocks them in the calling thread: create it first).
class InterruptHandler {
 public:
  InterruptHandler();
  ~InterruptHandler();
  void Watch(std::shared_ptr<agent::Session> session);
  // A turn starts (a first Ctrl-C will cancel it) or ends (Ctrl-C will exit).
  void SetTurnRunning(bool running);
  // Runs on the handler's thread before it exits for a signal (after the watched session is
  // cancelled, before the commands are stopped); nullptr to stop (before what it uses goes).
  void BeforeExit(std::function<void()> hook);

 private:
  void Loop();
  [[noreturn]] static void Exit(int signal);

  UniqueFd signals_;  // signalfd
  UniqueFd wake_;     // eventfd: the destructor stops Loop
  std::mutex mutex_;
  int interrupts_ = 0;                       // Guarded by mutex_: Ctrl-Cs during the running turn.
  bool is_turn_running_ = false;             // Guarded by mutex_.
  std::shared_ptr<agent::Session> session_;  // Guarded by mutex_.
  std::function<void()> before_exit_;        // Guarded by mutex_.
  std::thread thread_;
};

}  // namespace lai::cli
