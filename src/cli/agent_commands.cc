// `lapce-ai run`, `lapce-ai acp` and `lapce-ai sessions …`: the agent from a terminal, for ACP
// editors over stdio, and the stored sessions. Confined to the main thread, except the signal
// thread (Ctrl-C) and the session's turn, which runs on the main thread and calls the terminal
// client from it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "agent/modes.h"
#include "agent/session.h"
#include "agent/session_export.h"
#include "agent/store.h"
#include "base/json_text.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/bench_agent.h"
#include "cli/commands.h"
#include "cli/provider_flags.h"
#include "cli/terminal.h"
#include "llm/pool.h"
#include "rpc/peer.h"
#include "rpc/stdio_transport.h"
#include "server/acp_agent.h"
#include "server/agent_setup.h"
#include "workspace/process.h"
#include "workspace/unified_diff.h"

namespace lai::cli {
namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitWaiting = 3;  // The agent waits for the user's reply (`run` with nobody to ask).
constexpr int kExitInterrupted = 130;

struct AgentFlags : ProviderFlags, AgentModeFlags {
  std::string cwd;
  bool yes = false;
  bool json = false;
  std::string prompt;
};

Result<std::unique_ptr<server::AgentStack>> StackFor(const Config& config,
                                                     const AgentFlags& flags) {
  agent::AgentSettings settings = server::AgentSettingsFromConfig(config);
  ApplyAgentModeFlags(flags, settings);
  if (flags.yes) server::ApproveEverything(settings.approvals);
  ASSIGN_OR_RETURN(std::unique_ptr<llm::ProviderPool> pool, PoolFor(config, flags, nullptr));
  return server::MakeAgentStack(std::move(pool), std::move(settings));
}

// The user's MCP servers (mcp.json), started for a terminal session in `workspace`; null when
// there are none. Errors name the file and the field.
Result<std::shared_ptr<agent::McpServers>> UserMcpFor(const Config& config,
                                                      const std::string& workspace) {
  ASSIGN_OR_RETURN(std::vector<server::McpServerConfig> servers, server::UserMcpServers(config));
  if (servers.empty()) return std::shared_ptr<agent::McpServers>();
  server::McpOptions options;
  options.cwd = workspace;
  options.client_version = LAI_VERSION;
  return std::shared_ptr<agent::McpServers>(server::McpHub::Start(std::move(servers), options));
}

std::string AbsoluteCwd(const std::string& cwd) {
  std::error_code error;
  std::filesystem::path path =
      cwd.empty() ? std::filesystem::current_path(error) : std::filesystem::absolute(cwd, error);
  return path.lexically_normal().string();
}

// ---- The terminal client

struct Style {
  bool color = false;
  const char* dim() const { return color ? "\033[2m" : ""; }
  const char* bold() const { return color ? "\033[1m" : ""; }
  const char* red() const { return color ? "\033[31m" : ""; }
  const char* green() const { return color ? "\033[32m" : ""; }
  const char* cyan() const { return color ? "\033[36m" : ""; }
  const char* reset() const { return color ? "\033[0m" : ""; }
};

// Prints a session as it works; asks approvals on the terminal. The spinner runs on its own
// thread while the session waits on the provider.
class TerminalClient : public agent::SessionClient {
 public:
  // Questions are asked on the terminal (TerminalInput), never with --json (a program reads
  // the events). `approves_all`: --yes was given (what still asks is a limit, or a command the
  // denied list cannot check).
  TerminalClient(bool is_json, bool approves_all) : json_(is_json), approves_all_(approves_all) {
    if (!is_json) {
      input_ = TerminalInput::Open();
      // The question goes where the user sees it; with both outputs redirected it could not be
      // seen, so nothing is asked (a run that read /dev/tty waited for a blind answer).
      ask_ = ::isatty(STDERR_FILENO) == 1   ? stderr
             : ::isatty(STDOUT_FILENO) == 1 ? stdout
                                            : nullptr;
      if (ask_ == nullptr) input_ = TerminalInput();
    }
    style_.color = !is_json && ::isatty(STDOUT_FILENO) == 1 && log::WantsColor();
    if (style_.color && ::isatty(STDERR_FILENO) == 1) {
      spinner_ = std::thread([this] { SpinLoop(); });
    }
  }
  ~TerminalClient() override {
    {
      std::lock_guard lock(mutex_);
      is_stopping_ = true;
    }
    wake_.notify_all();
    if (spinner_.joinable()) spinner_.join();
  }

  // Diff paths are shown relative to this directory.
  void SetWorkspace(std::string root) { workspace_ = std::move(root); }

  // The session is about to wait for the model.
  void Waiting(bool is_waiting) {
    std::lock_guard lock(mutex_);
    SpinLocked("waiting for the model…");
    if (is_waiting) is_stop_printed_ = false;  // A turn starts.
    is_waiting_ = is_waiting;
    ClearSpinnerLocked();
  }

  // A retry or a fallback: with --json, as the reply text it is stored as (the terminal has the
  // log's line on stderr).
  void OnRetrying(const std::string& session_id, const std::string& notice) override {
    if (json_) ShowAsReplyText(session_id, notice);
  }

  // What the engine says as a turn starts (a server or a modes file left out): on stderr, where
  // the terminal has its other words on the session; stdout is the answer (`run … > file`).
  void OnNotice(const std::string& session_id, const std::string& notice) override {
    if (json_) return ShowAsReplyText(session_id, notice);
    std::lock_guard lock(mutex_);
    ClearSpinnerLocked();
    std::string text = notice;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    std::fprintf(stderr, "%s\n", Visible(text).c_str());
  }

  void OnUpdate(const std::string& session_id, const agent::SessionUpdate& update,
                std::string_view acp_json) override {
    using Kind = agent::SessionUpdate::Kind;
    std::lock_guard lock(mutex_);
    ClearSpinnerLocked();
    if (json_) {
      std::printf("{\"type\":\"update\",\"sessionId\":%s,\"update\":%.*s}\n",
                  json(session_id).dump().c_str(), static_cast<int>(acp_json.size()),
                  acp_json.data());
      std::fflush(stdout);
      return;
    }
    switch (update.kind) {
      case Kind::kAgentMessageChunk:
        EndThoughtLocked();
        StartReplyLocked();
        std::fputs(Visible(update.text).c_str(), stdout);
        at_line_start_ = !update.text.empty() && update.text.back() == '\n';
        is_waiting_ = false;
        break;
      case Kind::kAgentThoughtChunk:
        StartReplyLocked();
        if (!in_thought_) {
          if (!at_line_start_) std::fputc('\n', stdout);
          if (style_.color) std::fputs(style_.dim(), stdout);
          at_line_start_ = true;
          in_thought_ = true;
        }
        if (style_.color) {
          std::fputs(Visible(update.text).c_str(), stdout);
          if (!update.text.empty()) at_line_start_ = update.text.back() == '\n';
        } else {
          // Without colour (piped, NO_COLOR) each line is marked, so none is taken for the answer.
          for (std::string_view rest = update.text; !rest.empty();) {
            size_t end = rest.find('\n');
            std::string_view line =
                rest.substr(0, end == std::string_view::npos ? rest.size() : end + 1);
            if (at_line_start_) std::fputs("[reasoning] ", stdout);
            std::fputs(Visible(line).c_str(), stdout);
            at_line_start_ = line.back() == '\n';
            rest.remove_prefix(line.size());
          }
        }
        is_waiting_ = false;
        break;
      case Kind::kToolCall:
        EndThoughtLocked();
        NewLineLocked();
        std::printf("%s● %s%s", style_.cyan(), Visible(update.tool.title).c_str(), style_.reset());
        if (!update.tool.raw_input_json.empty()) {
          std::printf(" %s%s%s", style_.dim(), Shortened(update.tool.raw_input_json, 200).c_str(),
                      style_.reset());
        }
        std::fputc('\n', stdout);
        at_line_start_ = true;
        announced_.insert(update.tool.id);
        SpinLocked("running…");  // Until it is done, or asks first.
        break;
      case Kind::kToolCallUpdate:
        // Only calls shown before: the end of a question's card (a limit) is not a tool's.
        if (announced_.count(update.tool.id) != 0) PrintToolUpdateLocked(update.tool);
        break;
      case Kind::kPlan:
        if (update.plan.empty()) break;  // No list (the task's, after a subtask's): nothing shown.
        NewLineLocked();
        std::printf("%sTodo:%s\n", style_.bold(), style_.reset());
        for (const agent::PlanEntry& entry : update.plan) {
          const char* mark = entry.status == agent::PlanEntry::Status::kCompleted    ? "[x]"
                             : entry.status == agent::PlanEntry::Status::kInProgress ? "[-]"
                                                                                     : "[ ]";
          std::printf("  %s %s\n", mark, Visible(entry.content).c_str());
        }
        break;
      case Kind::kCurrentModeUpdate:
        NewLineLocked();
        std::printf("%s[mode: %s]%s\n", style_.dim(), Visible(update.text).c_str(), style_.reset());
        break;
      case Kind::kUsageUpdate:  // Sent after each model reply.
        usage_ = update;
        reply_ended_ = true;
        break;
      case Kind::kUserMessageChunk:
      case Kind::kSessionInfoUpdate:
        break;
    }
    std::fflush(stdout);
  }

  agent::PermissionReply RequestPermission(const std::string& session_id,
                                           const agent::PermissionRequest& request,
                                           const std::atomic<bool>& cancelled) override {
    std::unique_lock lock(mutex_);
    ClearSpinnerLocked();
    EndThoughtLocked();
    NewLineLocked();
    is_waiting_ = false;  // On the user: no spinner over the question.
    if (json_) {
      json event = {{"type", "permission"},
                    {"sessionId", session_id},
                    {"toolCallId", request.tool.id},
                    {"title", request.tool.title}};
      std::printf("%s\n", event.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    }
    if (!input_.is_open() && request.is_question) {  // A limit: --yes does not reach past it.
      return {agent::PermissionOutcome::kRejectOnce, {}};
    }
    if (!input_.is_open()) {
      std::fprintf(stderr,
                   "lapce-ai: '%s' needs approval, and there is no terminal to ask on; %s\n",
                   Visible(request.tool.title).c_str(),
                   approves_all_ ? "rejected (--yes does not cover it: a limit, or a command that "
                                   "runs another command's output while commands are denied)"
                                 : "rejected (pass --yes to approve everything, or set "
                                   "approvals.auto_approve)");
      return {agent::PermissionOutcome::kRejectOnce,
              "The user could not be asked (non-interactive run); the operation was not approved."};
    }
    // What is asked about goes where the question is: to the terminal, even when standard output
    // is a file (it gets the diff when the edit is done).
    const bool output_is_terminal = ::isatty(STDOUT_FILENO) == 1;
    FILE* shown = output_is_terminal ? stdout : ask_;
    for (const agent::ToolCallContent& content : request.tool.content) {
      if (content.kind == agent::ToolCallContent::Kind::kDiff) {
        PrintDiffLocked(content, shown);
        if (output_is_terminal) diff_shown_.insert(request.tool.id);  // Not again when done.
      } else if (!content.text.empty()) {
        std::fprintf(shown, "%s\n", Visible(Shortened(content.text, 2000)).c_str());
      }
    }
    std::fflush(shown);
    std::string question =
        Visible(request.is_question ? request.tool.title : "Allow " + request.tool.title + "?");
    const char* choices = request.can_always ? "[y]es / [n]o / [a]lways" : "[y]es / [n]o";
    input_.DiscardTypeAhead();
    std::fprintf(ask_, "%s%s%s %s / or type feedback: ", style_.bold(), question.c_str(),
                 style_.reset(), choices);
    std::fflush(ask_);
    lock.unlock();
    // A bare Enter is no answer (a stray one must not run a command): ask again. Ctrl-C cancels
    // the turn, which ends the question at once; Ctrl-D answers no.
    std::string line;
    while (true) {
      bool at_end = false;
      std::optional<std::string> typed = input_.ReadLine(&cancelled, &at_end);
      if (at_end) {
        std::fputc('\n', ask_);
        return {agent::PermissionOutcome::kRejectOnce, {}};
      }
      if (!typed) return {agent::PermissionOutcome::kCancelled, {}};
      line = std::move(*typed);
      if (line.find_first_not_of(" \t\r") != std::string::npos) break;
      std::fputs(request.can_always ? "y, n, a, or feedback for the model: "
                                    : "y, n, or feedback for the model: ",
                 ask_);
      std::fflush(ask_);
    }
    std::string_view word = AnswerWord(line);
    if (word == "a" && !request.can_always) word = "";
    bool is_allowed = word == "y" || word == "a";
    if (is_allowed && !request.is_question) {
      std::lock_guard relock(mutex_);
      SpinLocked("running…");
    }
    if (word == "y") return {agent::PermissionOutcome::kAllowOnce, {}};
    if (word == "a") return {agent::PermissionOutcome::kAllowAlways, {}};
    if (word == "n") return {agent::PermissionOutcome::kRejectOnce, {}};
    return {agent::PermissionOutcome::kRejectOnce, line};
  }

  // A running command's output, shown as it comes (dimmed); its result then shows only how it
  // ended, not the output again.
  void OnToolOutput(const std::string& session_id, const std::string& tool_call_id,
                    std::string_view chunk) override {
    std::lock_guard lock(mutex_);
    ClearSpinnerLocked();
    if (json_) {
      json out = {{"type", "output"},
                  {"sessionId", session_id},
                  {"toolCallId", tool_call_id},
                  {"text", chunk}};
      std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
      std::fflush(stdout);
      return;
    }
    EndThoughtLocked();
    std::printf("%s%s%s", style_.dim(), Visible(chunk).c_str(), style_.reset());
    at_line_start_ = !chunk.empty() && chunk.back() == '\n';
    output_shown_.insert(tool_call_id);
    wait_started_ = std::chrono::steady_clock::now();  // The spinner waits for a pause.
    std::fflush(stdout);
  }

  // After a turn: its tokens and cost, on stderr.
  // `before` = the session's totals when the turn started; the line shows this turn's share.
  // `pool` says whether the session's model has prices (CostText).
  // A turn that ended in an error (the provider's, or a refused prompt): on its own line, its
  // control characters shown, or as an "error" event.
  void PrintError(const std::string& session_id, const std::string& message) {
    std::lock_guard lock(mutex_);
    ClearSpinnerLocked();
    EndThoughtLocked();
    if (json_) {
      json out = {{"type", "error"}, {"sessionId", session_id}, {"message", message}};
      std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    } else {
      NewLineLocked();
      std::fflush(stdout);
    }
    std::fprintf(stderr, "lapce-ai run: %s\n", Visible(message).c_str());
  }

  // --json: the stop event of a turn that failed (status "failed"), after its error event, so
  // every run's output ends with one.
  void PrintFailedStop(const agent::SessionInfo& info) {
    std::lock_guard lock(mutex_);
    if (json_) PrintStopLocked("error", info);
  }

  // --json: the stop event of a run a signal ends (a second Ctrl-C, SIGTERM, SIGHUP) while its
  // turn runs: cancelled, the session "interrupted" unless the cancelled turn had ended already
  // (either way `sessions resume` continues it).
  void PrintExitStop(const agent::SessionInfo& info) {
    std::lock_guard lock(mutex_);
    if (!json_ || is_stop_printed_) return;
    PrintStopLocked("cancelled", info,
                    info.status == agent::SessionStatus::kActive ? "interrupted" : "");
  }

  void PrintTurnSummary(const agent::SessionInfo& info, const agent::SessionTotals& before,
                        agent::StopReason stop, const llm::ProviderPool& pool) {
    std::lock_guard lock(mutex_);
    ClearSpinnerLocked();
    EndThoughtLocked();
    if (json_) return PrintStopLocked(agent::StopReasonName(stop), info);
    NewLineLocked();
    std::fflush(stdout);
    const long long tokens_in = info.totals.input_tokens - before.input_tokens;
    const long long tokens_out = info.totals.output_tokens - before.output_tokens;
    std::string turn;
    if (tokens_in == 0 && tokens_out == 0) {
      // Nothing reported (a provider without usage, or a turn cancelled first): not free.
      turn = "usage not reported, cost unknown";
    } else {
      std::string turn_cost =
          CostText(pool, info.profile, info.totals.cost_usd - before.cost_usd, 4);
      turn =
          std::to_string(tokens_in) + " in / " + std::to_string(tokens_out) + " out tokens, " +
          (turn_cost.starts_with("$")
               ? turn_cost + " · session: " + CostText(pool, info.profile, info.totals.cost_usd, 4)
               : "cost " + turn_cost);
    }
    std::fprintf(stderr, "%s[%s · this turn: %s · %s]%s\n", style_.dim(),
                 std::string(agent::StopReasonName(stop)).c_str(), turn.c_str(), info.id.c_str(),
                 style_.reset());
  }

 private:
  static constexpr size_t kMaxShownLineBytes = 400;  // Of a tool result's line, in the terminal.

  void PrintStopLocked(std::string_view stop_reason, const agent::SessionInfo& info,
                       std::string_view status = {}) {
    json out = {{"type", "stop"},
                {"stopReason", stop_reason},
                {"sessionId", info.id},
                {"status", status.empty() ? agent::SessionStatusName(info.status) : status},
                {"usage",
                 {{"inputTokens", info.totals.input_tokens},
                  {"outputTokens", info.totals.output_tokens},
                  {"cacheReadTokens", info.totals.cache_read_tokens},
                  {"cacheWriteTokens", info.totals.cache_write_tokens},
                  {"costUsd", RoundForJson(info.totals.cost_usd)},
                  {"requests", info.totals.requests}}}};
    is_stop_printed_ = true;
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  }

  void NewLineLocked() {
    if (!at_line_start_) std::fputc('\n', stdout);
    at_line_start_ = true;
  }

  // The text of a new model reply starts on its own line, not glued to the last one's.
  void StartReplyLocked() {
    if (!reply_ended_) return;
    reply_ended_ = false;
    NewLineLocked();
  }

  void EndThoughtLocked() {
    if (!in_thought_) return;
    std::fputs(style_.reset(), stdout);
    in_thought_ = false;
    NewLineLocked();
  }

  void PrintDiffLocked(const agent::ToolCallContent& diff, FILE* out = stdout) {
    std::string_view path = diff.path;
    if (!workspace_.empty() && path.starts_with(workspace_ + "/")) {
      path.remove_prefix(workspace_.size() + 1);
    }
    std::string text = workspace::UnifiedDiff(path, diff.old_text.value_or(""), diff.new_text);
    // A rewrite of a whole large file is not scrolled past line by line.
    constexpr size_t kMostDiffLines = 400;
    size_t start = 0;
    for (size_t shown = 0; start < text.size(); ++shown) {
      if (shown == kMostDiffLines) {
        size_t more = static_cast<size_t>(
            std::count(text.begin() + static_cast<long>(start), text.end(), '\n'));
        std::fprintf(out, "%s[… %zu more lines of the diff not shown]%s\n", style_.dim(), more,
                     style_.reset());
        break;
      }
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      const char* color = line.starts_with("+") && !line.starts_with("+++")   ? style_.green()
                          : line.starts_with("-") && !line.starts_with("---") ? style_.red()
                          : line.starts_with("@@")                            ? style_.cyan()
                                                                              : "";
      std::fprintf(out, "%s%s%s\n", color, Visible(line).c_str(), *color ? style_.reset() : "");
      start = end + 1;
    }
    if (out == stdout) at_line_start_ = true;
  }

  void PrintToolUpdateLocked(const agent::ToolCallInfo& tool) {
    if (!tool.status || *tool.status == agent::ToolStatus::kPending ||
        *tool.status == agent::ToolStatus::kInProgress) {
      return;
    }
    EndThoughtLocked();
    NewLineLocked();
    bool failed = *tool.status == agent::ToolStatus::kFailed;
    bool has_diff = false;
    for (const agent::ToolCallContent& content : tool.content) {
      has_diff = has_diff || content.kind == agent::ToolCallContent::Kind::kDiff;
    }
    const bool was_diff_shown = diff_shown_.erase(tool.id) != 0;
    const bool was_output_shown = output_shown_.erase(tool.id) != 0;
    for (const agent::ToolCallContent& content : tool.content) {
      if (content.kind == agent::ToolCallContent::Kind::kDiff) {
        if (!was_diff_shown) PrintDiffLocked(content);
      } else if (!content.text.empty() && !has_diff) {  // An edit's diff says it all.
        // The model's view of the result, cut to a few lines for the terminal; after output
        // shown live, only what precedes the output (how the command ended).
        std::string_view text = content.text;
        if (size_t output = text.find("\nOutput:\n"); was_output_shown && output != text.npos) {
          text = text.substr(0, output + 1);
        }
        std::string shown;
        size_t lines = 0, position = 0;
        while (position < text.size() && lines < 12) {
          size_t end = text.find('\n', position);
          if (end == std::string::npos) end = text.size();
          std::string_view line = text.substr(position, end - position);
          shown += Shortened(line, kMaxShownLineBytes);
          shown.push_back('\n');
          position = end + 1;
          ++lines;
        }
        if (position < text.size()) shown += "…\n";
        std::printf("%s%s%s", failed ? style_.red() : style_.dim(), Visible(shown).c_str(),
                    style_.reset());
      }
    }
    std::printf("%s%s%s\n", failed ? style_.red() : style_.green(), failed ? "✗ failed" : "✓ done",
                style_.reset());
    at_line_start_ = true;
    SpinLocked("waiting for the model…");
  }

  // The spinner shows `label` after a moment of quiet (SpinLoop).
  void SpinLocked(const char* label) {
    is_waiting_ = true;
    spinner_label_ = label;
    wait_started_ = std::chrono::steady_clock::now();
  }

  void ClearSpinnerLocked() {
    if (!spinner_shown_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    spinner_shown_ = false;
  }

  void SpinLoop() {
    static constexpr const char* kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
    size_t frame = 0;
    std::unique_lock lock(mutex_);
    while (!is_stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      if (is_stopping_) break;
      bool is_due =
          is_waiting_ && at_line_start_ &&
          std::chrono::steady_clock::now() - wait_started_ > std::chrono::milliseconds(200);
      if (!is_due) continue;
      // After a few seconds, how long: a slow provider (or one being retried) is not a hang.
      auto waited = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - wait_started_)
                        .count();
      std::string elapsed = waited >= 5 ? " " + std::to_string(waited) + " s" : "";
      std::fprintf(stderr, "\r%s%s %s%s%s\033[K", style_.dim(), kFrames[frame++ % 10],
                   spinner_label_, elapsed.c_str(), style_.reset());
      std::fflush(stderr);
      spinner_shown_ = true;
    }
  }

  const bool json_;
  const bool approves_all_;
  TerminalInput input_;
  FILE* ask_ = stderr;  // Where questions are shown (a terminal).
  std::string workspace_;
  Style style_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool is_stopping_ = false;
  bool is_waiting_ = true;
  bool is_stop_printed_ = false;                          // This turn's --json stop event is out.
  const char* spinner_label_ = "waiting for the model…";  // Static text.
  bool spinner_shown_ = false;
  bool in_thought_ = false;
  bool at_line_start_ = true;
  bool reply_ended_ = false;  // A model reply ended; the next text starts a new one.
  std::chrono::steady_clock::time_point wait_started_ = std::chrono::steady_clock::now();
  agent::SessionUpdate usage_;
  std::set<std::string> diff_shown_;  // Tool calls whose diff the approval question showed.
  std::set<std::string> output_shown_;  // Tool calls whose output was shown as it came.
  std::set<std::string> announced_;     // Tool calls shown (their updates are shown too).
  std::thread spinner_;
};

// "lapce-ai sessions resume ID [the one-off provider flags]": what continues a session run with
// `flags` (the provider's key is never among them).
std::string ResumeCommand(const std::string& id, const AgentFlags& flags) {
  std::string command = "lapce-ai sessions resume " + id;
  if (!flags.provider.empty()) {
    command += " --provider " + flags.provider + " --model " + flags.model;
    if (!flags.base_url.empty()) command += " --base-url " + flags.base_url;
  } else {
    if (!flags.profile.empty()) command += " --profile " + flags.profile;
    if (!flags.model.empty()) command += " --model " + flags.model;
  }
  return command;
}

// The terminal hands a program at most this many bytes of one line (the kernel's line buffer);
// the rest of a longer line is dropped before it can be read.
constexpr size_t kTerminalLineBytes = 4095;

// One message typed (or pasted) at the terminal: a line, and with it every line that follows
// within a moment, since a pasted block arrives at once (or, through ssh or tmux, in bursts tens
// of milliseconds apart) while typing a line takes longer than that. Without this each line of a
// pasted trace went to the model as a message of its own, and a blank line in it ended the
// session. False at the end of input.
bool ReadTerminalMessage(std::string& text, int* lines) {
  constexpr int kPasteGapMs = 60;
  if (!std::getline(std::cin, text)) return false;
  *lines = 1;
  bool cut = text.size() >= kTerminalLineBytes;
  pollfd input{STDIN_FILENO, POLLIN, 0};
  std::string line;
  while (::poll(&input, 1, kPasteGapMs) == 1 && (input.revents & POLLIN) != 0 &&
         std::getline(std::cin, line)) {
    cut |= line.size() >= kTerminalLineBytes;
    text += "\n" + line;
    ++*lines;
  }
  if (cut) {
    std::fprintf(stderr,
                 "(not sent: a line reached the terminal's limit of %zu bytes, so its end was "
                 "lost; put long text in a file and mention it as @path)\n",
                 kTerminalLineBytes);
    text.clear();
    *lines = 0;
  }
  return true;
}

// Reads the user's next message at the terminal prompt into `prompt`; false at the end of input
// or on an empty line. A single line naming a command (/mode, /help, /exit; any case) is handled
// here and the prompt shown again; any other text, "/etc/hosts is wrong" or a pasted block too,
// is the message. A line of blanks is ignored.
bool ReadMessage(agent::Session& session, agent::SessionClient* client, std::string& prompt) {
  // A terminal goes on after a Ctrl-D that ended `run -`'s task: forget that end of input (in
  // the stream and in the stdio FILE beneath it).
  std::clearerr(stdin);
  std::cin.clear();
  for (;;) {
    std::fprintf(stderr, "> ");
    std::fflush(stderr);
    int lines = 0;
    if (!ReadTerminalMessage(prompt, &lines) || (lines == 1 && prompt.empty())) return false;
    if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    std::istringstream words(prompt);
    std::string command, argument, extra;
    words >> command >> argument >> extra;
    for (char& c : command) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool is_command =
        lines == 1 && command[0] == '/' &&
        command.find_first_not_of("abcdefghijklmnopqrstuvwxyz", 1) == std::string::npos;
    if (!is_command) return true;
    if (command == "/exit" || command == "/quit") return false;
    if (command == "/mode" && !extra.empty()) {
      std::fprintf(stderr, "usage: /mode [SLUG]\n");
    } else if (command == "/mode" && !argument.empty()) {
      if (Status status = session.SetMode(argument, client); !status.ok()) {
        std::fprintf(stderr, "%s\n", status.error().message().c_str());
      } else if (client == nullptr) {
        std::fprintf(stderr, "[mode: %s]\n", Visible(argument).c_str());
      }
    } else if (command == "/mode") {
      std::string current = session.Info().mode;
      for (const agent::ModeConfig& mode : session.Modes()) {
        std::fprintf(stderr, "%s %-14s %s\n", mode.slug == current ? "*" : " ", mode.slug.c_str(),
                     Visible(mode.name).c_str());
      }
    } else {
      if (command != "/help" && command != "/") {
        std::fprintf(stderr, "unknown command %s\n", Visible(command).c_str());
      }
      std::fprintf(stderr,
                   "  /mode          list the modes (* marks the current one)\n"
                   "  /mode SLUG     switch to a mode for the next message\n"
                   "  /exit          end (as an empty line does)\n"
                   "  anything else is your message to the agent; lines pasted together are "
                   "one message\n");
    }
  }
}

// Runs prompts on `session` until the task is done: after a question or a completion, an
// interactive terminal may answer (an empty line ends).
int Drive(agent::Session& session, std::shared_ptr<agent::Session> shared, std::string prompt,
          const AgentFlags& flags, const llm::ProviderPool& pool) {
  bool interactive = !flags.json && ::isatty(STDIN_FILENO) == 1;
  InterruptHandler interrupts;
  interrupts.Watch(std::move(shared));
  TerminalClient client(flags.json, flags.yes);
  client.SetWorkspace(session.Info().workspace);
  // A signal that ends the process mid-turn still ends --json's output with a stop event.
  interrupts.BeforeExit([&] { client.PrintExitStop(session.Info()); });
  struct NoHook {
    InterruptHandler& interrupts;
    ~NoHook() { interrupts.BeforeExit(nullptr); }
  } no_hook{interrupts};
  while (true) {
    client.Waiting(true);
    agent::SessionTotals before = session.Info().totals;
    interrupts.SetTurnRunning(true);
    Result<agent::StopReason> stop = session.Prompt(prompt, client);
    interrupts.SetTurnRunning(false);
    client.Waiting(false);
    if (!stop.ok()) {
      client.PrintError(session.id(), stop.error().message());
      client.PrintFailedStop(session.Info());
      // A task refused before anything was said leaves no empty session behind.
      if (session.DiscardIfEmpty()) return kExitFailure;
      if (!interactive) {
        std::fprintf(stderr, "(session %s is kept; `%s` continues it)\n", session.id().c_str(),
                     ResumeCommand(session.id(), flags).c_str());
        return kExitFailure;
      }
      // At a terminal the session goes on: the next message may retry, or say something else.
      if (!ReadMessage(session, &client, prompt)) return kExitFailure;
      continue;
    }
    agent::SessionInfo info = session.Info();
    client.PrintTurnSummary(info, before, *stop, pool);
    if (!interactive) {
      bool awaits_user = info.status == agent::SessionStatus::kWaiting ||
                         info.status == agent::SessionStatus::kStopped;
      if (awaits_user && !flags.json) {
        std::fprintf(stderr, "(`%s \"your reply\"` continues it)\n",
                     ResumeCommand(session.id(), flags).c_str());
      }
      if (*stop == agent::StopReason::kCancelled) return kExitInterrupted;
      return awaits_user ? kExitWaiting : kExitOk;
    }
    if (!ReadMessage(session, &client, prompt)) return kExitOk;
  }
}

// A prompt of "-" is read from standard input, whole but for the line ends after it (`echo`'s
// newline is not part of the task). Returns whether it was.
bool ReadPromptFromStdin(std::string& prompt) {
  if (prompt != "-") return false;
  prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  while (prompt.ends_with('\n') || prompt.ends_with('\r')) prompt.pop_back();
  return true;
}

int Run(const Config& config, AgentFlags flags) {
  const bool is_piped = ReadPromptFromStdin(flags.prompt);
  if (flags.prompt.find_first_not_of(" \t\r\n") == std::string::npos) {  // Nothing to do.
    std::fputs(is_piped ? "lapce-ai run: standard input held no task (it was empty or blank); "
                          "pipe the task in, or give it as an argument\n"
                        : "lapce-ai run: give the task as an argument (or '-' to read stdin)\n",
               stderr);
    return kExitUsage;
  }
  BlockInterrupts();
  Result<std::unique_ptr<server::AgentStack>> stack = StackFor(config, flags);
  if (!stack.ok()) {
    std::fprintf(stderr, "lapce-ai run: %s\n", stack.error().message().c_str());
    return stack.error().code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  agent::SessionOptions options;
  options.workspace = AbsoluteCwd(flags.cwd);
  options.mode = flags.mode;
  options.profile = flags.profile;
  // Said before the task starts: it failed at its first request, leaving a failed session.
  if (Status key = (*stack)->pool->CheckKey(options.profile); !key.ok()) {
    std::fprintf(stderr, "lapce-ai run: %s\n", key.error().message().c_str());
    return kExitUsage;
  }
  Result<std::shared_ptr<agent::McpServers>> mcp = UserMcpFor(config, options.workspace);
  if (!mcp.ok()) {
    std::fprintf(stderr, "lapce-ai run: %s\n", mcp.error().message().c_str());
    return kExitUsage;
  }
  options.mcp = std::move(*mcp);
  Result<std::shared_ptr<agent::Session>> session = (*stack)->engine->NewSession(options);
  if (!session.ok()) {
    std::fprintf(stderr, "lapce-ai run: %s\n", session.error().message().c_str());
    // A mode, profile or --cwd to name again; else the store failed.
    ErrorCode code = session.error().code();
    return code == ErrorCode::kInvalidArgument || code == ErrorCode::kNotFound ? kExitUsage
                                                                               : kExitFailure;
  }
  return Drive(**session, *session, flags.prompt, flags, *(*stack)->pool);
}

// Serves ACP on stdin/stdout with `agent` until the editor closes stdin or a signal comes.
// `interrupts` must have been made before any thread (it blocks the signals for all after it).
int ServeAcpOnStdio(InterruptHandler& interrupts, server::EngineSource engine,
                    server::AcpAgentOptions options) {
  rpc::StdioTransport transport(STDIN_FILENO, STDOUT_FILENO);
  rpc::Peer peer(transport, rpc::PeerOptions{"acp", server::kAcpHandlerThreads});
  options.agent_version = LAI_VERSION;
  server::AcpAgent agent(std::move(engine), peer, std::move(options));
  std::mutex mutex;
  std::condition_variable closed_signal;
  bool is_closed = false;
  peer.OnClose([&] {
    std::lock_guard lock(mutex);
    is_closed = true;
    closed_signal.notify_all();
  });
  if (Status started = transport.Start(peer); !started.ok()) {
    std::fprintf(stderr, "lapce-ai acp: %s\n", started.error().message().c_str());
    return kExitFailure;
  }
  // Stopped by a signal: the turns end, their prompts are answered "cancelled" (for up to a
  // second: editors stop agents with SIGTERM, and had no answer while the sessions stayed
  // interrupted) and the sessions are given up (one never prompted is not kept), as when the
  // editor closes.
  bool is_exiting = false;  // The signal's exit ends the process: this thread stays out of it.
  interrupts.BeforeExit([&agent, &peer, &mutex, &is_exiting] {
    {
      std::lock_guard lock(mutex);
      is_exiting = true;
    }
    agent.CancelAll();
    peer.EndOfInput();  // Closes the peer once the last running request is answered.
    for (int i = 0; i < 100 && !peer.is_closed(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    agent.ReleaseAll();
  });
  std::unique_lock lock(mutex);
  closed_signal.wait(lock, [&] { return is_closed && !is_exiting; });
  lock.unlock();
  interrupts.BeforeExit(nullptr);
  agent.CancelAll();
  peer.Drain();
  agent.ReleaseAll();
  transport.Stop();
  return kExitOk;
}

int AcpRefusingEverySession(const std::string& problem);

int Acp(const Config& config, const AgentFlags& flags) {
  if (Status s = CheckProviderFlags(config, flags); !s.ok()) {
    return AcpRefusingEverySession("the agent's arguments are wrong: " + s.error().message());
  }
  Result<std::vector<server::McpServerConfig>> mcp_servers = server::UserMcpServers(config);
  if (!mcp_servers.ok()) return AcpRefusingEverySession(mcp_servers.error().message());
  // SIGTERM, SIGHUP or Ctrl-C stop the commands the agent runs (they run in sessions of their
  // own and outlived the process) and exit. An editor that goes away makes writes to stdout fail
  // with EPIPE (handled), not kill us. First: it blocks the signals for every thread after it.
  InterruptHandler interrupts;
  // The provider pool and the session store open on their own thread while `initialize` is
  // answered; a problem with them is reported on stderr and by every session request.
  server::LazyAgentStack stack(
      [&]() -> Result<std::unique_ptr<server::AgentStack>> {
        Result<std::unique_ptr<server::AgentStack>> built = StackFor(config, flags);
        if (!built.ok())
          std::fprintf(stderr, "lapce-ai acp: %s\n", built.error().message().c_str());
        return built;
      },
      /*build_now=*/true);
  server::AcpAgentOptions options;
  if (NamesAProfile(flags)) options.load_profile = "";
  options.mcp_servers = std::move(*mcp_servers);
  return ServeAcpOnStdio(
      interrupts, [&stack] { return stack.Get(); }, std::move(options));
}

// Something that stops every session before any can start (the configuration does not load, a
// bad --profile in the editor's args for the agent, a broken mcp.json): an editor would see only
// an agent that died before `initialize`, its reason on a stderr it may not show. `initialize`
// is answered, and every session request gets the problem, shown where the user looks.
int AcpRefusingEverySession(const std::string& problem) {
  std::fprintf(stderr, "lapce-ai acp: %s\n", problem.c_str());
  InterruptHandler interrupts;
  const Error refusal(ErrorCode::kUnavailable,  // -32603: not the request's fault.
                      problem + "; fix it, then restart the agent");
  return ServeAcpOnStdio(interrupts, [refusal]() -> Result<agent::Engine*> { return refusal; }, {});
}

int AcpWithoutConfig(const Error& error) {
  return AcpRefusingEverySession("the configuration does not load: " + error.message());
}

// ---- sessions …

struct SessionsFlags {
  std::string id;
  std::vector<std::string> ids;  // delete
  std::string prompt;
  std::string format = "md";
  std::string output;
  std::string cwd;
  int limit = 20;
  bool all = false;
  bool json = false;
};

Result<std::unique_ptr<agent::SessionStore>> OpenStore() {
  return agent::SessionStore::OpenDefault();
}

std::string FormatTime(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M", &local);
  return text;
}

int SessionsList(const SessionsFlags& flags) {
  Result<std::unique_ptr<agent::SessionStore>> store = OpenStore();
  if (!store.ok()) {
    std::fprintf(stderr, "lapce-ai sessions: %s\n", store.error().message().c_str());
    return kExitFailure;
  }
  agent::ListOptions options;
  options.limit = flags.limit > 0 ? flags.limit + 1 : 0;  // One more: are there older ones?
  options.include_children = flags.all;
  if (!flags.cwd.empty()) options.workspace = AbsoluteCwd(flags.cwd);
  Result<std::vector<agent::SessionRecord>> records = (*store)->ListSessions(options);
  if (!records.ok()) {
    std::fprintf(stderr, "lapce-ai sessions list: %s\n", records.error().message().c_str());
    return kExitFailure;
  }
  const bool has_older = flags.limit > 0 && records->size() > static_cast<size_t>(flags.limit);
  if (has_older) records->pop_back();
  // An active session nobody has open was stopped mid-turn (kill -9, a crash): it is shown as
  // interrupted, and resuming it continues where it stopped.
  auto status_of = [&](const agent::SessionRecord& record) {
    return std::string((*store)->ShownStatus(record));
  };
  if (flags.json) {
    json out = json::array();
    for (const agent::SessionRecord& record : *records) {
      out.push_back({{"id", record.id},
                     {"parentId", record.parent_id},
                     {"title", record.title},
                     {"workspace", record.workspace},
                     {"mode", record.mode},
                     {"model", record.model},
                     {"status", status_of(record)},
                     {"createdMs", record.created_ms},
                     {"updatedMs", record.updated_ms},
                     {"costUsd", RoundForJson(record.totals.cost_usd)},
                     {"requests", record.totals.requests},
                     {"inputTokens", record.totals.input_tokens},
                     {"outputTokens", record.totals.output_tokens}});
    }
    std::printf("%s\n", out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (records->empty()) {
    if (options.workspace.empty()) {
      std::printf("no sessions yet; `lapce-ai run \"task\"` starts one\n");
    } else {
      std::printf(
          "no sessions in %s (`--all` lists subtasks too; without --cwd, every "
          "workspace's)\n",
          options.workspace.c_str());
    }
    return kExitOk;
  }
  // A task's cost includes its subtasks'; a subtask's title names its parent (↳ parent: title),
  // whole: ids begin with the time, so two parents' short prefixes may well be the same. Columns
  // are as wide as what they show; on a terminal, titles are cut to fit its width.
  struct Row {
    std::string id, updated, mode, status, cost, title;
  };
  std::vector<Row> rows;
  size_t mode_width = 4, status_width = 6, cost_width = 4;
  for (const agent::SessionRecord& record : *records) {
    // Nothing counted shows as "-": a model without prices (or a free local one) is not "$0".
    char cost[32] = "-";
    if (record.totals.cost_usd > 0)
      std::snprintf(cost, sizeof(cost), "%.4f", record.totals.cost_usd);
    Row row{record.id,
            FormatTime(record.updated_ms),
            Visible(record.mode),
            status_of(record),
            cost,
            Visible(record.parent_id.empty() ? record.title
                                             : "↳ " + record.parent_id + ": " + record.title)};
    mode_width = std::max(mode_width, DisplayWidth(row.mode));
    status_width = std::max(status_width, DisplayWidth(row.status));
    cost_width = std::max(cost_width, row.cost.size());
    rows.push_back(std::move(row));
  }
  size_t title_width = std::numeric_limits<size_t>::max();
  winsize window{};
  if (::isatty(STDOUT_FILENO) == 1 && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &window) == 0 &&
      window.ws_col > 0) {
    const size_t fixed = 24 + 2 + 16 + 2 + mode_width + 2 + status_width + 2 + cost_width + 2;
    title_width = window.ws_col > fixed + 10 ? window.ws_col - fixed : 10;
  }
  auto pad = [](const std::string& text, size_t width) {
    return text + std::string(width - std::min(width, DisplayWidth(text)), ' ');
  };
  auto print = [&](const Row& row) {
    std::printf("%-24s  %-16s  %s  %s  %*s  %s\n", row.id.c_str(), row.updated.c_str(),
                pad(row.mode, mode_width).c_str(), pad(row.status, status_width).c_str(),
                static_cast<int>(cost_width), row.cost.c_str(),
                CutToWidth(row.title, title_width).c_str());
  };
  print({"ID", "UPDATED", "MODE", "STATUS", "COST", "TITLE"});
  for (const Row& row : rows) print(row);
  if (has_older) {  // Said beside the table, not in it (`sessions list | awk …`).
    std::fflush(stdout);
    std::fprintf(stderr, "(the newest %d are shown; `--limit N` shows more, `--limit 0` all)\n",
                 flags.limit);
  }
  return kExitOk;
}

// The record and messages of one session, or a printed error.
struct Loaded {
  agent::SessionRecord record;
  std::vector<agent::HistoryMessage> messages;
  std::vector<agent::StoredEvent> events;
};

Result<Loaded> LoadStored(agent::SessionStore& store, const std::string& id) {
  ASSIGN_OR_RETURN(std::optional<agent::SessionRecord> record, store.FindSession(id));
  if (!record) {
    return Error(ErrorCode::kNotFound,
                 "no session '" + id + "'; `lapce-ai sessions list` shows them");
  }
  Loaded loaded{*record, {}, {}};
  ASSIGN_OR_RETURN(loaded.messages, store.LoadMessages(record->id));
  ASSIGN_OR_RETURN(loaded.events, store.LoadEvents(record->id));
  // A turn that never finished (the engine was killed; not one another process is running): the
  // reply text it had shown is in the events after the last stored message. Show it as
  // `sessions resume` will keep it.
  if (record->status != agent::SessionStatus::kActive || store.IsSessionOpen(record->id)) {
    return loaded;
  }
  if (std::optional<llm::Message> unfinished = agent::UnfinishedReply(loaded.events)) {
    agent::HistoryMessage message;
    message.seq = loaded.messages.empty() ? 1 : loaded.messages.back().seq + 1;
    message.time_ms = loaded.record.updated_ms;
    message.message = std::move(*unfinished);
    loaded.messages.push_back(std::move(message));
  }
  return loaded;
}

int SessionsShowOrExport(const SessionsFlags& flags, bool is_export) {
  const char* verb = is_export ? "export" : "show";
  if (flags.format != "md" && flags.format != "json") {
    std::fprintf(stderr, "lapce-ai sessions %s: --format must be md or json\n", verb);
    return kExitUsage;
  }
  Result<std::unique_ptr<agent::SessionStore>> store = OpenStore();
  if (!store.ok()) {
    std::fprintf(stderr, "lapce-ai sessions: %s\n", store.error().message().c_str());
    return kExitFailure;
  }
  Result<Loaded> loaded = LoadStored(**store, flags.id);
  if (!loaded.ok()) {
    std::fprintf(stderr, "lapce-ai sessions %s: %s\n", verb, loaded.error().message().c_str());
    // An id prefix that names several sessions is the user's to change; the rest (not found, a
    // damaged store) failed.
    return loaded.error().code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  const std::string_view status = (*store)->ShownStatus(loaded->record);
  std::string text =
      flags.format == "json"
          ? agent::ExportJson(loaded->record, loaded->messages, loaded->events, status)
          : agent::ExportMarkdown(loaded->record, loaded->messages, loaded->events, status);
  if (flags.output.empty()) {
    // What the model and its commands said cannot retitle or clear the user's terminal.
    if (::isatty(STDOUT_FILENO) == 1) text = Visible(text);
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
    return kExitOk;
  }
  // The user's own (0600, as the store), never written through a link planted there, and a
  // file whole or not at all (a full disk left an empty file in place of an earlier export):
  // written beside it and renamed over it. A pipe or device (-o /dev/null, a FIFO) is written to,
  // never replaced; so is a file with other hard links, which a rename would part from it.
  struct stat existing;
  const bool exists = ::lstat(flags.output.c_str(), &existing) == 0;
  if (exists && S_ISLNK(existing.st_mode)) {
    std::fprintf(stderr,
                 "lapce-ai sessions %s: cannot write '%s': it is a symbolic link (name a file)\n",
                 verb, flags.output.c_str());
    return kExitFailure;
  }
  const bool is_in_place = exists && (!S_ISREG(existing.st_mode) || existing.st_nlink > 1);
  std::string temporary = flags.output + ".XXXXXX";
  UniqueFd out(is_in_place
                   ? ::open(flags.output.c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
                   : ::mkstemp(temporary.data()));
  bool written = out.is_valid();
  for (size_t done = 0; written && done < text.size();) {
    ssize_t n = ::write(out.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    written = n > 0;
    if (written) done += static_cast<size_t>(n);
  }
  if (!is_in_place) {
    written = written && ::fsync(out.get()) == 0 &&
              ::rename(temporary.c_str(), flags.output.c_str()) == 0;
  }
  if (!written) {
    int error = errno;
    if (out.is_valid() && !is_in_place) ::unlink(temporary.c_str());
    std::fprintf(stderr, "lapce-ai sessions %s: cannot write '%s': %s\n", verb,
                 flags.output.c_str(), std::strerror(error));
    return kExitFailure;
  }
  std::fprintf(stderr, "wrote %s\n", flags.output.c_str());
  return kExitOk;
}

// Deletes one session (and its subtasks) named by id or prefix; false, said on stderr, when not.
bool DeleteOneSession(agent::SessionStore& store, const std::string& id) {
  Result<std::optional<agent::SessionRecord>> record = store.FindSession(id);
  if (!record.ok() || !*record) {
    std::fprintf(
        stderr, "lapce-ai sessions delete: %s\n",
        record.ok() ? ("no session '" + id + "'").c_str() : record.error().message().c_str());
    return false;
  }
  // Its subtasks go with it (the store deletes them too): say how many.
  size_t subtasks = 0;
  agent::ListOptions every;
  every.include_children = true;
  if (Result<std::vector<agent::SessionRecord>> all = store.ListSessions(every); all.ok()) {
    std::vector<std::string> parents = {(*record)->id};
    for (size_t next = 0; next < parents.size(); ++next) {
      for (const agent::SessionRecord& each : *all) {
        if (each.parent_id == parents[next]) parents.push_back(each.id);
      }
    }
    subtasks = parents.size() - 1;
  }
  if (Status deleted = store.DeleteSession((*record)->id); !deleted.ok()) {
    std::fprintf(stderr, "lapce-ai sessions delete: %s\n", deleted.error().message().c_str());
    return false;
  }
  if (subtasks == 0) {
    std::printf("deleted %s\n", (*record)->id.c_str());
  } else {
    std::printf("deleted %s and its %zu subtask%s\n", (*record)->id.c_str(), subtasks,
                subtasks == 1 ? "" : "s");
  }
  return true;
}

// Each id is deleted on its own: one that fails (unknown, open elsewhere) is said and the rest
// still go; the exit status is 1 when any failed.
int SessionsDelete(const SessionsFlags& flags) {
  Result<std::unique_ptr<agent::SessionStore>> store = OpenStore();
  if (!store.ok()) {
    std::fprintf(stderr, "lapce-ai sessions: %s\n", store.error().message().c_str());
    return kExitFailure;
  }
  bool all_deleted = true;
  for (const std::string& id : flags.ids)
    all_deleted = DeleteOneSession(**store, id) && all_deleted;
  // The file shrinks once much of it is deleted sessions (they were kept as free pages for ever).
  if (Result<bool> compacted = (*store)->Compact(); !compacted.ok()) {
    std::fprintf(stderr, "lapce-ai sessions delete: %s\n", compacted.error().message().c_str());
  }
  return all_deleted ? kExitOk : kExitFailure;
}

int SessionsResume(const Config& config, AgentFlags flags, const std::string& id) {
  ReadPromptFromStdin(flags.prompt);
  BlockInterrupts();
  Result<std::unique_ptr<server::AgentStack>> stack = StackFor(config, flags);
  if (!stack.ok()) {
    std::fprintf(stderr, "lapce-ai sessions resume: %s\n", stack.error().message().c_str());
    return kExitUsage;
  }
  std::string workspace;
  std::string stored_profile;
  if ((*stack)->store) {
    Result<std::optional<agent::SessionRecord>> record = (*stack)->store->FindSession(id);
    if (record.ok() && *record) {
      workspace = (*record)->workspace;
      stored_profile = (*record)->profile;
    }
  }
  // `--model` alone: that model in the profile the session was stored with (it changed the
  // default profile's model, which another profile's session never used). A one-off profile has
  // to be named again whole (LoadSession says so).
  if (!flags.model.empty() && !NamesAProfile(flags) && !stored_profile.empty() &&
      stored_profile != llm::kAdHocProfileName) {
    flags.profile = stored_profile;
    stack->reset();  // One store open at a time.
    stack = StackFor(config, flags);
    if (!stack.ok()) {
      std::fprintf(stderr, "lapce-ai sessions resume: %s\n", stack.error().message().c_str());
      return kExitUsage;
    }
  }
  Result<std::shared_ptr<agent::McpServers>> mcp = UserMcpFor(config, workspace);
  if (!mcp.ok()) {
    std::fprintf(stderr, "lapce-ai sessions resume: %s\n", mcp.error().message().c_str());
    return kExitUsage;
  }
  Result<std::shared_ptr<agent::Session>> session = (*stack)->engine->LoadSession(
      id, std::move(*mcp), flags.mode, false,
      NamesAProfile(flags) ? std::optional<std::string>("") : std::nullopt);
  if (!session.ok()) {
    bool bad_mode = !flags.mode.empty() && session.error().message().starts_with("unknown mode");
    std::fprintf(stderr, "lapce-ai sessions resume: %s%s\n", bad_mode ? "--mode: " : "",
                 session.error().message().c_str());
    // kInvalidArgument: the mode or the provider profile has to be named again.
    return bad_mode || session.error().code() == ErrorCode::kInvalidArgument ? kExitUsage
                                                                             : kExitFailure;
  }
  if (Status key = (*stack)->pool->CheckKey((*session)->Info().profile); !key.ok()) {
    std::fprintf(stderr, "lapce-ai sessions resume: %s\n", key.error().message().c_str());
    return kExitUsage;
  }
  if (!flags.mode.empty()) {  // As session/set_mode: recorded, and the next request uses it.
    if (Status status = (*session)->SetMode(flags.mode, nullptr); !status.ok()) {
      std::fprintf(stderr, "lapce-ai sessions resume: --mode: %s\n",
                   status.error().message().c_str());
      return kExitUsage;
    }
  }
  if (flags.prompt.empty()) {
    // A session that finished, or waits for the user's answer, goes on with what the user says;
    // only an interrupted one is resumed as it was (a request spent on nothing otherwise).
    agent::SessionStatus status = (*session)->Info().status;
    bool awaits_user = status == agent::SessionStatus::kCompleted ||
                       status == agent::SessionStatus::kWaiting ||
                       status == agent::SessionStatus::kStopped;
    if (!awaits_user) {
      flags.prompt = "[TASK RESUMPTION] Resuming task...";
    } else if (::isatty(STDIN_FILENO) == 1 && !flags.json) {
      std::fprintf(stderr, "(session %s is %s: what next? /help lists commands)\n",
                   (*session)->id().c_str(), std::string(agent::SessionStatusName(status)).c_str());
      if (!ReadMessage(**session, nullptr, flags.prompt)) return kExitOk;
    } else {
      std::fprintf(stderr,
                   "lapce-ai sessions resume: session %s is %s; say what to do next: "
                   "`lapce-ai sessions resume %s \"your message\"`\n",
                   (*session)->id().c_str(), std::string(agent::SessionStatusName(status)).c_str(),
                   (*session)->id().c_str());
      return kExitUsage;
    }
  }
  return Drive(**session, *session, flags.prompt, flags, *(*stack)->pool);
}

void AddAgentFlags(CLI::App& command, AgentFlags& flags) {
  AddProviderFlags(command, flags);
  AddAgentModeFlags(command, flags);
}

constexpr const char* kRunFooter =
    "Exit status: 0 the task is done; 1 it failed; 2 bad usage; 3 the agent waits for your reply "
    "(a question, or a limit reached) and nobody could answer here: `lapce-ai sessions resume ID "
    "\"reply\"` continues; 130 cancelled.\nAt a terminal, after each turn: type your reply, "
    "/mode SLUG to switch modes, /help for more, or an empty line to end.";

}  // namespace

int AcpWithBadArguments(const std::string& message) {
  return AcpRefusingEverySession("the agent's arguments are wrong: " + message);
}

void AddAgentCommands(CLI::App& app, CLI::App& bench, CommandRun& run,
                      BadConfigRun& on_bad_config) {
  AddBenchAgentCommand(bench, run);
  auto run_flags = std::make_shared<AgentFlags>();
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Run a task with the agent in a directory, streaming its work; Ctrl-C cancels the "
      "turn, twice exits");
  run_cmd->add_option("task", run_flags->prompt, "What to do ('-' reads standard input)");
  AddAgentFlags(*run_cmd, *run_flags);
  run_cmd->add_option("--cwd", run_flags->cwd, "Workspace directory (default: the current one)");
  run_cmd->add_flag("--yes,-y", run_flags->yes, "Approve every tool call without asking");
  run_cmd->add_flag("--json", run_flags->json, "Print one JSON event per line");
  run_cmd->footer(kRunFooter);
  run_cmd->callback([&run, run_flags] {
    run = [run_flags](const Config& config) { return Run(config, *run_flags); };
  });

  auto acp_flags = std::make_shared<AgentFlags>();
  CLI::App* acp_cmd = app.add_subcommand(
      "acp",
      "Serve the Agent Client Protocol (v1) on stdin/stdout for Zed, JetBrains, Neovim, "
      "Emacs; logs go to stderr");
  AddAgentFlags(*acp_cmd, *acp_flags);
  acp_cmd->add_flag("--yes,-y", acp_flags->yes, "Approve every tool call without asking");
  acp_cmd->callback([&run, &on_bad_config, acp_flags] {
    run = [acp_flags](const Config& config) { return Acp(config, *acp_flags); };
    on_bad_config = AcpWithoutConfig;
  });

  CLI::App* sessions_cmd =
      app.add_subcommand("sessions", "Stored sessions: list, show, resume, export, delete");
  sessions_cmd->require_subcommand(1);
  auto sessions = std::make_shared<SessionsFlags>();
  CLI::App* list_cmd = sessions_cmd->add_subcommand("list", "Sessions, newest first");
  list_cmd->add_option("--limit", sessions->limit, "How many, newest first (default 20; 0: all)")
      ->check(CLI::Range(0, 1000000));
  list_cmd->add_option("--cwd", sessions->cwd, "Only sessions of this workspace");
  list_cmd->add_flag("--all", sessions->all, "Include subtasks");
  list_cmd->add_flag("--json", sessions->json, "Print JSON");
  list_cmd->callback(
      [&run, sessions] { run = [sessions](const Config&) { return SessionsList(*sessions); }; });
  CLI::App* show_cmd = sessions_cmd->add_subcommand("show", "Print a session as Markdown");
  show_cmd->add_option("id", sessions->id, "Session id (or a unique prefix)")->required();
  show_cmd->callback([&run, sessions] {
    run = [sessions](const Config&) { return SessionsShowOrExport(*sessions, false); };
  });
  CLI::App* export_cmd = sessions_cmd->add_subcommand("export", "Export a session");
  export_cmd->add_option("id", sessions->id, "Session id (or a unique prefix)")->required();
  export_cmd->add_option("--format", sessions->format, "md (default) or json");
  export_cmd->add_option("-o,--output", sessions->output, "Write to this file (default: stdout)");
  export_cmd->callback([&run, sessions] {
    run = [sessions](const Config&) { return SessionsShowOrExport(*sessions, true); };
  });
  CLI::App* delete_cmd =
      sessions_cmd->add_subcommand("delete", "Delete sessions (with their subtasks)");
  delete_cmd->add_option("ids", sessions->ids, "Session ids (or unique prefixes)")->required();
  delete_cmd->callback(
      [&run, sessions] { run = [sessions](const Config&) { return SessionsDelete(*sessions); }; });
  auto resume = std::make_shared<AgentFlags>();
  CLI::App* resume_cmd = sessions_cmd->add_subcommand(
      "resume", "Continue a session where it stopped (optionally with a new message)");
  resume_cmd->add_option("id", sessions->id, "Session id (or a unique prefix)")->required();
  resume_cmd->add_option("message", resume->prompt,
                         "What to tell the agent ('-' reads standard input)");
  AddAgentFlags(*resume_cmd, *resume);
  resume_cmd->add_flag("--yes,-y", resume->yes, "Approve every tool call without asking");
  resume_cmd->add_flag("--json", resume->json, "Print one JSON event per line");
  resume_cmd->footer(kRunFooter);
  resume_cmd->callback([&run, resume, sessions] {
    run = [resume, sessions](const Config& config) {
      return SessionsResume(config, *resume, sessions->id);
    };
  });
}

}  // namespace lai::cli
