// The auto-approval policy (Kilo's checkAutoApproval): which approval requests a session answers
// itself, command allow/deny prefix lists, request/cost limits, and the repetition and mistake
// counters of the turn loop. Functions are pure and thread-safe; the classes are thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/tools/tool.h"

namespace lai::agent {

// What the user auto-approves, category by category (the lead maps config keys onto it).
// Defaults: the master switch on, reads inside the workspace approved, everything else asked.
struct AutoApproveSettings {
  bool enabled = true;  // Master switch: off = ask for everything.
  bool read = true;     // Reading inside the workspace.
  bool read_outside_workspace = false;
  bool write = false;
  bool write_outside_workspace = false;  // Also deletes outside the workspace.
  bool write_protected = false;          // .kilocodemodes, .kilocode/, … (see workspace).
  bool delete_files = false;
  bool execute = false;  // Commands, filtered by the two lists below.
  bool mode_switch = false;
  bool subtasks = false;
  bool mcp = false;                 // Calling MCP tools and reading MCP resources.
  bool followup_questions = false;  // Answer a question with its first suggestion after a wait.
  int64_t followup_timeout_ms = 60000;
  // Prefixes, matched case-insensitively per sub-command; "*" allows anything not denied.
  std::vector<std::string> allowed_commands = {"git log", "git diff", "git show"};
  std::vector<std::string> denied_commands;
  // The commands the user answered "always" for in this session: approved (unless denied)
  // whether or not `execute` is, without the allowed list becoming active.
  std::vector<std::string> granted_commands;
  // A command that runs another's output ($(…), `…`, <(…)) is asked about even when allowed (no
  // prefix can vouch for what it becomes, as in Kilo Code), unless this is set (--yes: approve
  // everything) and no command is denied.
  bool substitutions = false;
  int64_t max_requests = 0;  // Model requests before asking to continue; 0 = unlimited.
  double max_cost_usd = 0;   // Task cost before asking to continue; 0 = unlimited.
};

enum class Decision {
  kApprove,  // Go ahead without asking.
  kAsk,      // Ask the user (ToolHost::Ask / the client).
  kDeny,     // Refuse without asking (a denied command): the model gets a denial.
};

// Approvals the session itself needs (not raised by a workspace tool).
// Whether the kinds a user rejected for good ("always reject") refuse `request`: its own kind,
// and for a rejected kWrite every write (protected paths, and outside the workspace) too.
bool IsRejectedAlways(const std::set<ApprovalKind>& rejected, const ApprovalRequest& request);

// Whether `request` writes (or deletes): kWrite, kProtected, and outside the workspace a tool
// other than a reading one.
bool IsWriteRequest(const ApprovalRequest& request);

// Records the user's "always" for `request` in `settings`: its kind, only in its direction (a
// read outside the workspace grants reads there, not writes); a command's parts, each.
void GrantAlways(AutoApproveSettings& settings, const ApprovalRequest& request);

// "read", "write", "delete", "outside", "protected", "command"; and back (nullopt: unknown).
std::string_view ApprovalKindName(ApprovalKind kind);
std::optional<ApprovalKind> ParseApprovalKind(std::string_view name);

enum class SessionApprovalKind {
  kModeSwitch,        // switch_mode
  kSubtask,           // new_task starting a child session
  kFinishSubtask,     // a child's attempt_completion returning to its parent
  kFollowupQuestion,  // ask_followup_question: kApprove = answer with the first suggestion after
                      // followup_timeout_ms unless the user answers first (needs a suggestion)
  kTodoUpdate,        // update_todo_list
  kMcp,               // use_mcp_tool, access_mcp_resource
};

// Kilo's table: nothing is auto-approved with the master switch off; reads need `read` (and
// `read_outside_workspace` outside); writes need `write` (and `write_outside_workspace`,
// `write_protected`); deletes need `delete_files` (plus the same outside/protected flags);
// commands need `execute` and then follow DecideCommand. An outside-workspace request is a read,
// write or delete according to request.tool.
Decision Decide(const ApprovalRequest& request, const AutoApproveSettings& settings);
Decision Decide(SessionApprovalKind kind, const AutoApproveSettings& settings);

// The simple commands of a command line: split at &&, ||, ;, |, |&, & and newlines outside quotes
// (single quotes literal, double quotes with backslash escapes), at subshell parentheses, with
// the commands inside $(…), `…`, <(…) and >(…) added as commands of their own. Trimmed; empty
// ones dropped.
std::vector<std::string> SplitCommand(std::string_view command);

// True when the line runs code that a prefix cannot vouch for: $(…), `…`, <(…), >(…), zsh =(…)
// and glob qualifiers (e:…:), ${…@P}-style transformations (@P @Q @E @A @a), ${!…} indirection,
// and ${…} holding backslash escapes. Not inside single quotes.
bool HasDangerousSubstitution(std::string_view command);

// Longest-prefix rule per sub-command (Kilo's getCommandDecision): a sub-command is denied when
// its longest denied prefix is at least as long as its longest allowed one, approved when an
// allowed prefix is longer, asked otherwise ("*" matches anything, as length 1; a trailing
// redirection like 2>&1 may be ignored for matching). Any denied sub-command denies the line;
// otherwise a dangerous substitution asks; otherwise all approved approves; otherwise asks.
// An empty command asks.
Decision DecideCommand(std::string_view command, const std::vector<std::string>& allowed,
                       const std::vector<std::string>& denied);

// ---- Limits ------------------------------------------------------------------------------------

struct LimitReached {
  enum class Kind { kRequests, kCost };
  Kind kind = Kind::kRequests;
  std::string message;  // What was reached, e.g. "Reached the limit of 20 model requests …".
};

// Kilo's auto-approval limits: before each model request, Check(); when it returns a limit, ask
// the user; on "continue" call Reset() (counting restarts), otherwise end the task. After a
// request is sent, RecordRequest(). Applies whenever a limit is set. Thread-compatible.
class ApprovalLimits {
 public:
  // The request about to be made counts.
  std::optional<LimitReached> Check(const AutoApproveSettings& settings) const;
  void RecordRequest() { ++requests_since_reset_; }
  void RecordCost(double usd) { cost_since_reset_usd_ += usd; }
  void Reset() {
    requests_since_reset_ = 0;
    cost_since_reset_usd_ = 0;
  }
  int64_t requests_since_reset() const { return requests_since_reset_; }

 private:
  int64_t requests_since_reset_ = 0;
  double cost_since_reset_usd_ = 0;
};

// ---- Turn-loop counters ------------------------------------------------------------------------

// Kilo's DEFAULT_CONSECUTIVE_MISTAKE_LIMIT.
inline constexpr int kDefaultMistakeLimit = 3;

// Identical consecutive tool calls (same name, same arguments after canonicalising the JSON:
// key order and whitespace do not matter). With limit L, the (L+1)-th identical call in a row is
// refused: the loop asks the user how to go on (Kilo's mistake_limit_reached) and the detector
// starts afresh. Thread-compatible.
class ToolRepetitionDetector {
 public:
  explicit ToolRepetitionDetector(int limit = kDefaultMistakeLimit) : limit_(limit) {}

  // Records the call; false when it must not run. limit 0 = never refuses.
  bool Check(std::string_view tool_name, std::string_view arguments_json);
  void Reset();

 private:
  int limit_;
  std::string previous_;  // name + '\n' + canonical arguments; empty = none.
  int repeats_ = 0;       // Identical calls after the first.
};

// The text for the user when ToolRepetitionDetector refuses a call.
std::string ToolRepetitionText(std::string_view tool_name);

// Consecutive mistakes (no tool used, a malformed call, a missing parameter, a repeated failing
// call); when the limit is reached the loop asks the user how to go on, then Reset()s.
// Thread-compatible.
class MistakeCounter {
 public:
  explicit MistakeCounter(int limit = kDefaultMistakeLimit) : limit_(limit) {}

  void Record() { ++count_; }
  void Reset() { count_ = 0; }
  // Never with limit 0 (unlimited).
  bool IsLimitReached() const { return limit_ > 0 && count_ >= limit_; }
  int count() const { return count_; }

 private:
  int limit_;
  int count_ = 0;
};

}  // namespace lai::agent
