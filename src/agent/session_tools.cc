// A session's tool calls: running the workspace, session and MCP tools a model calls, and the
// approvals they need (the policy, then the user's answers, "always" answers kept).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/internal/session_turn.h"
#include "agent/modes.h"
#include "agent/session_tool_specs.h"
#include "agent/tools/responses.h"
#include "base/strings.h"

namespace lai::agent {

using nlohmann::json;

namespace internal {

std::vector<Suggestion> SuggestionsOf(const json& args) {
  std::vector<Suggestion> suggestions;
  auto it = args.is_object() ? args.find("follow_up") : args.end();
  if (it == args.end() || !it->is_array()) return suggestions;
  for (const json& suggestion : *it) {
    Suggestion& added = suggestions.emplace_back();
    added.text = suggestion.is_object()   ? suggestion.value("text", "")
                 : suggestion.is_string() ? suggestion.get<std::string>()
                                          : suggestion.dump();
    if (suggestion.is_object() && suggestion.contains("mode") && suggestion["mode"].is_string()) {
      added.mode = suggestion["mode"].get<std::string>();
    }
  }
  return suggestions;
}

}  // namespace internal

using internal::NowMs;
using internal::PlanOf;
using internal::Suggestion;
using internal::SuggestionsOf;
using internal::TextUpdate;
using internal::ToolCall;

namespace {

// An edit's diff as clients get it (and the store keeps it): the whole texts of a small file;
// of a large one, the changed lines with three on each side, a note of the lines left out
// before and after, lines of context cut at kDiffLineBytes, and the change itself at
// kDiffTextBytes from where it starts (each edit of a 20 MB file stored it twice and sent it
// whole to the editor and the terminal).
constexpr size_t kDiffTextBytes = 256 << 10;
constexpr size_t kDiffLineBytes = 1 << 10;
ToolCallContent EditDiff(std::string path, std::optional<std::string_view> old_text,
                         std::string_view new_text) {
  ToolCallContent diff;
  diff.kind = ToolCallContent::Kind::kDiff;
  diff.path = std::move(path);
  if (!old_text || old_text->size() + new_text.size() <= kDiffTextBytes) {
    if (old_text) diff.old_text = std::string(*old_text);
    diff.new_text = std::string(new_text);
    return diff;
  }
  const std::string_view a = *old_text;
  const std::string_view b = new_text;
  const size_t shorter = std::min(a.size(), b.size());
  size_t same_head = 0;
  while (same_head < shorter && a[same_head] == b[same_head]) ++same_head;
  size_t change = a.rfind('\n', same_head == 0 ? 0 : same_head - 1);  // Its line's start.
  change = same_head == 0 || change == std::string_view::npos ? 0 : change + 1;
  size_t same_tail = 0;
  while (same_tail < shorter - change &&
         a[a.size() - 1 - same_tail] == b[b.size() - 1 - same_tail]) {
    ++same_tail;
  }
  size_t change_end = a.find('\n', a.size() - same_tail);  // Its last line's end (in a).
  change_end = change_end == std::string_view::npos ? a.size() : change_end + 1;
  const size_t from_end = a.size() - change_end;  // The same distance from b's end.
  // Three lines on each side, each cut short.
  auto clipped = [](std::string_view line) {
    if (line.size() <= kDiffLineBytes) return std::string(line);
    return std::string(line.substr(0, Utf8CutPosition(line, kDiffLineBytes))) + " […]\n";
  };
  std::string before;
  size_t head = change;
  for (int k = 0; k < 3 && head > 0; ++k) {
    size_t start = head >= 2 ? a.rfind('\n', head - 2) : std::string_view::npos;
    start = start == std::string_view::npos ? 0 : start + 1;
    before.insert(0, clipped(a.substr(start, head - start)));
    head = start;
  }
  std::string after;
  size_t tail = change_end;
  for (int k = 0; k < 3 && tail < a.size(); ++k) {
    size_t next = a.find('\n', tail);
    next = next == std::string_view::npos ? a.size() : next + 1;
    after += clipped(a.substr(tail, next - tail));
    tail = next;
  }
  if (head > 0) {
    size_t lines = static_cast<size_t>(std::count(a.begin(), a.begin() + head, '\n'));
    before.insert(0, "[… " + std::to_string(lines) + " lines above not shown]\n");
  }
  if (tail < a.size()) after += "[… more lines below not shown]\n";
  // The change, from where it starts (in a line too long to show whole, from just before it).
  const size_t shown_from =
      same_head > change + kDiffLineBytes ? same_head - kDiffLineBytes : change;
  auto changed = [&](std::string_view text) {
    const size_t end = std::max(text.size() - from_end, shown_from);
    std::string_view part = text.substr(shown_from, end - shown_from);
    std::string out = shown_from > change ? "[…] " : "";
    size_t cut = Utf8CutPosition(part, std::min(part.size(), kDiffTextBytes / 2));
    out += part.substr(0, cut);
    if (cut < part.size()) {
      out += "\n[… " + std::to_string(part.size() - cut) + " more bytes of the change not shown]\n";
    }
    return before + out + after;
  };
  diff.old_text = changed(a);
  diff.new_text = changed(b);
  return diff;
}

ToolKind KindOfTool(std::string_view name) {
  if (name == "read_file" || name == "list_files") return ToolKind::kRead;
  if (name == "search_files") return ToolKind::kSearch;
  if (name == "write_to_file" || name == "apply_diff" || name == "insert_content" ||
      name == "search_and_replace")
    return ToolKind::kEdit;
  if (name == "delete_file") return ToolKind::kDelete;
  if (name == "execute_command") return ToolKind::kExecute;
  if (name == "switch_mode") return ToolKind::kSwitchMode;
  if (name == "access_mcp_resource") return ToolKind::kFetch;
  if (name == "update_todo_list" || name == "ask_followup_question" || name == "attempt_completion")
    return ToolKind::kThink;
  return ToolKind::kOther;
}

// The path-ish argument of a call, for titles, locations and mode file restrictions.
std::string FirstPathArgument(const json& args) {
  if (!args.is_object()) return {};
  if (auto it = args.find("path"); it != args.end() && it->is_string()) return *it;
  if (auto it = args.find("files"); it != args.end() && it->is_array() && !it->empty()) {
    const json& first = (*it)[0];
    if (first.is_object() && first.contains("path") && first["path"].is_string()) {
      return first["path"];
    }
  }
  return {};
}

// The files (and first lines) a call works on, as the model named them, for the editor to
// follow: every file of a read_file call, with its first range's line; insert_content's line;
// apply_diff's first :start_line:.
std::vector<std::pair<std::string, int64_t>> ToolTargets(std::string_view name, const json& args) {
  std::vector<std::pair<std::string, int64_t>> targets;
  if (!args.is_object()) return targets;
  auto leading_number = [](const json& value) -> int64_t {
    if (value.is_number_integer()) return std::max<int64_t>(0, value.get<int64_t>());
    if (!value.is_string()) return 0;
    const std::string& text = value.get_ref<const std::string&>();
    int64_t number = 0;
    for (size_t i = 0; i < text.size() && i < 9 && text[i] >= '0' && text[i] <= '9'; ++i) {
      number = number * 10 + (text[i] - '0');
    }
    return number;
  };
  if (auto files = args.find("files");
      name == "read_file" && files != args.end() && files->is_array()) {
    for (const json& file : *files) {
      if (!file.is_object() || !file.contains("path") || !file["path"].is_string()) continue;
      int64_t line = 0;
      if (auto ranges = file.find("line_ranges");
          ranges != file.end() && ranges->is_array() && !ranges->empty()) {
        const json& first = (*ranges)[0];
        line =
            leading_number(first.is_object() && first.contains("start") ? first["start"] : first);
      }
      targets.emplace_back(file["path"].get<std::string>(), line);
    }
    return targets;
  }
  std::string path = FirstPathArgument(args);
  if (path.empty()) return targets;
  int64_t line = 0;
  if (name == "insert_content" && args.contains("line")) line = leading_number(args["line"]);
  if (name == "apply_diff" && args.contains("diff") && args["diff"].is_string()) {
    const std::string& diff = args["diff"].get_ref<const std::string&>();
    if (size_t at = diff.find(":start_line:"); at != std::string::npos) {
      line = leading_number(json(diff.substr(at + 12, 9)));
    }
  }
  targets.emplace_back(std::move(path), line);
  return targets;
}

// delete_file of a directory, in a mode whose edits are limited to files matching a pattern:
// deleting it edits every file in it, so the refusal naming the first one the mode may not edit;
// nullopt when all may be (or `path` is no directory in the workspace, which the tool reports).
std::optional<std::string> CheckDirectoryDeletion(const workspace::Workspace& workspace,
                                                  const ModeConfig& mode, const std::string& path) {
  bool is_limited = std::any_of(mode.groups.begin(), mode.groups.end(), [](const auto& entry) {
    return entry.group == ToolGroup::kEdit && !entry.file_regex.empty();
  });
  if (!is_limited) return std::nullopt;
  Result<workspace::ResolvedPath> resolved = workspace.Resolve(path, /*allow_outside=*/false);
  std::error_code error;
  if (!resolved.ok() || !std::filesystem::is_directory(resolved->absolute, error)) {
    return std::nullopt;
  }
  constexpr size_t kMaxEntries = 100'000;
  size_t seen = 0;
  auto it = std::filesystem::recursive_directory_iterator(
      resolved->absolute, std::filesystem::directory_options::skip_permission_denied, error);
  for (; !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (++seen > kMaxEntries) {
      return "The directory '" + path + "' holds more than " + std::to_string(kMaxEntries) +
             " entries, too many to check against mode '" + mode.slug +
             "''s file restriction. Delete the matching files one by one.";
    }
    if (it->is_directory(error)) continue;
    std::string relative = it->path().lexically_relative(workspace.root()).string();
    if (Status allowed = CheckToolAllowed(mode, "delete_file", relative); !allowed.ok()) {
      return "Deleting the directory '" + path + "' would delete '" + relative +
             "', which this mode may not edit: " + allowed.error().message();
    }
  }
  return std::nullopt;
}

std::string ToolTitle(std::string_view name, const json& args) {
  // A call without the argument its title shows (a malformed one) is titled by its name: "Write "
  // and "Run ``" said nothing.
  std::string path = FirstPathArgument(args);
  auto string_arg = [&](const char* key) -> std::string {
    if (args.is_object() && args.contains(key) && args[key].is_string()) return args[key];
    return {};
  };
  const bool shows_path = name == "read_file" || name == "write_to_file" || name == "apply_diff" ||
                          name == "insert_content" || name == "search_and_replace" ||
                          name == "delete_file";
  if ((shows_path && path.empty()) ||
      (name == "execute_command" && string_arg("command").empty())) {
    return std::string(name);
  }
  if (name == "execute_command") return "Run `" + string_arg("command") + "`";
  if (name == "read_file") {
    std::vector<std::pair<std::string, int64_t>> files = ToolTargets(name, args);
    std::string title = "Read " + path;
    for (size_t i = 1; i < files.size() && i < 3; ++i) title += ", " + files[i].first;
    if (files.size() > 3) title += " and " + std::to_string(files.size() - 3) + " more";
    return title;
  }
  if (name == "list_files") return "List " + (path.empty() ? std::string(".") : path);
  if (name == "search_files") return "Search '" + string_arg("regex") + "' in " + path;
  if (name == "write_to_file") return "Write " + path;
  if (name == "apply_diff" || name == "insert_content" || name == "search_and_replace")
    return "Edit " + path;
  if (name == "delete_file") return "Delete " + path;
  if (name == "switch_mode") return "Switch to " + string_arg("mode_slug") + " mode";
  if (name == "new_task") return "New " + string_arg("mode") + " subtask";
  if (name == "update_todo_list") return "Update todo list";
  if (name == "use_mcp_tool") {
    std::string tool = string_arg("tool_name");
    return string_arg("server_name") + (tool.empty() ? "" : ": " + tool);
  }
  if (name == "access_mcp_resource") {
    return "Read " + string_arg("uri") + " from " + string_arg("server_name");
  }
  return std::string(name);
}

bool IsSessionTool(std::string_view name) { return FindSessionToolSpec(name) != nullptr; }

// Session tools the client sees as tool calls (the others show as text, a plan or a mode change).
bool ShowsAsToolCall(std::string_view name) {
  return !IsSessionTool(name) || name == "switch_mode" || name == "new_task" ||
         name == "use_mcp_tool" || name == "access_mcp_resource";
}

// The server and tool a native call of McpFunctionName(server, tool) means; nullopt when none.
std::optional<std::pair<std::string, std::string>> FindMcpFunction(
    std::string_view name, const std::vector<McpServerInfo>& mcp_servers) {
  if (!name.starts_with("mcp--")) return std::nullopt;
  for (const McpServerInfo& server : mcp_servers) {
    for (const McpTool& tool : server.tools) {
      if (McpFunctionName(server.name, tool.name) == name) {
        return std::make_pair(server.name, tool.name);
      }
    }
  }
  return std::nullopt;
}

}  // namespace

// ---- The tool host a session gives the workspace tools: approvals through the policy, then
// the client.
namespace {

class SessionToolHost : public ToolHost {
 public:
  using AskFunction = std::function<ApprovalReply(const ApprovalRequest&)>;
  using OutputFunction = std::function<void(std::string_view)>;
  SessionToolHost(AskFunction ask, OutputFunction output, const ModeConfig& mode)
      : ask_(std::move(ask)), output_(std::move(output)), mode_(mode) {}
  void OnOutput(std::string_view chunk) override { output_(chunk); }
  Status MayWrite(std::string_view relative_path) override {
    return CheckCommandWrite(mode_, relative_path);
  }
  ApprovalReply Ask(const ApprovalRequest& request) override {
    if (request.has_texts) {
      edit_.emplace();
      edit_->target = request.target;
      if (request.old_text) edit_->old_text = std::string(*request.old_text);
      edit_->new_text = std::string(request.new_text);
    }
    return ask_(request);
  }
  // The last edit the tool asked about: its texts, for the ACP diff content.
  struct Edit {
    std::string target;
    std::optional<std::string> old_text;
    std::string new_text;
  };
  const std::optional<Edit>& edit() const { return edit_; }

 private:
  AskFunction ask_;
  OutputFunction output_;
  const ModeConfig& mode_;
  std::optional<Edit> edit_;
};

}  // namespace

// Applies an "always" answer, as kept in State::always_answers ({"answer": "allow" | "reject",
// "kind", "tool", "target"}), to the session's approvals; one of unknown kind (from a newer
// lapce-ai) is ignored. Under mutex_.
void Session::AdoptAlwaysAnswersLocked(const json& answers) {
  for (const json& answer : answers) {
    json& kept = state_->always_answers;
    if (std::find(kept.begin(), kept.end(), answer) != kept.end()) continue;
    ApplyAlwaysAnswerLocked(answer);
    kept.push_back(answer);
  }
}

void Session::ApplyAlwaysAnswerLocked(const json& answer) {
  State& state = *state_;
  if (!answer.is_object()) return;
  const bool allow = answer.value("answer", "") == "allow";
  const std::string kind_name = answer.value("kind", "");
  if (allow && kind_name == "mode_switch") state.approvals.mode_switch = true;
  if (allow && kind_name == "subtasks") state.approvals.subtasks = true;
  if (allow && kind_name == "mcp") state.allowed_mcp.insert(answer.value("target", ""));
  if (!allow && (kind_name == "mode_switch" || kind_name == "subtasks")) {
    state.rejected_session.insert(kind_name);
  }
  if (!allow && kind_name == "mcp")
    state.rejected_session.insert("mcp " + answer.value("target", ""));
  std::optional<ApprovalKind> kind = ParseApprovalKind(kind_name);
  if (!kind) return;
  ApprovalRequest request{*kind, answer.value("tool", ""), answer.value("target", ""), ""};
  if (allow) {
    GrantAlways(state.approvals, request);
  } else if (request.kind == ApprovalKind::kCommand) {
    state.rejected_commands.push_back(request.target);
  } else {
    state.rejected_always.insert(request.kind);
  }
}

bool Session::Turn::AskSession(SessionApprovalKind kind, ToolCallInfo info, std::string* feedback,
                               const std::string& what) {
  // One MCP tool's "always" is that tool's (as Kilo Code's alwaysAllow), not every server's.
  const char* name = kind == SessionApprovalKind::kModeSwitch ? "mode_switch"
                     : kind == SessionApprovalKind::kSubtask  ? "subtasks"
                     : kind == SessionApprovalKind::kMcp      ? "mcp"
                                                              : nullptr;
  if (name != nullptr &&
      state.rejected_session.count(kind == SessionApprovalKind::kMcp ? "mcp " + what : name)) {
    return false;
  }
  if (Decide(kind, state.approvals) == Decision::kApprove) return true;
  if (kind == SessionApprovalKind::kMcp && state.allowed_mcp.count(what) != 0) return true;
  PermissionRequest request;
  request.tool = std::move(info);
  PermissionReply reply = client.RequestPermission(session.id_, request, session.cancelled_);
  if (feedback != nullptr) *feedback = reply.feedback;
  switch (reply.outcome) {
    case PermissionOutcome::kAllowAlways:
    case PermissionOutcome::kRejectAlways: {
      const bool allow = reply.outcome == PermissionOutcome::kAllowAlways;
      if (name == nullptr) return allow;
      json answer = {{"answer", allow ? "allow" : "reject"}, {"kind", name}, {"target", what}};
      {
        std::lock_guard lock(session.mutex_);
        session.ApplyAlwaysAnswerLocked(answer);
        state.always_answers.push_back(std::move(answer));
      }
      SaveRecord();
      return allow;
    }
    case PermissionOutcome::kAllowOnce:
      return true;
    case PermissionOutcome::kCancelled:
      session.cancelled_.store(true);
      return false;
    default:
      return false;
  }
}

Session::Turn::ToolOutcome Session::Turn::RunSessionTool(const ToolCall& call, const json& args,
                                                         ToolCallInfo& info) {
  ToolOutcome outcome;
  auto string_arg = [&](const char* key) -> std::string {
    auto it = args.find(key);
    if (it == args.end() || it->is_null()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  auto missing = [&](const char* key) {
    outcome.is_error = outcome.is_mistake = true;
    outcome.text = ForProtocol(MissingParameterText(key));
    return outcome;
  };
  const std::string& name = call.name;
  if (name == "attempt_completion") {
    std::string result = string_arg("result");
    if (result.empty()) return missing("result");
    {
      std::lock_guard lock(session.mutex_);
      state.completion_result = result;
      state.status = SessionStatus::kCompleted;
      state.awaiting = State::Awaiting::kFeedback;
    }
    Emit(TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, Paragraph(result)));
    outcome.ends_turn = true;
    return outcome;
  }
  if (name == "ask_followup_question") {
    std::string question = string_arg("question");
    if (question.empty()) return missing("question");
    std::string shown = Paragraph(question);
    std::vector<Suggestion> suggestions = SuggestionsOf(args);
    for (size_t i = 0; i < suggestions.size(); ++i) {
      shown += "\n" + std::to_string(i + 1) + ". " + suggestions[i].text;
      if (const ModeConfig* mode = FindMode(state.modes, suggestions[i].mode)) {
        shown += " (switches to " + mode->name + " mode)";
      }
    }
    {
      std::lock_guard lock(session.mutex_);
      state.suggestions = std::move(suggestions);
      state.awaiting = State::Awaiting::kAnswer;
      state.status = SessionStatus::kWaiting;
    }
    Emit(TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, std::move(shown)));
    outcome.ends_turn = true;
    return outcome;
  }
  if (name == "update_todo_list") {
    std::string todos = string_arg("todos");
    if (const auto it = args.find("todos"); it != args.end() && it->is_array()) {
      todos.clear();  // One item per string, as some models send them.
      for (const json& line : *it)
        todos += (line.is_string() ? line.get<std::string>() : "") + "\n";
    }
    if (todos.empty()) return missing("todos");
    std::vector<TodoItem> items = ParseTodoList(todos);
    if (items.empty()) {  // The list is kept as it was: nothing here replaces it.
      outcome.is_error = outcome.is_mistake = true;
      outcome.text = ToolErrorText(
          "The todos parameter holds no checklist items, so the todo list was left as it was. "
          "Write one item per line: \"[ ] pending task\", \"[-] task in progress\" or "
          "\"[x] completed task\".");
      return outcome;
    }
    {
      std::lock_guard lock(session.mutex_);
      state.todos = items;
    }
    SessionUpdate plan;
    plan.kind = SessionUpdate::Kind::kPlan;
    plan.plan = PlanOf(items);
    Emit(plan);
    outcome.text = "Todo list updated successfully.";
    return outcome;
  }
  if (name == "switch_mode") {
    std::string slug = string_arg("mode_slug");
    if (slug.empty()) return missing("mode_slug");
    const ModeConfig* target = FindMode(state.modes, slug);
    if (target == nullptr) {
      outcome.is_error = true;
      outcome.text = ToolErrorText("Invalid mode: " + slug);
      return outcome;
    }
    if (slug == state.mode) {
      outcome.text = "Already in " + target->name + " mode.";
      return outcome;
    }
    std::string feedback;
    if (!AskSession(SessionApprovalKind::kModeSwitch, info, &feedback)) {
      outcome.is_error = true;
      outcome.text = DeniedText(feedback);
      return outcome;
    }
    std::string from = state.mode;
    {
      std::lock_guard lock(session.mutex_);
      state.mode = slug;
    }
    Emit(TextUpdate(SessionUpdate::Kind::kCurrentModeUpdate, slug));
    SaveRecord();
    std::string reason = string_arg("reason");
    outcome.text = "Successfully switched from " + from + " mode to " + slug + " mode" +
                   (reason.empty() ? "." : " because: " + reason + ".") +
                   ApprovedFeedbackText(feedback);
    return outcome;
  }
  if (name == "new_task") {
    std::string mode = string_arg("mode");
    std::string message = string_arg("message");
    if (mode.empty()) return missing("mode");
    if (message.empty()) return missing("message");
    if (FindMode(state.modes, mode) == nullptr) {
      outcome.is_error = true;
      outcome.text = ToolErrorText("Invalid mode: " + mode);
      return outcome;
    }
    std::string feedback;
    if (!AskSession(SessionApprovalKind::kSubtask, info, &feedback)) {
      outcome.is_error = true;
      outcome.text = DeniedText(feedback);
      return outcome;
    }
    EmitRunning(call.id);  // The card runs while the subtask does.
    return RunSubtask(mode, message, string_arg("todos"));
  }
  if (name == "use_mcp_tool" || name == "access_mcp_resource") return RunMcp(call, args, info);
  outcome.is_error = outcome.is_mistake = true;
  outcome.text = ToolErrorText("Unknown tool '" + name + "'.");
  return outcome;
}

Session::Turn::ToolOutcome Session::Turn::RunMcp(const ToolCall& call, const json& args,
                                                 ToolCallInfo& info) {
  ToolOutcome outcome;
  auto fail = [&](std::string text, bool is_mistake) {
    outcome.is_error = true;
    outcome.is_mistake = is_mistake;
    outcome.text = ToolErrorText(text);
    return outcome;
  };
  const bool is_tool = call.name == "use_mcp_tool";
  auto text_arg = [&](const char* key) -> std::string {
    auto it = args.find(key);
    return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto missing = [&](const char* key) {
    outcome.is_error = outcome.is_mistake = true;
    outcome.text = ForProtocol(MissingParameterText(key));
    return outcome;
  };
  const std::string server_name = text_arg("server_name");
  if (server_name.empty()) return missing("server_name");
  const char* target_key = is_tool ? "tool_name" : "uri";
  const std::string target = text_arg(target_key);
  if (target.empty()) return missing(target_key);
  std::string arguments = "{}";
  if (auto it = args.find("arguments"); is_tool && it != args.end() && !it->is_null()) {
    // XML calls carry the arguments as JSON text.
    json value = it->is_string() ? json::parse(it->get<std::string>(), nullptr, false) : *it;
    if (!value.is_object()) {
      return fail(
          "The arguments of use_mcp_tool must be a JSON object following the tool's "
          "input schema ({} when it takes none).",
          true);
    }
    arguments = value.dump();
  }

  const McpServerInfo* server = nullptr;
  std::string names;
  for (const McpServerInfo& candidate : state.mcp_servers) {
    if (candidate.name == server_name) server = &candidate;
    names += (names.empty() ? "" : ", ") + candidate.name;
  }
  if (server == nullptr || !state.options.mcp) {
    return fail("No MCP server named '" + server_name +
                    "'. Connected servers: " + (names.empty() ? "none" : names) + ".",
                true);
  }
  bool always_allowed = false;  // By the user's own configuration of the server.
  if (is_tool) {
    std::string tools;
    bool found = false;
    for (const McpTool& tool : server->tools) {
      if (tool.name == target) {
        found = true;
        always_allowed = tool.always_allow;
      }
      tools += (tools.empty() ? "" : ", ") + tool.name;
    }
    if (!found) {
      return fail("MCP server '" + server_name + "' has no tool named '" + target +
                      "'. Its tools: " + (tools.empty() ? "none" : tools) + ".",
                  true);
    }
  }

  std::string feedback;
  std::string what = server_name + (is_tool ? " tool " + target : " resources");
  if (!always_allowed && !AskSession(SessionApprovalKind::kMcp, info, &feedback, what)) {
    outcome.is_error = true;
    outcome.text = DeniedText(feedback);
    return outcome;
  }
  EmitRunning(call.id);
  Result<McpOutcome> result =
      is_tool ? state.options.mcp->CallTool(server_name, target, arguments, &session.cancelled_)
              : state.options.mcp->ReadResource(server_name, target, &session.cancelled_);
  if (!result.ok()) return fail(result.error().message(), false);
  outcome.is_error = result->is_error;
  outcome.text = result->text.empty() ? "(no output)" : std::move(result->text);
  // What fits the model's window, as read_file gives (a large answer stopped the turn).
  if (const size_t room = ToolSettingsForRoom().room_bytes; outcome.text.size() > room) {
    const size_t cut = Utf8CutPosition(outcome.text, room);
    const size_t dropped = outcome.text.size() - cut;
    outcome.text.resize(cut);
    outcome.text += "\n[… " + std::to_string(dropped) +
                    " more bytes of this answer were cut to fit the context window]";
  }
  // Said in the text too: only some providers take a tool result's error flag (Kilo Code's
  // "Error:" prefix).
  if (outcome.is_error) outcome.text.insert(0, "Error:\n");
  outcome.text += ApprovedFeedbackText(feedback);
  return outcome;
}

void Session::Turn::ShowRefused(const ToolCall& call, const json& args, const std::string& reason) {
  SessionUpdate shown;
  shown.kind = SessionUpdate::Kind::kToolCall;
  shown.tool.id = call.id;
  shown.tool.title = call.name.empty() ? "(unnamed tool)" : ToolTitle(call.name, args);
  shown.tool.kind = KindOfTool(call.name);
  shown.tool.status = ToolStatus::kPending;
  shown.tool.raw_input_json = call.arguments_json;
  Emit(shown);
  SessionUpdate failed;
  failed.kind = SessionUpdate::Kind::kToolCallUpdate;
  failed.tool.id = call.id;
  failed.tool.status = ToolStatus::kFailed;
  failed.tool.content.push_back({});
  failed.tool.content.back().text = reason;
  Emit(failed);
}

Session::Turn::ToolOutcome Session::Turn::Execute(const ToolCall& call) {
  ToolOutcome outcome;
  // A call refused before it runs is still shown, as a failed tool call with the reason: the user
  // sees what the model tried and why it did not happen, as the model does.
  auto refuse = [&](const std::string& reason, bool is_mistake, const json& args) {
    // A call refused before the repetition check is a call all the same: the same call before
    // and after it was not made "several times in a row".
    state.repetition.Reset();
    outcome.is_error = true;
    outcome.is_mistake = is_mistake;
    std::string said = ForProtocol(reason);
    outcome.text = ToolErrorText(said);
    ShowRefused(call, args, said);
    return outcome;
  };
  if (!call.error.empty()) {
    json given = json::parse(call.arguments_json.empty() ? "{}" : call.arguments_json, nullptr,
                             /*allow_exceptions=*/false);
    return refuse(call.error, true, given.is_object() ? given : json::object());
  }
  if (Status fresh = RefreshWorkspace(); !fresh.ok()) {
    return refuse(fresh.error().message(), false, json::object());
  }
  // A native call of an MCP tool by its own function name is use_mcp_tool by another name.
  if (auto mcp_tool = FindMcpFunction(call.name, state.mcp_servers)) {
    json arguments = json::parse(call.arguments_json.empty() ? "{}" : call.arguments_json, nullptr,
                                 /*allow_exceptions=*/false);
    ToolCall as_use = call;
    as_use.name = "use_mcp_tool";
    as_use.arguments_json = json{{"server_name", mcp_tool->first},
                                 {"tool_name", mcp_tool->second},
                                 {"arguments", arguments.is_discarded() ? json(call.arguments_json)
                                                                        : std::move(arguments)}}
                                .dump();
    return Execute(as_use);
  }
  json args = json::parse(call.arguments_json.empty() ? "{}" : call.arguments_json, nullptr,
                          /*allow_exceptions=*/false);
  if (!args.is_object()) {
    constexpr size_t kShown = 300;
    std::string sent = call.arguments_json.substr(0, kShown);
    if (call.arguments_json.size() > kShown) sent += "…";
    return refuse("The arguments of " + call.name + " are not a JSON object (you sent: " + sent +
                      "). Call it again with a complete JSON object of its parameters.",
                  true, json::object());
  }
  // A mode the user switched to during the turn decides from its next request on; what a call
  // of this reply may do, it decides now (the user switched to ask to stop the edits).
  const ModeConfig* mode = FindMode(state.modes, state.mode);
  bool is_switched = false;  // A refusal then is the user's doing, not the model's mistake.
  {
    std::lock_guard lock(session.mutex_);
    if (const ModeConfig* next = FindMode(state.modes, state.pending_mode)) {
      mode = next;
      is_switched = true;
    }
  }
  std::string path = FirstPathArgument(args);
  // A mode's file limits judge the file the path leads to, seen from the root: "./src/a.ts"
  // and the absolute path are "src/a.ts"; a link "notes.md" to "main.py" does not let architect
  // edit code, nor "docs/../../x" a mode limited to "^docs/" edit outside the workspace ("../x").
  // A refusal is a mistake: a model insisting on what its mode forbids stops after three.
  std::string judged = path;
  if (!path.empty()) {
    if (Result<workspace::ResolvedPath> target = state.workspace->Resolve(path, true);
        target.ok()) {
      judged = state.workspace->FromRoot(*target);
    }
  }
  if (Status allowed = CheckToolAllowed(*mode, call.name, judged); !allowed.ok()) {
    return refuse(allowed.error().message(), !is_switched, args);
  }
  if (call.name == "delete_file" && !path.empty()) {
    // Deleting a directory edits every file in it: each must be one the mode may edit.
    if (std::optional<std::string> refusal =
            CheckDirectoryDeletion(*state.workspace, *mode, path)) {
      return refuse(*refusal, true, args);
    }
  }
  if (!state.repetition.Check(call.name, call.arguments_json)) {
    // The user is shown why and asked how to go on; the model is told to change course.
    refuse("Not run: the same call with the same arguments, several times in a row.", true, args);
    outcome.text = ToolErrorText("You called " + call.name +
                                 " with the same arguments several times in a row; it was not "
                                 "run again. Try a different approach.");
    outcome.stuck = ToolRepetitionText(call.name);
    return outcome;
  }
  bool is_session_tool = IsSessionTool(call.name);
  if (!is_session_tool && FindWorkspaceTool(call.name) == nullptr) {
    std::string unknown = "Unknown tool '" + call.name + "'.";
    if (call.name.starts_with("mcp--")) {  // An MCP server's, by its function name: which exist.
      std::string names;
      for (const McpServerInfo& server : state.mcp_servers) {
        names += (names.empty() ? "" : ", ") + server.name;
      }
      unknown += " No connected MCP server has it. Connected servers: " +
                 (names.empty() ? std::string("none") : names) + ".";
      for (const std::string& failure : state.mcp_failures) unknown += " " + failure + ".";
    }
    return refuse(unknown, true, args);
  }

  ToolCallInfo info;
  info.id = call.id;
  info.title = ToolTitle(call.name, args);
  info.kind = KindOfTool(call.name);
  info.status = ToolStatus::kPending;
  info.raw_input_json = call.arguments_json;
  for (const auto& [target, line] : ToolTargets(call.name, args)) {
    Result<workspace::ResolvedPath> resolved = state.workspace->Resolve(target, true);
    if (resolved.ok()) info.locations.push_back({resolved->absolute, line});
  }
  if (ShowsAsToolCall(call.name)) {
    SessionUpdate update;
    update.kind = SessionUpdate::Kind::kToolCall;
    update.tool = info;
    Emit(update);
  }
  if (is_session_tool) {
    outcome = RunSessionTool(call, args, info);
  } else {
    const Tool* tool = FindWorkspaceTool(call.name);  // Known: checked above.
    // pending → (permission) → in_progress: the call runs once its first approval is given.
    bool is_running = false;
    SessionToolHost host(
        [&](const ApprovalRequest& request) {
          ApprovalReply reply = Approve(request, info);
          if (reply.approved && !is_running) {
            is_running = true;
            EmitRunning(call.id);
          }
          return reply;
        },
        [&](std::string_view chunk) { client.OnToolOutput(session.id_, call.id, chunk); }, *mode);
    ToolSettings tool_settings = ToolSettingsForRoom();
    ToolContext context{*state.workspace, tool_settings,     host,   &session.cancelled_,
                        client.files(),   client.commands(), call.id};
    ToolResult result = tool->Run(call.arguments_json, context);
    outcome.text = ForProtocol(std::move(result.text));
    outcome.is_error = result.is_error;
    outcome.is_mistake =
        result.is_error && outcome.text.starts_with("Missing value for required parameter");
    SessionUpdate done;
    done.kind = SessionUpdate::Kind::kToolCallUpdate;
    done.tool.id = call.id;
    done.tool.status = result.is_error ? ToolStatus::kFailed : ToolStatus::kCompleted;
    if (const std::optional<SessionToolHost::Edit>& edit = host.edit(); !result.is_error && edit) {
      std::optional<std::string_view> old_text;
      if (edit->old_text) old_text = *edit->old_text;
      done.tool.content.push_back(
          EditDiff(info.locations.empty() ? edit->target : info.locations[0].path, old_text,
                   edit->new_text));
    }
    ToolCallContent text;
    text.text = outcome.text;
    done.tool.content.push_back(std::move(text));
    Emit(done);
    return outcome;
  }
  if (ShowsAsToolCall(call.name)) {
    SessionUpdate done;
    done.kind = SessionUpdate::Kind::kToolCallUpdate;
    done.tool.id = call.id;
    done.tool.status = outcome.is_error ? ToolStatus::kFailed : ToolStatus::kCompleted;
    // A subtask that stopped before completing: the call runs on, until it does.
    if (outcome.ends_turn && state.awaiting == State::Awaiting::kSubtask) {
      done.tool.status = ToolStatus::kInProgress;
    }
    ToolCallContent text;
    text.text = outcome.shown.empty() ? outcome.text : outcome.shown;
    done.tool.content.push_back(std::move(text));
    Emit(done);
  }
  return outcome;
}

ApprovalReply Session::Turn::Approve(const ApprovalRequest& request, const ToolCallInfo& call) {
  if (IsRejectedAlways(state.rejected_always, request)) return {false, {}};
  if (request.kind == ApprovalKind::kCommand && !state.rejected_commands.empty() &&
      DecideCommand(request.target, {}, state.rejected_commands) == Decision::kDeny) {
    return {false, "The user rejected this command for the rest of the session."};
  }
  Decision decision = Decide(request, state.approvals);
  if (decision == Decision::kApprove) return {true, {}};
  if (decision == Decision::kDeny) {
    return {false,
            "This is blocked by the user's deny list for commands (" + request.target + ")."};
  }
  PermissionRequest ask;
  ask.tool = call;
  ask.tool.status = ToolStatus::kPending;
  // Why it is asked, where the editor shows the question (it read "Read /home/u/.ssh/id_rsa",
  // like any read); and no "always": it would allow every file outside the workspace, or every
  // protected one (approvals.auto_approve's read_outside, write_outside, write_protected do).
  if (request.kind == ApprovalKind::kOutsideWorkspace) {
    ask.tool.title += " (outside the workspace)";
    ask.can_always = false;
  } else if (request.kind == ApprovalKind::kProtected) {
    ask.tool.title += " (a protected file: it configures lapce-ai, the editor or git)";
    ask.can_always = false;
  }
  if (request.kind == ApprovalKind::kCommand) {
    // A command reaching past the workspace or into protected files says so in its title too:
    // an allowed `cat ~/.ssh/id_rsa` is asked for that, not for being a command.
    if (!request.outside_paths.empty() || !request.outside_reads.empty()) {
      ask.tool.title += " (reaches outside the workspace)";
    }
    if (!request.protected_paths.empty()) {
      ask.tool.title += " (writes a protected file: it configures lapce-ai, the editor or git)";
    }
    // "Always" is offered only where it would hold: a command with $(…), a bare shell, or one
    // reaching outside the workspace is asked each time, whatever was answered before.
    AutoApproveSettings granted = state.approvals;
    GrantAlways(granted, request);
    ask.can_always = Decide(request, granted) == Decision::kApprove;
  }
  if (request.has_texts) {
    ask.tool.content.push_back(
        EditDiff(call.locations.empty() ? request.target : call.locations[0].path, request.old_text,
                 request.new_text));
  } else if (!request.detail.empty()) {
    ToolCallContent detail;
    detail.text = request.detail;
    ask.tool.content.push_back(std::move(detail));
  }
  PermissionReply reply = client.RequestPermission(session.id_, ask, session.cancelled_);
  // "Always" where it was not offered (a client that sends it all the same) is this once.
  if (!ask.can_always && reply.outcome == PermissionOutcome::kAllowAlways) {
    reply.outcome = PermissionOutcome::kAllowOnce;
  }
  // The user switched to a mode that does not allow the call while it awaited the answer (to
  // ask, say, to stop the edits): the switch wins.
  std::string new_mode;
  {
    std::lock_guard lock(session.mutex_);
    new_mode = state.pending_mode;
  }
  if (const ModeConfig* mode = FindMode(state.modes, new_mode);
      mode != nullptr && (reply.outcome == PermissionOutcome::kAllowOnce ||
                          reply.outcome == PermissionOutcome::kAllowAlways)) {
    std::string path = GroupOfTool(request.tool) == ToolGroup::kEdit ? request.target : "";
    if (Status allowed = CheckToolAllowed(*mode, request.tool, path); !allowed.ok()) {
      return {.refusal = "Not run: while this awaited approval the user switched to mode '" +
                         new_mode + "', which does not allow it. Go on in that mode."};
    }
  }
  switch (reply.outcome) {
    case PermissionOutcome::kAllowAlways:
    case PermissionOutcome::kRejectAlways: {
      bool allow = reply.outcome == PermissionOutcome::kAllowAlways;
      json answer = {{"answer", allow ? "allow" : "reject"},
                     {"kind", ApprovalKindName(request.kind)},
                     {"tool", request.tool},
                     {"target", request.target}};
      {
        std::lock_guard lock(session.mutex_);
        session.ApplyAlwaysAnswerLocked(answer);
        state.always_answers.push_back(std::move(answer));
      }
      SaveRecord();
      return {allow, reply.feedback};
    }
    case PermissionOutcome::kAllowOnce:
      return {true, reply.feedback};
    case PermissionOutcome::kRejectOnce:
      return {false, reply.feedback};
    case PermissionOutcome::kCancelled:
      session.cancelled_.store(true);
      return {false, {}, /*cancelled=*/true};
  }
  return {false, {}};
}

}  // namespace lai::agent
