#include "agent/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "agent/context.h"
#include "agent/environment.h"
#include "agent/mcp.h"
#include "agent/mentions.h"
#include "agent/message_json.h"
#include "agent/modes.h"
#include "agent/prompt.h"
#include "agent/rules.h"
#include "agent/session_tool_specs.h"
#include "agent/store.h"
#include "agent/thinking.h"
#include "agent/tools/responses.h"
#include "agent/xml_tools.h"
#include "base/check.h"
#include "base/strings.h"
#include "llm/pool.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NewSessionId() {
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}()};
  std::lock_guard lock(mutex);
  // Time first, so ids sort by creation; 52 random bits make collisions irrelevant. Always 24
  // hex digits: 11 of milliseconds (44 bits, until the year 2527) and 13 random.
  char id[40];
  std::snprintf(id, sizeof(id), "%011llx%013llx",
                static_cast<unsigned long long>(NowMs()) & 0xfffffffffffULL,
                static_cast<unsigned long long>(random()) & 0xfffffffffffffULL);
  return id;
}

// The result sent for a reply without a tool call (NoToolsUsedText): the error, the reminder of
// the session's protocol, the next steps.
constexpr std::string_view kNoToolsUsed =
    "[ERROR] You did not use a tool in your previous response! Please retry with a tool use.\n\n";
constexpr std::string_view kNoToolsUsedNativeReminder =
    "# Reminder: Instructions for Tool Use\n\n"
    "Every response must call exactly one tool. When the task is done, call attempt_completion "
    "with the result; when you need information from the user, call ask_followup_question.\n\n";
constexpr std::string_view kNoToolsUsedNext =
    "# Next Steps\n\n"
    "If you have completed the user's task, use the attempt_completion tool. If you require "
    "additional information from the user, use the ask_followup_question tool. Otherwise, if you "
    "have not completed the task and do not need additional information, then proceed with the "
    "next step of the task.\n(This is an automated message, so do not respond to it "
    "conversationally.)";

std::string NoToolsUsedText(ToolProtocol protocol) {
  std::string text(kNoToolsUsed);
  if (protocol == ToolProtocol::kXml) {
    text += kXmlToolUseReminder;
    text += "\n\n";
  } else {
    text += kNoToolsUsedNativeReminder;
  }
  text += kNoToolsUsedNext;
  return text;
}

constexpr std::string_view kOneToolOnly =
    "was not executed because a tool has already been used in this message. Only one tool may "
    "be used per message. You must assess the first tool's result before proceeding to use the "
    "next tool.";

std::string TooManyMistakesText(std::string_view feedback) {
  std::string out =
      "You seem to be having trouble proceeding. The user has provided the following feedback "
      "to help guide you:\n<feedback>\n";
  out += feedback;
  out += "\n</feedback>";
  return out;
}

// What the model asked for in one assistant message.
struct ToolCall {
  std::string id;  // Native: the provider's id; XML: generated.
  std::string name;
  std::string arguments_json;  // Empty when the call could not be parsed (see error).
  std::string error;           // Malformed: what the model did wrong.
};

bool IsJsonObjectText(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false).is_object();
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

// One suggested answer of an ask_followup_question call, and the mode choosing it switches to.
struct Suggestion {
  std::string text;
  std::string mode;  // "" = none.
};

// The suggested answers of an ask_followup_question call (its follow_up array), in order.
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

std::string ToolTitle(std::string_view name, const json& args) {
  std::string path = FirstPathArgument(args);
  auto string_arg = [&](const char* key) -> std::string {
    if (args.is_object() && args.contains(key) && args[key].is_string()) return args[key];
    return {};
  };
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

SessionUpdate TextUpdate(SessionUpdate::Kind kind, std::string text) {
  SessionUpdate update;
  update.kind = kind;
  update.text = std::move(text);
  return update;
}

std::vector<PlanEntry> PlanOf(const std::vector<TodoItem>& todos) {
  std::vector<PlanEntry> plan;
  for (const TodoItem& todo : todos) {
    PlanEntry entry;
    entry.content = todo.text;
    entry.status = todo.status == TodoStatus::kCompleted    ? PlanEntry::Status::kCompleted
                   : todo.status == TodoStatus::kInProgress ? PlanEntry::Status::kInProgress
                                                            : PlanEntry::Status::kPending;
    plan.push_back(std::move(entry));
  }
  return plan;
}

int64_t NextSeq(const std::vector<HistoryMessage>& history) {
  int64_t last = 0;
  for (const HistoryMessage& message : history) last = std::max(last, message.seq);
  return last + 1;
}

// A history message and the event that marks where it falls among the updates, in one
// transaction: a load then knows which streamed text never became a message.
// The message and its "message" event, and the session's row when `record` is given, journaled
// together (one write, folded in one transaction).
Status StoreMessage(SessionStore& store, const std::string& session_id,
                    const HistoryMessage& message, const SessionRecord* record = nullptr) {
  SessionStore::Changes changes;
  RETURN_IF_ERROR(changes.AppendMessage(session_id, message));
  RETURN_IF_ERROR(changes.AppendEvent(session_id, kMessageEvent, json{{"seq", message.seq}}.dump(),
                                      message.time_ms));
  if (record != nullptr) RETURN_IF_ERROR(changes.UpdateSession(*record));
  return store.Journal(std::move(changes));
}

// What context management changed, to persist.
struct ContextChange {
  std::vector<MessageVisibility> hidden;
  std::optional<HistoryMessage> added;
};

bool IsSessionTool(std::string_view name) { return FindSessionToolSpec(name) != nullptr; }

// Session tools the client sees as tool calls (the others show as text, a plan or a mode change).
bool ShowsAsToolCall(std::string_view name) {
  return !IsSessionTool(name) || name == "switch_mode" || name == "new_task" ||
         name == "use_mcp_tool" || name == "access_mcp_resource";
}

// The tools a mode offers, in the order the model sees them: the MCP tools only when a server
// offers tools (resources); for native calls each MCP tool is a function of its own in place of
// use_mcp_tool.
std::vector<PromptToolSpec> ToolSpecsForMode(const ModeConfig& mode,
                                             const std::vector<McpServerInfo>& mcp_servers,
                                             ToolProtocol protocol) {
  bool has_tools = false;
  bool has_resources = false;
  for (const McpServerInfo& server : mcp_servers) {
    has_tools = has_tools || !server.tools.empty();
    has_resources = has_resources || !server.resources.empty();
  }
  std::vector<std::string> names;
  for (const PromptToolSpec& spec : AllToolSpecs()) {
    if (spec.name == "use_mcp_tool" && !has_tools) continue;
    if (spec.name == "access_mcp_resource" && !has_resources) continue;
    names.push_back(spec.name);
  }
  std::vector<std::string> allowed = ToolsForMode(mode, names);
  std::vector<PromptToolSpec> specs;
  for (const PromptToolSpec& spec : AllToolSpecs()) {
    if (std::find(allowed.begin(), allowed.end(), spec.name) == allowed.end()) continue;
    if (spec.name != "use_mcp_tool" || protocol != ToolProtocol::kNative) {
      specs.push_back(spec);
      continue;
    }
    for (const McpServerInfo& server : mcp_servers) {
      for (const McpTool& tool : server.tools) {
        specs.push_back({McpFunctionName(server.name, tool.name),
                         tool.description + " (MCP server " + server.name + ")",
                         tool.input_schema});
      }
    }
  }
  return specs;
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

const XmlToolSpec* FindXmlSpec(std::string_view name) {
  for (const XmlToolSpec& spec : AllXmlSpecs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

std::optional<llm::Message> UnfinishedReply(const std::vector<StoredEvent>& events) {
  std::string partial;
  // After a tool call starts, what is said until the next stored message is a subtask's (its
  // updates are shown in the parent): never the parent's own reply.
  bool in_tool = false;
  for (const StoredEvent& event : events) {
    if (event.kind == kMessageEvent || event.kind == kTurnEndEvent ||
        event.kind == kTurnErrorEvent) {
      partial.clear();
      in_tool = false;
    } else if (event.kind == UpdateKindName(SessionUpdate::Kind::kToolCall)) {
      partial.clear();
      in_tool = true;
    } else if (!in_tool && event.kind == UpdateKindName(SessionUpdate::Kind::kAgentMessageChunk)) {
      Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
      if (update.ok()) partial += update->text;
    }
  }
  if (partial.empty()) return std::nullopt;
  llm::Message message;
  message.role = llm::Role::kAssistant;
  message.parts.push_back({});
  message.parts.back().text =
      partial + "\n\n[Response interrupted: lapce-ai stopped before this reply finished.]";
  return message;
}

std::vector<SessionUpdate> UnfinishedToolCalls(const std::vector<StoredEvent>& events) {
  std::vector<std::string> open;
  for (const StoredEvent& event : events) {
    bool is_call = event.kind == UpdateKindName(SessionUpdate::Kind::kToolCall);
    bool is_update = event.kind == UpdateKindName(SessionUpdate::Kind::kToolCallUpdate);
    if (!is_call && !is_update) continue;
    Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
    if (!update.ok()) continue;
    const std::string& id = update->tool.id;
    bool ended = update->tool.status && (*update->tool.status == ToolStatus::kCompleted ||
                                         *update->tool.status == ToolStatus::kFailed);
    if (is_call && !ended && std::find(open.begin(), open.end(), id) == open.end()) {
      open.push_back(id);
    } else if (ended) {
      std::erase(open, id);
    }
  }
  std::vector<SessionUpdate> endings;
  for (const std::string& id : open) {
    SessionUpdate ending;
    ending.kind = SessionUpdate::Kind::kToolCallUpdate;
    ending.tool.id = id;
    ending.tool.status = ToolStatus::kFailed;
    ToolCallContent note;
    note.kind = ToolCallContent::Kind::kText;
    note.text = "Interrupted: lapce-ai stopped before this finished.";
    ending.tool.content.push_back(std::move(note));
    endings.push_back(std::move(ending));
  }
  return endings;
}

std::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEndTurn:
      return "end_turn";
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kMaxTurnRequests:
      return "max_turn_requests";
    case StopReason::kRefusal:
      return "refusal";
    case StopReason::kCancelled:
      return "cancelled";
  }
  return "end_turn";
}

// What a session is; guarded by Session::mutex_ where other threads read it (Info()), otherwise
// confined to the turn thread.
struct Session::State {
  SessionLock open_lock;  // Held while this Session exists (SessionStore::LockSession).
  SessionOptions options;
  std::shared_ptr<const workspace::Workspace> workspace;
  std::vector<ModeConfig> modes;
  std::string mode;
  llm::ProfileInfo profile;
  llm::ModelInfo model;
  ToolProtocol protocol = ToolProtocol::kNative;
  std::string title;
  int64_t created_ms = 0;
  SessionStatus status = SessionStatus::kActive;
  std::vector<HistoryMessage> history;
  SessionTotals totals;
  TokenCalibration calibration;
  std::vector<TodoItem> todos;
  // What options.mcp offers, asked at the first turn (servers start in the background).
  std::vector<McpServerInfo> mcp_servers;
  bool has_mcp_servers = false;
  // Why servers of options.mcp did not start: said to the user at the next turn (only a log line
  // said it), and to the model when it calls their tools.
  std::vector<std::string> mcp_failures;
  bool has_told_mcp_failures = false;
  AutoApproveSettings approvals;  // The settings plus this session's "always" answers.
  // Kinds the user rejected for good in this session ("always reject"), and the commands (a
  // command's rejection refuses only that command, as a deny-list prefix, whatever the
  // approval settings say).
  std::set<ApprovalKind> rejected_always;
  std::vector<std::string> rejected_commands;
  std::set<std::string> allowed_mcp;  // "server tool name" / "server resources" allowed always.
  // The user's "always" answers, in order: kept with the session (its record's extra) and
  // applied again when it is loaded, so they hold in the editor's next process too.
  json always_answers = json::array();
  int64_t last_context_tokens = 0;
  int consecutive_mistakes = 0;
  ToolRepetitionDetector repetition;
  ApprovalLimits limits;
  // What the next prompt answers: a question (ask_followup_question), the mistake limit, or a
  // finished task; and the native tool call it answers, when there is one.
  enum class Awaiting {
    kNothing,
    kAnswer,
    kMistakeFeedback,
    kFeedback,
    kSubtask  // The new_task subtask stopped before completing: the prompt goes to it.
  } awaiting = Awaiting::kNothing;
  std::string awaiting_tool_id;
  std::string awaiting_tool_name;
  // The suggested answers of the question awaiting one, shown numbered: "2" answers the second
  // (and switches to its mode, when it names one).
  std::vector<Suggestion> suggestions;
  std::string completion_result;  // Of the last attempt_completion (subtasks return it).
  std::string pending_mode;       // Set by SetMode during a turn; guarded by mutex_.
  std::string system_prompt;      // Cached for system_prompt_mode.
  std::string system_prompt_mode;
  std::shared_ptr<llm::StreamHandle> stream;  // The running request; guarded by mutex_.
  std::shared_ptr<Session> active_child;      // A running new_task subtask; guarded by mutex_.
  // The subtask of the last new_task call while it runs or stopped before completing (kept with
  // the session's record, so a resumed task goes on in it); its Session once opened.
  std::string subtask_id;
  std::shared_ptr<Session> subtask;
  SessionTotals subtask_counted;  // The subtask's totals already added to this task's.
};

// One Prompt() call: the client, and helpers that persist before they show.
struct Session::Turn {
  Session& session;
  State& state;
  SessionClient& client;
  int requests = 0;
  bool include_file_listing = false;

  SessionStore* store() { return session.engine_.store_; }

  bool has_shown_text = false;  // An agent_message_chunk was shown in this turn.
  bool showing_child_plan = false;  // A subtask's plan was shown (the task's is shown again).
  bool breaks_before_text = false;  // The next text starts a paragraph (a notice came before).

  // `text` as a paragraph of its own: after a blank line when text came before it in the turn
  // (the first text of a turn does not start with empty lines).
  std::string Paragraph(std::string_view text) const {
    return (has_shown_text ? "\n\n" : "") + std::string(text);
  }

  void Emit(const SessionUpdate& update) {
    if (update.kind == SessionUpdate::Kind::kAgentMessageChunk && !has_shown_text) {
      // The turn's text starts with what is said, not with blank lines (a model's leading
      // newlines, what a stripped <thinking> block left, a result that begins with them).
      size_t said = update.text.find_first_not_of("\r\n");
      if (said == std::string::npos) return;
      has_shown_text = true;
      if (said > 0) {
        SessionUpdate trimmed = update;
        trimmed.text.erase(0, said);
        return Emit(trimmed);
      }
    }
    if (update.kind == SessionUpdate::Kind::kAgentMessageChunk && breaks_before_text &&
        !update.text.empty()) {
      breaks_before_text = false;
      SessionUpdate apart = update;
      if (!apart.text.starts_with("\n")) apart.text.insert(0, "\n\n");
      return Emit(apart);
    }
    const std::string acp_json = ToAcpJson(update);
    Journal(UpdateKindName(update.kind), acp_json);
    client.OnUpdate(session.id_, update, acp_json);
  }

  // Adds an event to the session's stored events (a failure is logged: what the user was shown
  // is not taken back).
  void Journal(std::string_view kind, const std::string& payload_json) {
    if (SessionStore* db = store()) {
      Status stored = db->JournalEvent(session.id_, kind, payload_json, NowMs());
      if (!stored.ok()) spdlog::error("session {}: {}", session.id_, stored.error().ToString());
    }
  }

  // Stores and keeps a message; with_record also saves the session's row (SaveRecord) in the
  // same transaction.
  void Append(llm::Message message, bool with_record = false) {
    HistoryMessage entry;
    entry.seq = NextSeq(state.history);
    entry.time_ms = NowMs();
    entry.token_estimate = EstimateTokens(message);
    entry.message = std::move(message);
    if (SessionStore* db = store()) {
      std::optional<SessionRecord> record;
      if (with_record) record = session.RecordLocked();
      Status status = StoreMessage(*db, session.id_, entry, record ? &*record : nullptr);
      if (!status.ok()) spdlog::error("session {}: {}", session.id_, status.ToString());
    }
    std::lock_guard lock(session.mutex_);
    state.history.push_back(std::move(entry));
  }

  // The assistant's reply to one request.
  struct Reply {
    llm::Message message{llm::Role::kAssistant, {}};
    std::vector<ToolCall> calls;
    std::string stop_reason;
    std::string profile, model;  // Who answered: a fallback profile's, when the session's failed.
    std::optional<llm::StreamError> error;
    bool has_output = false;
  };
  struct ToolOutcome {
    std::string text;
    std::string shown;  // The result as the user sees it, when not `text` (the model's).
    bool is_error = false;
    bool is_mistake = false;
    bool ends_turn = false;
    StopReason stop = StopReason::kEndTurn;  // With ends_turn.
    std::string stuck;  // Set when the call repeats itself: why the user is asked for guidance.
  };

  Result<StopReason> Run(std::string_view text);
  // The turn's model requests and tool calls, from the user message `parts` on.
  Result<StopReason> Loop(std::vector<llm::ContentPart> parts);
  // The prompt answers the waiting subtask (Awaiting::kSubtask): it goes on in it, and this
  // task with its result once it completes.
  Result<StopReason> GoOnInSubtask(std::string_view text);
  // The results of the last message's calls after `answered_id`, which were not run (one call
  // per message), for the prompt that answers that call (native calls).
  void AddNotRunResults(const std::string& answered_id, std::vector<llm::ContentPart>& parts) const;
  // A tool call's result as the protocol sends it.
  llm::ContentPart ResultPart(const std::string& call_id, const std::string& name,
                              std::string result, bool is_error) const;
  std::string SystemPrompt();
  // `parts` with the environment details appended, for the request that follows.
  llm::Message UserMessage(std::vector<llm::ContentPart> parts);
  // `parts` alone: kept when the turn ends before another request (a cancel, a limit), since the
  // next prompt's message brings its own details (two blocks would reach the model merged).
  static llm::Message LastUserMessage(std::vector<llm::ContentPart> parts) {
    return llm::Message{llm::Role::kUser, std::move(parts)};
  }
  // Condenses or truncates as the context plan says; an error when what is left still exceeds
  // the model's whole window (a message too large on its own), so no request is sent for it.
  Status FitContext();
  Reply Request();
  ToolOutcome Execute(const ToolCall& call);
  // The engine's tool settings, with read_file's byte limit lowered to the context's room.
  ToolSettings ToolSettingsForRoom() const;
  // Reads the ignore files again when they have changed since the workspace was opened (the user
  // blocks a file mid-session): before each tool call and each prompt's mentions.
  Status RefreshWorkspace();
  // Reads the modes again (.kilocodemodes and the global file may have changed), before each
  // prompt; an error, with nothing changed, when they no longer load or lack the session's mode.
  Status RefreshModes();
  ToolOutcome RunSessionTool(const ToolCall& call, const json& args, ToolCallInfo& info);
  // `text` as the session's protocol has it: a tool-use reminder in XML form for XML sessions.
  std::string ForProtocol(std::string text) const {
    return state.protocol == ToolProtocol::kXml ? ForXmlToolUse(std::move(text)) : text;
  }
  // A call that was not run, shown as a failed tool call with the reason.
  void ShowRefused(const ToolCall& call, const json& args, const std::string& reason);
  ToolOutcome RunMcp(const ToolCall& call, const json& args, ToolCallInfo& info);
  // `what` names what an "always" answer covers for kMcp: one server's tool (or resources).
  bool AskSession(SessionApprovalKind kind, ToolCallInfo info, std::string* feedback,
                  const std::string& what = {});
  void EmitUsage();
  // The engine's own words to the user at the end of a turn (a stop at a limit, a call for
  // guidance): shown as agent text, and followed by a turn-end marker among the stored events,
  // so a reload never takes them for a reply the model was writing (UnfinishedReply).
  void EmitNotice(std::string text);
  StopReason EndWithMessage(std::string text);
  ApprovalReply Approve(const ApprovalRequest& request, const ToolCallInfo& call);
  ToolOutcome RunSubtask(const std::string& mode, const std::string& message,
                         const std::string& todos);
  // Prompts the subtask `child` with `text`, its work shown in this session: its result, or an
  // outcome that ends this turn too when it stops before completing (a question, a limit, …), so
  // the user's next prompt goes on in it (Awaiting::kSubtask).
  ToolOutcome RunChild(const std::shared_ptr<Session>& child, std::string_view text);
  // The new_task result of the subtask `child`, which ended (stop): its completion result, or
  // why it failed; the task is no longer waiting for it.
  ToolOutcome ChildOutcome(Session& child, const Result<StopReason>& stop);
  // Adds what the subtask used since it was last counted to this task's totals.
  void CountSubtask(Session& child);
  // The waiting subtask, opened from the store when this process has not run it.
  Result<std::shared_ptr<Session>> WaitingSubtask();
  Result<std::string> Summarize(const std::string& system_prompt,
                                const std::vector<llm::Message>& messages);
  void Persist(const ContextChange& change);
  // Hides half of the middle of the history, or, after a "context too long" error, what
  // `overflow` says (nothing once its retries are used up). `why` is shown to the user.
  ContextChange TruncateHistory(std::string_view why, ForcedReduction* overflow = nullptr);
  // Shows a change to the context as a finished tool call of its own (in the terminal, in the
  // editor, and when the session is replayed): the user sees what the model no longer sees.
  void ShowContextChange(std::string title, std::string detail);

  int64_t tool_tokens = 0;  // Estimated tokens of the native tool definitions.
  // The native tool definitions the mode gives (none for XML).
  std::vector<llm::ToolDefinition> ToolDefinitions() const;

  void SaveRecord() {
    SessionStore* db = store();
    if (db == nullptr) return;
    SessionStore::Changes changes;
    Status status = changes.UpdateSession(session.RecordLocked());
    if (status.ok()) status = db->Journal(std::move(changes));
    if (!status.ok()) spdlog::error("session {}: {}", session.id_, status.ToString());
  }
};

Session::Session(Engine& engine, std::string id)
    : engine_(engine), id_(std::move(id)), state_(std::make_unique<State>()) {}

Session::~Session() = default;

SessionInfo Session::Info() const {
  std::lock_guard lock(mutex_);
  const State& state = *state_;
  SessionInfo info;
  info.id = id_;
  info.parent_id = state.options.parent_id;
  info.title = state.title;
  info.workspace = state.options.workspace;
  info.mode = state.mode;
  info.profile = state.profile.name;
  info.model = state.model.id;
  info.protocol = state.protocol;
  info.totals = state.totals;
  info.context_tokens = state.last_context_tokens;
  info.context_window = state.model.context_window;
  info.todos = PlanOf(state.todos);
  info.status = state.status;
  return info;
}

std::vector<ModeConfig> Session::Modes() const {
  std::lock_guard lock(mutex_);
  return state_->modes;
}

void SessionClient::ShowAsReplyText(const std::string& session_id, const std::string& text) {
  SessionUpdate update = TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, text);
  OnUpdate(session_id, update, ToAcpJson(update));
}

void Session::Cancel() {
  std::shared_ptr<llm::StreamHandle> stream;
  std::shared_ptr<Session> child;
  {
    std::lock_guard lock(mutex_);
    if (!running_.load()) return;
    cancelled_.store(true);
    stream = state_->stream;
    child = state_->active_child;
  }
  if (stream) stream->Cancel();
  if (child) child->Cancel();
}

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

void GrantAlways(AutoApproveSettings& approvals, const ApprovalRequest& request);

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

namespace {

void GrantAlways(AutoApproveSettings& approvals, const ApprovalRequest& request) {
  switch (request.kind) {
    case ApprovalKind::kRead:
      approvals.read = true;
      break;
    case ApprovalKind::kWrite:
      approvals.write = true;
      break;
    case ApprovalKind::kDelete:
      approvals.delete_files = true;
      break;
    case ApprovalKind::kOutsideWorkspace:
      approvals.read_outside_workspace = true;
      approvals.write_outside_workspace = true;
      break;
    case ApprovalKind::kProtected:
      approvals.write_protected = true;
      break;
    case ApprovalKind::kCommand:
      approvals.execute = true;
      approvals.allowed_commands.push_back(request.target);
      break;
  }
}

}  // namespace

std::string Session::Turn::SystemPrompt() {
  if (state.system_prompt_mode == state.mode && !state.system_prompt.empty()) {
    return state.system_prompt;
  }
  const ModeConfig* mode = FindMode(state.modes, state.mode);
  LAI_CHECK(mode != nullptr) << state.mode;
  static const SystemInfo system = CurrentSystemInfo();
  PromptInputs inputs;
  inputs.workspace_root = state.workspace->root();
  inputs.mode = *mode;
  inputs.modes = state.modes;
  inputs.protocol = state.protocol;
  inputs.os_name = system.os_name;
  inputs.shell = system.shell;
  inputs.home = system.home;
  inputs.global_custom_instructions = session.engine_.settings_.custom_instructions;
  inputs.rules =
      LoadRules(state.workspace.get(), state.mode, session.engine_.settings_.global_rules_dir);
  inputs.tools = ToolSpecsForMode(*mode, state.mcp_servers, state.protocol);
  if (std::any_of(inputs.tools.begin(), inputs.tools.end(), [](const PromptToolSpec& tool) {
        return tool.name == "use_mcp_tool" || tool.name == "access_mcp_resource" ||
               tool.name.starts_with("mcp--");
      })) {
    inputs.mcp_servers = state.mcp_servers;
  }
  inputs.describe_tool = &DescribeToolXml;
  state.system_prompt = BuildSystemPrompt(inputs);
  state.system_prompt_mode = state.mode;
  return state.system_prompt;
}

llm::Message Session::Turn::UserMessage(std::vector<llm::ContentPart> parts) {
  const ModeConfig* mode = FindMode(state.modes, state.mode);
  EnvironmentInputs env;
  env.workspace = state.workspace.get();
  env.now = std::chrono::system_clock::now();
  LocalZone zone = CurrentLocalZone(env.now);
  env.time_zone = std::move(zone.name);
  env.utc_offset = zone.utc_offset;
  env.mode_slug = state.mode;
  env.mode_name = mode != nullptr ? mode->name : state.mode;
  env.model_id = state.model.id;
  env.protocol = state.protocol;
  env.cost_usd = state.totals.cost_usd;
  env.include_file_listing = include_file_listing;
  env.todos = state.todos;
  include_file_listing = false;
  llm::ContentPart details;
  details.text = BuildEnvironmentDetails(env);
  parts.push_back(std::move(details));
  return llm::Message{llm::Role::kUser, std::move(parts)};
}

void Session::Turn::EmitUsage() {
  SessionUpdate update;
  update.kind = SessionUpdate::Kind::kUsageUpdate;
  {
    std::lock_guard lock(session.mutex_);
    update.used_tokens = state.last_context_tokens;
    update.context_window = state.model.context_window;
    update.cost_usd = state.totals.cost_usd;
  }
  Emit(update);
}

void Session::Turn::EmitNotice(std::string text) {
  Emit(TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, std::move(text)));
  Journal(kTurnEndEvent, "{}");
}

StopReason Session::Turn::EndWithMessage(std::string text) {
  EmitNotice(std::move(text));
  SaveRecord();
  return StopReason::kEndTurn;
}

Status Session::Turn::RefreshWorkspace() {
  if (state.workspace->IsCurrent()) return OkStatus();
  Result<std::shared_ptr<const workspace::Workspace>> fresh =
      workspace::Workspace::Open(state.workspace->root());
  if (!fresh.ok()) {
    return Error(fresh.error().code(), "The workspace's ignore rules could not be read again (" +
                                           fresh.error().message() +
                                           "); nothing was done. Fix the file and retry.");
  }
  spdlog::info("session {}: the ignore files changed; their rules were read again", session.id_);
  {
    std::lock_guard lock(session.mutex_);  // SetMode reads it from other threads.
    state.workspace = *std::move(fresh);
  }
  state.system_prompt.clear();  // It lists the blocked paths.
  return OkStatus();
}

Status Session::Turn::RefreshModes() {
  Result<std::vector<ModeConfig>> modes =
      LoadModes(session.engine_.settings_.global_modes_file, state.workspace->root());
  if (!modes.ok()) {
    return Error(modes.error().code(), "The modes could not be read again (" +
                                           modes.error().message() +
                                           "); nothing was sent. Fix the file and retry.");
  }
  if (FindMode(*modes, state.mode) == nullptr) {
    return Error(ErrorCode::kInvalidArgument,
                 "this session's mode '" + state.mode +
                     "' is no longer defined (in .kilocodemodes or the global modes file); "
                     "nothing was sent. Define it again, or switch the session to another mode.");
  }
  std::lock_guard lock(session.mutex_);
  state.modes = *std::move(modes);
  return OkStatus();
}

ToolSettings Session::Turn::ToolSettingsForRoom() const {
  // What read_file, @mentions and commands return fits the room left in the model's window: 60%
  // of it, as Kilo Code gives a file, at about 3 bytes a token, and never less than 2 KiB.
  ToolSettings settings = session.engine_.settings_.tools;
  if (int64_t window = state.model.context_window; window > 0) {
    int64_t room = std::max<int64_t>(window - state.last_context_tokens, 0) * 6 / 10 * 3;
    settings.room_bytes = static_cast<size_t>(std::max<int64_t>(room, 2048));
    settings.read_byte_limit = std::min(settings.read_byte_limit, settings.room_bytes);
  }
  return settings;
}

Status Session::Turn::FitContext() {
  ContextBudget budget{
      state.model.context_window,
      DefaultMaxOutputTokens(state.model.context_window, state.model.max_output_tokens)};
  const AgentSettings& settings = session.engine_.settings_;
  const ContextSettings context_settings{settings.auto_condense,
                                         settings.condense_threshold_percent};
  int64_t prompt_tokens = EstimateTokens(SystemPrompt()) + tool_tokens;
  ContextPlan plan =
      PlanContext(state.history, prompt_tokens, state.calibration, budget, context_settings);
  if (plan.action == ContextAction::kNone) return OkStatus();
  bool truncate = plan.action == ContextAction::kTruncate;
  std::string why = "to fit the context window";
  if (plan.action == ContextAction::kCondense) {
    Summarizer summarize = [this](const std::string& system_prompt,
                                  const std::vector<llm::Message>& messages) {
      return Summarize(system_prompt, messages);
    };
    CondenseOptions options;
    options.next_seq = NextSeq(state.history);
    options.now_ms = NowMs();
    options.prompt_tokens = prompt_tokens;
    options.calibration = &state.calibration;
    // history is read and written by the turn thread only; mutex_ guards what Info() reads.
    Result<CondenseResult> condensed = Condense(state.history, options, summarize);
    if (condensed.ok()) {
      ContextChange change;
      for (int64_t seq : condensed->condensed_seqs)
        change.hidden.push_back({seq, options.next_seq, 0});
      change.added = condensed->summary;
      Persist(change);
      spdlog::debug("session {}: condensed {} messages ({} -> {} tokens)", session.id_,
                    condensed->condensed_seqs.size(), condensed->prev_context_tokens,
                    condensed->new_context_tokens);
      std::string summary;
      for (const llm::ContentPart& part : condensed->summary.message.parts) summary += part.text;
      ShowContextChange("Condensed " + std::to_string(condensed->condensed_seqs.size()) +
                            " messages into a summary (" +
                            std::to_string(condensed->prev_context_tokens) + " → " +
                            std::to_string(condensed->new_context_tokens) + " tokens)",
                        std::move(summary));
    } else {
      // Shown to the user with the truncation that follows (ShowContextChange).
      spdlog::debug("session {}: condensing failed ({})", session.id_, condensed.error().message());
      truncate = plan.exceeds_allowed;
      why = "to fit the context window (condensing failed: " + condensed.error().message() + ")";
    }
  }
  if (truncate) Persist(TruncateHistory(why));
  ContextPlan left =
      PlanContext(state.history, prompt_tokens, state.calibration, budget, context_settings);
  if (budget.context_window > 0 && left.context_tokens > budget.context_window) {
    // What takes the room: the largest message left, named.
    const HistoryMessage* largest = nullptr;
    for (const HistoryMessage& entry : state.history) {
      if (entry.is_visible() && (!largest || entry.token_estimate > largest->token_estimate)) {
        largest = &entry;
      }
    }
    std::string what = "a message this large cannot be sent";
    std::string fix = "shorten it, or mention fewer or smaller files";
    const int64_t room = budget.context_window - budget.max_output_tokens;
    if (prompt_tokens * 2 > room) {
      // The system prompt (tools, modes, rules) leaves too little for any conversation.
      what = "the system prompt alone is about " + std::to_string(prompt_tokens) + " tokens";
      fix =
          "shorten the rules (AGENTS.md, .kilocode/rules/, the global rules), or use a model "
          "with a larger window";
    } else if (largest != nullptr) {
      std::string tool;
      for (const llm::ContentPart& part : largest->message.parts) {
        if (part.kind == llm::ContentPart::Kind::kToolResult) tool = part.tool_name;
      }
      std::string size = "about " + std::to_string(largest->token_estimate) + " tokens";
      if (!tool.empty()) {
        what = "the result of the " + tool + " call is " + size;
        fix =
            "send a message to go on (the oldest messages are dropped to make room), or start "
            "a new session";
      } else if (largest->message.role == llm::Role::kAssistant) {
        what = "a reply of the model is " + size;
        fix = "start a new session, or use a model with a larger window";
      } else {
        what = "a message of yours is " + size;
      }
    }
    return Error(ErrorCode::kInvalidArgument,
                 "the conversation is about " + std::to_string(left.context_tokens) +
                     " tokens even after condensing and truncating, more than the " +
                     std::to_string(budget.context_window) + "-token context window of " +
                     state.model.id + "; " + what + ": " + fix);
  }
  return OkStatus();
}

void Session::Turn::ShowContextChange(std::string title, std::string detail) {
  SessionUpdate shown;
  shown.kind = SessionUpdate::Kind::kToolCall;
  shown.tool.id = "context_" + std::to_string(state.history.back().seq);
  shown.tool.title = std::move(title);
  shown.tool.kind = ToolKind::kOther;
  shown.tool.status = ToolStatus::kPending;
  Emit(shown);
  SessionUpdate done;
  done.kind = SessionUpdate::Kind::kToolCallUpdate;
  done.tool.id = shown.tool.id;
  done.tool.status = ToolStatus::kCompleted;
  if (!detail.empty()) {
    done.tool.content.push_back({});
    done.tool.content.back().text = std::move(detail);
  }
  Emit(done);
}

ContextChange Session::Turn::TruncateHistory(std::string_view why, ForcedReduction* overflow) {
  ContextChange change;
  std::optional<TruncateResult> result;
  {
    std::lock_guard lock(session.mutex_);
    int64_t next = NextSeq(state.history);
    result = overflow != nullptr ? overflow->Reduce(state.history, next, NowMs())
                                 : Truncate(state.history, 0.5, next, NowMs());
  }
  if (result && result->marker) {
    for (int64_t seq : result->truncated_seqs) {
      change.hidden.push_back({seq, 0, result->marker->seq});
    }
    change.added = result->marker;
    spdlog::debug("session {}: truncation hid {} messages", session.id_, result->messages_hidden);
    ShowContextChange("Dropped " + std::to_string(result->messages_hidden) +
                          (result->messages_hidden == 1 ? " older message " : " older messages ") +
                          std::string(why),
                      "");
  }
  return change;
}

std::vector<llm::ToolDefinition> Session::Turn::ToolDefinitions() const {
  std::vector<llm::ToolDefinition> tools;
  if (state.protocol != ToolProtocol::kNative) return tools;
  const ModeConfig* mode = FindMode(state.modes, state.mode);
  for (PromptToolSpec& spec : ToolSpecsForMode(*mode, state.mcp_servers, state.protocol)) {
    tools.push_back(
        {std::move(spec.name), std::move(spec.description), std::move(spec.parameters_schema)});
  }
  return tools;
}

Session::Turn::Reply Session::Turn::Request() {
  Reply reply;
  llm::CompletionRequest request;
  request.system_prompt = SystemPrompt();
  request.messages = EffectiveMessages(state.history);
  request.tools = ToolDefinitions();
  tool_tokens = EstimateTokens(request.tools);
  // The history's estimates were made once, as its messages were added.
  int64_t sent_estimate =
      EstimateTokens(request.system_prompt) + tool_tokens + VisibleTokens(state.history);
  {
    std::lock_guard lock(session.mutex_);
    state.last_context_tokens = state.calibration.Apply(sent_estimate);
  }

  // The stream is handled where it arrives, on the provider's I/O thread: each chunk is stored
  // and shown without waking this thread, which waits for the end. Until then only the sink
  // touches the locals below; `finished` (under the mutex) hands them back.
  struct StreamEnd {
    std::mutex mutex;
    std::condition_variable ready;
    bool finished = false;
    bool cancel = false;  // The sink wants the stream stopped before this thread had its handle.
  };
  auto end = std::make_shared<StreamEnd>();
  std::optional<XmlToolParser> xml;
  if (state.protocol == ToolProtocol::kXml) xml.emplace(AllXmlSpecs());
  std::string text, reasoning, signature;
  llm::Usage usage;
  std::vector<XmlEvent> xml_events;
  // What the model says, shown as it streams; <thinking>…</thinking> is shown as thought.
  ThinkingSplitter thinking;
  std::vector<ThinkingSplitter::Piece> pieces;
  auto show_pieces = [&] {
    for (ThinkingSplitter::Piece& piece : pieces) {
      Emit(TextUpdate(piece.is_thought ? SessionUpdate::Kind::kAgentThoughtChunk
                                       : SessionUpdate::Kind::kAgentMessageChunk,
                      std::move(piece.text)));
    }
    pieces.clear();
  };
  auto show = [&](std::string_view said) {
    thinking.Feed(said, pieces);
    show_pieces();
  };
  auto finish_shown = [&] {
    thinking.Finish(pieces);
    show_pieces();
  };
  auto handle_xml = [&](std::vector<XmlEvent>& events) {
    for (XmlEvent& event : events) {
      if (event.type == XmlEventType::kText) {
        // After the first complete call the rest of the reply is not shown: only that call
        // runs (the text stays in the stored message, which the model sees).
        if (!event.text.empty() && reply.calls.empty()) show(event.text);
      } else if (event.type == XmlEventType::kToolComplete) {
        if (reply.calls.empty()) finish_shown();
        ToolCall call;
        call.id = "xml_" + std::to_string(NextSeq(state.history)) + "_" +
                  std::to_string(reply.calls.size());
        call.name = event.call.name;
        const XmlToolSpec* spec = FindXmlSpec(call.name);
        // What arrived of the parameters, for the card of a call that cannot run (the user saw
        // an empty card and could not tell what was cut off).
        json given = json::object();
        for (const auto& [name, value] : event.call.params) given[name] = value;
        if (event.call.is_partial) {
          call.error = "The " + call.name +
                       " tool call was not complete (its closing tag is missing). Retry with "
                       "the whole call.";
          call.arguments_json = given.dump();
        } else if (!event.call.oversized_params.empty()) {
          call.error = "The <" + event.call.oversized_params[0] + "> of this " + call.name +
                       " call is over " + std::to_string(XmlToolParser::kMaxParamBytes / 1024) +
                       " KiB, the most a parameter of a tool call in XML may hold, so it was "
                       "not run. Send less at a time: write a large file in parts "
                       "(write_to_file with the first part, then insert_content for each "
                       "next one), or change it with apply_diff.";
          call.arguments_json = given.dump();
        } else if (spec == nullptr) {
          call.error = "Unknown tool '" + call.name + "'.";
        } else {
          Result<std::string> args = XmlParamsToJson(*spec, event.call.params);
          if (args.ok()) {
            call.arguments_json = std::move(*args);
          } else {
            call.error = args.error().message();
            call.arguments_json = given.dump();
          }
        }
        reply.calls.push_back(std::move(call));
      }
    }
    events.clear();
  };
  auto stop_stream = [&] {
    std::shared_ptr<llm::StreamHandle> stream;
    {
      std::lock_guard lock(session.mutex_);
      stream = state.stream;
    }
    if (stream) {
      stream->Cancel();
    } else {
      std::lock_guard lock(end->mutex);
      end->cancel = true;
    }
  };
  // True for the stream's last event.
  auto on_event = [&](const llm::StreamEvent& event) -> bool {
    bool finished = false;
    switch (event.kind) {
      case llm::StreamEvent::Kind::kTextDelta:
        reply.has_output = true;
        text += event.text;
        if (event.text.empty()) break;
        if (!xml) {
          show(event.text);
        } else if (!reply.error) {
          Status fed = xml->Feed(event.text, xml_events);
          handle_xml(xml_events);
          if (!fed.ok()) {
            reply.error =
                llm::StreamError{llm::ErrorKind::kBadResponse, fed.error().message(), {}, 0};
            stop_stream();
          }
        }
        break;
      case llm::StreamEvent::Kind::kReasoningDelta:
        reply.has_output = true;
        reasoning += event.text;
        if (!event.signature.empty()) signature = event.signature;
        if (!event.text.empty()) {
          Emit(TextUpdate(SessionUpdate::Kind::kAgentThoughtChunk, event.text));
        }
        break;
      case llm::StreamEvent::Kind::kToolCallStart:
      case llm::StreamEvent::Kind::kToolCallDelta:
        reply.has_output = true;
        break;
      case llm::StreamEvent::Kind::kToolCallEnd:
        reply.calls.push_back({event.tool_call_id, event.tool_name, event.arguments_json, {}});
        break;
      case llm::StreamEvent::Kind::kUsage:
        usage = event.usage;
        break;
      case llm::StreamEvent::Kind::kRetrying: {
        // Kept as a notice (replayed by session/load, quoted by the transcripts) but shown only
        // by the front ends that ask for it: the terminal's log line says it already.
        std::string notice = "(" + event.text + ".)\n\n";
        Journal(UpdateKindName(SessionUpdate::Kind::kAgentMessageChunk),
                ToAcpJson(TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, notice)));
        Journal(kTurnEndEvent, "{}");
        client.OnRetrying(session.id_, notice);
        break;
      }
      case llm::StreamEvent::Kind::kError:
        if (!reply.error) reply.error = event.error;
        finished = true;
        break;
      case llm::StreamEvent::Kind::kDone:
        reply.stop_reason = event.text;
        reply.profile = event.profile;
        reply.model = event.model;
        finished = true;
        break;
    }
    if (!finished) return false;
    if (xml) {
      xml->Finish(xml_events);
      handle_xml(xml_events);
    }
    if (reply.calls.empty() || !xml) finish_shown();
    return true;
  };
  // The sink owns its copy of `end`: once `finished` is set this frame may be gone at any moment,
  // so nothing of it is touched after that.
  Result<std::shared_ptr<llm::StreamHandle>> handle = session.engine_.pool_.Stream(
      state.profile.name, std::move(request), [end, &on_event](const llm::StreamEvent& event) {
        {
          std::lock_guard lock(end->mutex);
          if (end->finished) return;  // Nothing comes after the last event; if it did, ignored.
        }
        if (!on_event(event)) return;
        {
          std::lock_guard lock(end->mutex);
          end->finished = true;
        }
        end->ready.notify_one();
      });
  if (!handle.ok()) {
    reply.error =
        llm::StreamError{llm::ErrorKind::kInvalidRequest, handle.error().message(), {}, 0};
    return reply;
  }
  {
    std::lock_guard lock(session.mutex_);
    state.stream = *handle;
  }
  bool cancel_now = session.cancelled_.load();
  {
    std::lock_guard lock(end->mutex);
    cancel_now = cancel_now || end->cancel;
  }
  if (cancel_now) (*handle)->Cancel();
  ++requests;
  state.limits.RecordRequest();
  {
    std::unique_lock lock(end->mutex);
    end->ready.wait(lock, [&] { return end->finished; });
  }
  {
    std::lock_guard lock(session.mutex_);
    state.stream.reset();
    state.totals.input_tokens += usage.input_tokens;
    state.totals.output_tokens += usage.output_tokens;
    state.totals.cache_read_tokens += usage.cache_read_tokens;
    state.totals.cache_write_tokens += usage.cache_write_tokens;
    state.totals.cost_usd += usage.cost_usd;
    state.totals.requests += 1;
    int64_t reported = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
    if (reported > 0) {
      state.calibration.Observe(sent_estimate, reported);
      state.last_context_tokens = reported + usage.output_tokens;
    }
  }

  llm::Message& message = reply.message;
  if (!reasoning.empty()) {
    llm::ContentPart part;
    part.kind = llm::ContentPart::Kind::kReasoning;
    part.text = std::move(reasoning);
    part.signature = std::move(signature);
    message.parts.push_back(std::move(part));
  }
  if (!text.empty()) {
    llm::ContentPart part;
    part.text = std::move(text);
    message.parts.push_back(std::move(part));
  }
  if (state.protocol == ToolProtocol::kNative) {
    for (const ToolCall& call : reply.calls) {
      llm::ContentPart part;
      part.kind = llm::ContentPart::Kind::kToolCall;
      part.tool_call_id = call.id;
      part.tool_name = call.name;
      // Arguments that were not a JSON object (the model's broken JSON) are kept as {}: every
      // provider's request format needs an object there, and the tool result quotes them.
      part.arguments_json = IsJsonObjectText(call.arguments_json) ? call.arguments_json : "{}";
      message.parts.push_back(std::move(part));
    }
  }
  return reply;
}

bool Session::Turn::AskSession(SessionApprovalKind kind, ToolCallInfo info, std::string* feedback,
                               const std::string& what) {
  if (Decide(kind, state.approvals) == Decision::kApprove) return true;
  if (kind == SessionApprovalKind::kMcp && state.allowed_mcp.count(what) != 0) return true;
  PermissionRequest request;
  request.tool = std::move(info);
  PermissionReply reply = client.RequestPermission(session.id_, request, session.cancelled_);
  if (feedback != nullptr) *feedback = reply.feedback;
  switch (reply.outcome) {
    case PermissionOutcome::kAllowAlways: {
      // One MCP tool's "always" is that tool's (as Kilo Code's alwaysAllow), not every server's.
      const char* name = kind == SessionApprovalKind::kModeSwitch ? "mode_switch"
                         : kind == SessionApprovalKind::kSubtask  ? "subtasks"
                         : kind == SessionApprovalKind::kMcp      ? "mcp"
                                                                  : nullptr;
      if (name == nullptr) return true;
      json answer = {{"answer", "allow"}, {"kind", name}, {"target", what}};
      {
        std::lock_guard lock(session.mutex_);
        session.ApplyAlwaysAnswerLocked(answer);
        state.always_answers.push_back(std::move(answer));
      }
      SaveRecord();
      return true;
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
  if (is_tool) {
    std::string tools;
    bool found = false;
    for (const McpTool& tool : server->tools) {
      found = found || tool.name == target;
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
  if (!AskSession(SessionApprovalKind::kMcp, info, &feedback, what)) {
    outcome.is_error = true;
    outcome.text = DeniedText(feedback);
    return outcome;
  }
  SessionUpdate running;
  running.kind = SessionUpdate::Kind::kToolCallUpdate;
  running.tool.id = call.id;
  running.tool.status = ToolStatus::kInProgress;
  Emit(running);
  Result<McpOutcome> result =
      is_tool ? state.options.mcp->CallTool(server_name, target, arguments, &session.cancelled_)
              : state.options.mcp->ReadResource(server_name, target, &session.cancelled_);
  if (!result.ok()) return fail(result.error().message(), false);
  outcome.is_error = result->is_error;
  outcome.text = result->text.empty() ? "(no output)" : std::move(result->text);
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
  const ModeConfig* mode = FindMode(state.modes, state.mode);
  std::string path = FirstPathArgument(args);
  if (Status allowed = CheckToolAllowed(*mode, call.name, path); !allowed.ok()) {
    return refuse(allowed.error().message(), false, args);
  }
  // The file the path leads to must be one the mode may edit too: a link "notes.md" to
  // "main.py" does not let architect edit code, nor "docs/../../x" a mode limited to "^docs/"
  // edit outside the workspace (seen from the root: "../x").
  if (!path.empty()) {
    Result<workspace::ResolvedPath> target = state.workspace->Resolve(path, true);
    if (target.ok()) {
      std::string led_to = state.workspace->FromRoot(*target);
      if (led_to != path) {
        if (Status allowed = CheckToolAllowed(*mode, call.name, led_to); !allowed.ok()) {
          return refuse(allowed.error().message(), false, args);
        }
      }
    }
  }
  if (call.name == "delete_file" && !path.empty()) {
    // Deleting a directory edits every file in it: each must be one the mode may edit.
    if (std::optional<std::string> refusal =
            CheckDirectoryDeletion(*state.workspace, *mode, path)) {
      return refuse(*refusal, false, args);
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
            SessionUpdate running;
            running.kind = SessionUpdate::Kind::kToolCallUpdate;
            running.tool.id = call.id;
            running.tool.status = ToolStatus::kInProgress;
            Emit(running);
          }
          return reply;
        },
        [&](std::string_view chunk) { client.OnToolOutput(session.id_, call.id, chunk); }, *mode);
    ToolSettings tool_settings = ToolSettingsForRoom();
    ToolContext context{*state.workspace,
                        tool_settings,
                        host,
                        &session.cancelled_,
                        client.files(),
                        client.commands(),
                        call.id};
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
      ToolCallContent diff;
      diff.kind = ToolCallContent::Kind::kDiff;
      diff.path = info.locations.empty() ? edit->target : info.locations[0].path;
      diff.old_text = edit->old_text;
      diff.new_text = edit->new_text;
      done.tool.content.push_back(std::move(diff));
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
  if (request.has_texts) {
    ToolCallContent diff;
    diff.kind = ToolCallContent::Kind::kDiff;
    diff.path = call.locations.empty() ? request.target : call.locations[0].path;
    if (request.old_text) diff.old_text = std::string(*request.old_text);
    diff.new_text = std::string(request.new_text);
    ask.tool.content.push_back(std::move(diff));
  } else if (!request.detail.empty()) {
    ToolCallContent detail;
    detail.text = request.detail;
    ask.tool.content.push_back(std::move(detail));
  }
  PermissionReply reply = client.RequestPermission(session.id_, ask, session.cancelled_);
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

Session::Turn::ToolOutcome Session::Turn::RunSubtask(const std::string& mode,
                                                     const std::string& message,
                                                     const std::string& todos) {
  SessionOptions options;
  options.workspace = state.options.workspace;
  options.mode = mode;
  options.profile = state.profile.name;
  options.parent_id = session.id_;
  options.mcp = state.options.mcp;
  Result<std::shared_ptr<Session>> child = session.engine_.NewSession(options);
  if (!child.ok()) {
    ToolOutcome outcome;
    outcome.is_error = true;
    outcome.text = ToolErrorText(child.error().message());
    return outcome;
  }
  {
    std::scoped_lock lock((*child)->mutex_, session.mutex_);
    if (!todos.empty()) (*child)->state_->todos = ParseTodoList(todos);
    // The user's "always" answers hold in the task's subtasks, as Kilo Code's do: the user sees
    // one task, and was asked again in each subtask.
    (*child)->AdoptAlwaysAnswersLocked(state.always_answers);
  }
  if (!todos.empty()) {  // The subtask's plan is shown while it runs (see RunChild).
    SessionUpdate plan;
    plan.kind = SessionUpdate::Kind::kPlan;
    plan.plan = PlanOf(ParseTodoList(todos));
    Emit(plan);
    showing_child_plan = true;
  }
  return RunChild(*child, message);
}

Session::Turn::ToolOutcome Session::Turn::RunChild(const std::shared_ptr<Session>& child,
                                                   std::string_view text) {
  ToolOutcome outcome;
  // The child's work is shown in the parent's session: its text, thoughts, tool calls and plan
  // (the task's own plan is shown again when it ends). Its mode and usage are its own.
  class Forward : public SessionClient {
   public:
    Forward(Turn& parent, std::string prefix) : parent_(parent), prefix_(std::move(prefix)) {}
    void OnUpdate(const std::string&, const SessionUpdate& update, std::string_view) override {
      using Kind = SessionUpdate::Kind;
      if (update.kind == Kind::kCurrentModeUpdate || update.kind == Kind::kUsageUpdate ||
          update.kind == Kind::kSessionInfoUpdate || update.kind == Kind::kUserMessageChunk) {
        return;
      }
      if (update.kind == Kind::kPlan) parent_.showing_child_plan = true;
      if (update.kind != Kind::kToolCall && update.kind != Kind::kToolCallUpdate) {
        return parent_.Emit(update);
      }
      SessionUpdate own = update;
      own.tool.id = Key(update.tool.id);
      parent_.Emit(own);
    }
    PermissionReply RequestPermission(const std::string&, const PermissionRequest& request,
                                      const std::atomic<bool>& cancelled) override {
      PermissionRequest own = request;
      own.tool.id = Key(request.tool.id);
      return parent_.client.RequestPermission(parent_.session.id_, own, cancelled);
    }
    void OnToolOutput(const std::string&, const std::string& tool_call_id,
                      std::string_view chunk) override {
      parent_.client.OnToolOutput(parent_.session.id_, Key(tool_call_id), chunk);
    }
    FileAccess* files() override { return parent_.client.files(); }
    CommandRunner* commands() override { return parent_.client.commands(); }

   private:
    // The child's tool call ids, made the parent's own: the two sessions number their calls
    // alike (XML calls, providers with fixed ids), and an editor took the child's first call
    // for the parent's new_task.
    std::string Key(const std::string& id) const { return prefix_ + id; }

    Turn& parent_;
    std::string prefix_;
  } forward(*this, "sub_" + child->id().substr(0, 8) + "_");
  {
    std::lock_guard lock(session.mutex_);
    state.active_child = child;
    state.subtask = child;
    state.subtask_id = child->id();
  }
  SaveRecord();  // With the subtask's id: a task killed meanwhile goes on in it when resumed.
  Result<StopReason> stop = child->Prompt(text, forward);
  {
    std::lock_guard lock(session.mutex_);
    state.active_child.reset();
  }
  CountSubtask(*child);
  {
    // Its "always" answers hold in the rest of the task too.
    std::scoped_lock lock(session.mutex_, child->mutex_);
    session.AdoptAlwaysAnswersLocked(child->state_->always_answers);
  }
  std::string result;
  {
    std::lock_guard lock(child->mutex_);
    result = child->state_->completion_result;
  }
  if (stop.ok() && result.empty()) {
    // Stopped before completing (it asked the user, a limit stopped it and the user said no,
    // the model made too many mistakes, the user cancelled): so does the task, and the next
    // prompt goes on in it.
    if (*stop == StopReason::kCancelled) session.cancelled_.store(true);
    std::lock_guard lock(session.mutex_);
    state.awaiting = State::Awaiting::kSubtask;
    state.status = SessionStatus::kWaiting;
    outcome.ends_turn = true;
    outcome.stop = *stop;
    outcome.shown = "The subtask " + child->id() +
                    " stopped before completing; the next message goes on in it.";
    return outcome;
  }
  return ChildOutcome(*child, stop);
}

void Session::Turn::CountSubtask(Session& child) {
  // A task's totals include its subtasks', all of them alike (what the task cost, and what
  // approvals.max_cost_usd guards); the child keeps its own. Counted from where they were last
  // counted (kept with the task's record, for a task killed during the subtask).
  SessionInfo info = child.Info();
  std::lock_guard lock(session.mutex_);
  SessionTotals& counted = state.subtask_counted;
  state.totals.input_tokens += info.totals.input_tokens - counted.input_tokens;
  state.totals.output_tokens += info.totals.output_tokens - counted.output_tokens;
  state.totals.cache_read_tokens += info.totals.cache_read_tokens - counted.cache_read_tokens;
  state.totals.cache_write_tokens += info.totals.cache_write_tokens - counted.cache_write_tokens;
  state.totals.cost_usd += info.totals.cost_usd - counted.cost_usd;
  state.totals.requests += info.totals.requests - counted.requests;
  counted = info.totals;
}

Session::Turn::ToolOutcome Session::Turn::ChildOutcome(Session& child,
                                                       const Result<StopReason>& stop) {
  ToolOutcome outcome;
  std::string result;
  {
    std::lock_guard lock(child.mutex_);
    result = child.state_->completion_result;
  }
  {
    std::lock_guard lock(session.mutex_);
    state.subtask.reset();
    state.subtask_id.clear();
    state.subtask_counted = {};
  }
  if (showing_child_plan) {
    showing_child_plan = false;
    SessionUpdate plan;
    plan.kind = SessionUpdate::Kind::kPlan;
    plan.plan = PlanOf(state.todos);
    Emit(plan);
  }
  if (!stop.ok()) {
    outcome.is_error = true;
    outcome.text = ToolErrorText("The subtask failed: " + stop.error().message());
    return outcome;
  }
  outcome.text = "Subtask " + child.id() + " completed. Result:\n" + result;
  // The user saw the result as the subtask's last words, just above.
  outcome.shown = "Subtask " + child.id() + " completed.";
  return outcome;
}

Result<std::shared_ptr<Session>> Session::Turn::WaitingSubtask() {
  std::string id;
  {
    std::lock_guard lock(session.mutex_);
    if (state.subtask) return state.subtask;
    id = state.subtask_id;
  }
  std::shared_ptr<Session> child = session.engine_.Find(id);
  if (!child) {
    Result<std::shared_ptr<Session>> loaded = session.engine_.LoadSession(id);
    if (!loaded.ok()) {
      return Error(loaded.error().code(), "the subtask " + id + " could not be opened to go on (" +
                                              loaded.error().message() + ")");
    }
    child = *loaded;
  }
  SessionInfo info = child->Info();
  std::lock_guard lock(session.mutex_);
  state.subtask = child;
  // A record of before the counted totals were kept: its earlier work is taken as counted.
  if (state.subtask_counted.requests < 0) state.subtask_counted = info.totals;
  return child;
}

Result<std::string> Session::Turn::Summarize(const std::string& system_prompt,
                                             const std::vector<llm::Message>& messages) {
  llm::CompletionRequest request;
  request.system_prompt = system_prompt;
  request.messages = messages;
  struct Collected {
    std::mutex mutex;
    std::condition_variable done_signal;
    std::string text;
    llm::Usage usage;
    std::optional<llm::StreamError> error;
    bool done = false;
  };
  auto collected = std::make_shared<Collected>();
  ASSIGN_OR_RETURN(
      std::shared_ptr<llm::StreamHandle> handle,
      session.engine_.pool_.Stream(state.profile.name, std::move(request),
                                   [collected](const llm::StreamEvent& event) {
                                     std::lock_guard lock(collected->mutex);
                                     if (event.kind == llm::StreamEvent::Kind::kTextDelta) {
                                       collected->text += event.text;
                                     } else if (event.kind == llm::StreamEvent::Kind::kUsage) {
                                       collected->usage = event.usage;
                                     } else if (event.kind == llm::StreamEvent::Kind::kError) {
                                       collected->error = event.error;
                                       collected->done = true;
                                     } else if (event.kind == llm::StreamEvent::Kind::kDone) {
                                       collected->done = true;
                                     }
                                     if (collected->done) collected->done_signal.notify_one();
                                   }));
  {
    std::lock_guard lock(session.mutex_);
    state.stream = handle;
  }
  if (session.cancelled_.load()) handle->Cancel();
  std::unique_lock lock(collected->mutex);
  collected->done_signal.wait(lock, [&] { return collected->done; });
  {
    std::lock_guard state_lock(session.mutex_);
    state.stream.reset();
    state.totals.cost_usd += collected->usage.cost_usd;
    state.totals.input_tokens += collected->usage.input_tokens;
    state.totals.output_tokens += collected->usage.output_tokens;
    state.totals.requests += 1;
  }
  if (collected->error) {
    return Error(ErrorCode::kUnavailable, "summary request: " + collected->error->message);
  }
  return collected->text;
}

void Session::Turn::Persist(const ContextChange& change) {
  SessionStore* db = store();
  if (db == nullptr || (change.hidden.empty() && !change.added)) return;
  Status status = db->Transaction([&](SessionStore::Writer& writer) -> Status {
    if (change.added) RETURN_IF_ERROR(writer.AppendMessage(session.id_, *change.added));
    for (const MessageVisibility& hidden : change.hidden) {
      RETURN_IF_ERROR(writer.UpdateMessageVisibility(session.id_, hidden));
    }
    return OkStatus();
  });
  if (!status.ok()) spdlog::error("session {}: {}", session.id_, status.ToString());
}

Result<StopReason> Session::Turn::Run(std::string_view text) {
  bool is_first = state.history.empty();
  RETURN_IF_ERROR(RefreshWorkspace());
  RETURN_IF_ERROR(RefreshModes());
  if (state.awaiting == State::Awaiting::kSubtask && !state.subtask_id.empty()) {
    return GoOnInSubtask(text);
  }
  // Rules, AGENTS.md and the modes are read again for each prompt: the user (or the model, last
  // turn) may have changed them. Within a turn the prompt changes with the mode only.
  state.system_prompt.clear();
  std::string expanded = ExpandMentions(text, *state.workspace, ToolSettingsForRoom());
  // A prompt that cannot fit the model's window on its own is refused before it becomes part of
  // the session: nothing is kept or hidden, and the next, smaller prompt works.
  if (int64_t window = state.model.context_window; window > 0) {
    tool_tokens = EstimateTokens(ToolDefinitions());
    int64_t prompt_tokens = EstimateTokens(SystemPrompt()) + tool_tokens;
    int64_t tokens = EstimateTokens(expanded) + prompt_tokens;
    if (tokens > window) {
      // When the system prompt alone is most of it, the project's rules are to blame.
      std::string fix = prompt_tokens * 2 > window
                            ? "the system prompt alone is about " + std::to_string(prompt_tokens) +
                                  " tokens: use a model with a larger context window, or shorten "
                                  "the rules (AGENTS.md, .kilocode/rules/, the global rules) or "
                                  "the mode's instructions"
                            : "shorten it, or mention fewer or smaller files";
      return Error(ErrorCode::kInvalidArgument,
                   "the message is about " + std::to_string(tokens) +
                       " tokens with the system prompt, more than the " + std::to_string(window) +
                       "-token context window of " + state.model.id +
                       "; it was not sent, nor kept in the session: " + fix);
    }
  }
  std::vector<llm::ContentPart> parts(1);
  std::string answer_tool_id;
  std::swap(answer_tool_id, state.awaiting_tool_id);
  if (is_first) {
    parts[0].text = "<task>\n" + expanded + "\n</task>";
    include_file_listing = true;
    std::string title(text.substr(0, text.find('\n')));
    while (!title.empty() && (title.back() == ' ' || title.back() == '\t')) title.pop_back();
    if (title.size() > 80) title = title.substr(0, Utf8CutPosition(title, 77)) + "...";
    {
      std::lock_guard lock(session.mutex_);
      state.title = title;
    }
    Emit(TextUpdate(SessionUpdate::Kind::kSessionInfoUpdate, title));
  } else {
    // The model has not answered yet (the first prompt's request failed): the details that come
    // with this prompt replace that prompt's, so they carry the file listing it had.
    include_file_listing = std::none_of(
        state.history.begin(), state.history.end(),
        [](const HistoryMessage& m) { return m.message.role == llm::Role::kAssistant; });
    switch (state.awaiting) {
      case State::Awaiting::kAnswer: {
        // A number picks one of the suggested answers shown with the question.
        std::string_view trimmed = expanded;
        trimmed.remove_prefix(std::min(trimmed.size(), trimmed.find_first_not_of(" \t\r\n")));
        trimmed.remove_suffix(trimmed.size() - (trimmed.find_last_not_of(" \t\r\n") + 1));
        size_t pick = 0;
        bool is_number = !trimmed.empty() && trimmed.size() <= 3 &&
                         std::all_of(trimmed.begin(), trimmed.end(),
                                     [](char c) { return c >= '0' && c <= '9'; });
        if (is_number) pick = static_cast<size_t>(std::stoi(std::string(trimmed)));
        if (pick >= 1 && pick <= state.suggestions.size()) {
          const Suggestion& chosen = state.suggestions[pick - 1];
          expanded = chosen.text;
          // The user chose the mode with the answer: no question about the switch.
          if (FindMode(state.modes, chosen.mode) != nullptr && chosen.mode != state.mode) {
            {
              std::lock_guard lock(session.mutex_);
              state.mode = chosen.mode;
            }
            Emit(TextUpdate(SessionUpdate::Kind::kCurrentModeUpdate, chosen.mode));
          }
        }
        parts[0].text = "<answer>\n" + expanded + "\n</answer>";
        break;
      }
      case State::Awaiting::kMistakeFeedback:
        parts[0].text = TooManyMistakesText(expanded);
        break;
      case State::Awaiting::kFeedback:
        parts[0].text =
            "The user has provided feedback on the results. Consider their input to continue "
            "the task, and then attempt completion again.\n<feedback>\n" +
            expanded + "\n</feedback>";
        break;
      case State::Awaiting::kNothing:
      case State::Awaiting::kSubtask:  // Without one (GoOnInSubtask takes those).
        parts[0].text = "<user_message>\n" + expanded + "\n</user_message>";
        break;
    }
  }
  if (!answer_tool_id.empty() && state.protocol == ToolProtocol::kNative) {
    parts[0].kind = llm::ContentPart::Kind::kToolResult;
    parts[0].tool_call_id = answer_tool_id;
    parts[0].tool_name = state.awaiting_tool_name;
    AddNotRunResults(answer_tool_id, parts);
  }
  state.awaiting = State::Awaiting::kNothing;
  state.suggestions.clear();
  {
    std::lock_guard lock(session.mutex_);
    state.status = SessionStatus::kActive;
  }
  Emit(TextUpdate(SessionUpdate::Kind::kUserMessageChunk, std::string(text)));
  if (!state.mcp_failures.empty() && !state.has_told_mcp_failures) {
    state.has_told_mcp_failures = true;
    std::string told;
    for (const std::string& failure : state.mcp_failures) told += "(" + failure + ".)\n";
    EmitNotice(told + "(Their tools are not available in this session.)\n\n");
  }
  return Loop(std::move(parts));
}

Result<StopReason> Session::Turn::GoOnInSubtask(std::string_view text) {
  std::string call_id;
  std::swap(call_id, state.awaiting_tool_id);
  Emit(TextUpdate(SessionUpdate::Kind::kUserMessageChunk, std::string(text)));
  ToolOutcome outcome;
  // Set when the prompt did not go to the subtask: it reaches this task's model with the result.
  bool is_said_here = false;
  Result<std::shared_ptr<Session>> child = WaitingSubtask();
  if (child.ok() && (*child)->Info().status == SessionStatus::kCompleted) {
    // The user finished it in its own session meanwhile: its result is taken as it is (it was
    // prompted again, a paid turn of its own).
    CountSubtask(**child);
    outcome = ChildOutcome(**child, StopReason::kEndTurn);
    is_said_here = true;
  } else if (child.ok()) {
    {
      std::lock_guard lock((*child)->mutex_);
      showing_child_plan = !(*child)->state_->todos.empty();
    }
    outcome = RunChild(*child, text);
  } else {
    outcome.is_error = true;
    outcome.text = ToolErrorText(child.error().message());
    is_said_here = true;
    std::lock_guard lock(session.mutex_);
    state.subtask_id.clear();
  }
  if (outcome.ends_turn) {  // Stopped again before completing: the next prompt goes to it too.
    state.awaiting_tool_id = std::move(call_id);
    SaveRecord();
    return outcome.stop;
  }
  // The new_task call's card ends with the subtask (it said the task waited for it).
  SessionUpdate done;
  done.kind = SessionUpdate::Kind::kToolCallUpdate;
  done.tool.id = call_id;
  done.tool.status = outcome.is_error ? ToolStatus::kFailed : ToolStatus::kCompleted;
  done.tool.content.push_back({});
  done.tool.content.back().text = outcome.shown.empty() ? outcome.text : outcome.shown;
  if (!call_id.empty()) Emit(done);
  state.awaiting = State::Awaiting::kNothing;
  {
    std::lock_guard lock(session.mutex_);
    state.status = SessionStatus::kActive;
  }
  std::vector<llm::ContentPart> parts;
  parts.push_back(ResultPart(call_id, "new_task", std::move(outcome.text), outcome.is_error));
  if (state.protocol == ToolProtocol::kNative) AddNotRunResults(call_id, parts);
  if (is_said_here) {
    parts.push_back({});
    parts.back().text = "<user_message>\n" + std::string(text) + "\n</user_message>";
  }
  if (session.cancelled_.load()) {
    Append(LastUserMessage(std::move(parts)), /*with_record=*/true);
    return StopReason::kCancelled;
  }
  return Loop(std::move(parts));
}

void Session::Turn::AddNotRunResults(const std::string& answered_id,
                                     std::vector<llm::ContentPart>& parts) const {
  if (state.history.empty() || state.history.back().message.role != llm::Role::kAssistant) return;
  bool is_after = false;
  for (const llm::ContentPart& part : state.history.back().message.parts) {
    if (part.kind != llm::ContentPart::Kind::kToolCall) continue;
    if (is_after) {
      parts.push_back(ResultPart(part.tool_call_id, part.tool_name,
                                 "Tool [" + part.tool_name + "] " + std::string(kOneToolOnly),
                                 /*is_error=*/true));
    }
    is_after = is_after || part.tool_call_id == answered_id;
  }
}

llm::ContentPart Session::Turn::ResultPart(const std::string& call_id, const std::string& name,
                                           std::string result, bool is_error) const {
  llm::ContentPart part;
  if (state.protocol == ToolProtocol::kNative) {
    part.kind = llm::ContentPart::Kind::kToolResult;
    part.tool_call_id = call_id;
    part.tool_name = name;
    part.is_error = is_error;
    part.text = std::move(result);
  } else {
    part.text = "[" + name + "] Result:\n" + result;
  }
  return part;
}

Result<StopReason> Session::Turn::Loop(std::vector<llm::ContentPart> parts) {
  const AgentSettings& settings = session.engine_.settings_;
  ForcedReduction overflow;  // Recovery from "context too long" errors.
  // The limits count what runs without the user: a prompt of theirs starts counting again.
  state.limits.Reset(state.totals.cost_usd);
  bool append_user = true;
  std::string fallback_noticed;  // The fallback profile this turn told the user of.
  std::string stuck;  // Why the model seems stuck (ToolOutcome::stuck): the user is asked.
  while (true) {
    if (session.cancelled_.load()) {
      // What the user said is kept (a cancel right behind the prompt lost it).
      if (append_user && !parts.empty()) {
        Append(LastUserMessage(std::move(parts)), /*with_record=*/true);
      } else {
        SaveRecord();
      }
      return StopReason::kCancelled;
    }
    {
      std::lock_guard lock(session.mutex_);
      if (!state.pending_mode.empty()) state.mode = std::move(state.pending_mode);
      state.pending_mode.clear();
    }
    if (!stuck.empty() ||
        (settings.mistake_limit > 0 && state.consecutive_mistakes >= settings.mistake_limit)) {
      state.consecutive_mistakes = 0;
      state.awaiting = State::Awaiting::kMistakeFeedback;
      {
        std::lock_guard lock(session.mutex_);
        state.status = SessionStatus::kWaiting;  // For the user's guidance.
      }
      if (append_user) Append(LastUserMessage(std::move(parts)));
      if (!stuck.empty()) return EndWithMessage(Paragraph(stuck));
      return EndWithMessage(Paragraph("The model has made ") +
                            std::to_string(settings.mistake_limit) +
                            " mistakes in a row (replies without a tool call, or calls with "
                            "malformed or missing parameters). Reply with guidance to continue, "
                            "e.g. how to break the task down.");
    }
    if (requests >= settings.max_requests_per_turn) {
      if (append_user) Append(LastUserMessage(std::move(parts)));
      EmitNotice(Paragraph("Stopped: this turn made ") + std::to_string(requests) +
                 " model request" + (requests == 1 ? "" : "s") +
                 ", its limit (agent.max_requests_per_turn). Send a message to continue.");
      SaveRecord();
      return StopReason::kMaxTurnRequests;
    }
    if (std::optional<LimitReached> reached =
            state.limits.Check(state.approvals, state.totals.cost_usd)) {
      ToolCallInfo limit;
      limit.id = "limit_" + std::to_string(state.totals.requests);
      limit.title = reached->message + " Continue the task and start counting again?";
      limit.kind = ToolKind::kOther;
      PermissionRequest ask;
      ask.tool = limit;
      ask.can_always = false;
      ask.is_question = true;
      PermissionReply reply = client.RequestPermission(session.id_, ask, session.cancelled_);
      bool goes_on = reply.outcome == PermissionOutcome::kAllowOnce ||
                     reply.outcome == PermissionOutcome::kAllowAlways ||
                     (reply.outcome == PermissionOutcome::kRejectOnce && !reply.feedback.empty());
      // The question's card in the editor ends with the answer (it spun on otherwise).
      SessionUpdate answered;
      answered.kind = SessionUpdate::Kind::kToolCallUpdate;
      answered.tool.id = limit.id;
      answered.tool.status = goes_on ? ToolStatus::kCompleted : ToolStatus::kFailed;
      Emit(answered);
      if (!goes_on) {
        if (append_user) Append(LastUserMessage(std::move(parts)));
        if (reply.outcome == PermissionOutcome::kCancelled) {
          SaveRecord();
          return StopReason::kCancelled;
        }
        EmitNotice(Paragraph("Stopped: ") + reached->message +
                   " Send a message to continue; counting starts again.");
        SaveRecord();
        return StopReason::kMaxTurnRequests;
      }
      if (!reply.feedback.empty()) {
        parts.push_back({});
        parts.back().text = "<feedback>\n" + reply.feedback + "\n</feedback>";
      }
      state.limits.Reset(state.totals.cost_usd);
    }
    // With the session's row: the previous round's totals and state are saved here.
    if (append_user) Append(UserMessage(std::move(parts)), /*with_record=*/true);
    append_user = true;
    parts.clear();
    if (Status fits = FitContext(); !fits.ok()) {
      SaveRecord();
      return fits.error();
    }
    Reply reply = Request();
    if (reply.error) {
      if (reply.has_output && !reply.message.parts.empty()) {
        bool is_cancel = reply.error->kind == llm::ErrorKind::kCancelled;
        llm::ContentPart note;
        note.text = is_cancel ? "\n\n[Response interrupted by user]"
                              : "\n\n[Response interrupted by API Error]";
        reply.message.parts.push_back(std::move(note));
        Append(std::move(reply.message));
      }
      if (reply.error->kind == llm::ErrorKind::kCancelled || session.cancelled_.load()) {
        SaveRecord();
        return StopReason::kCancelled;
      }
      if (reply.error->kind == llm::ErrorKind::kContextTooLong && !reply.has_output) {
        ContextChange change =
            TruncateHistory("and retried: the provider said the context is too long", &overflow);
        if (!change.hidden.empty()) {  // Nothing left to drop: the same request would fail again.
          Persist(change);
          append_user = false;
          continue;
        }
      }
      SaveRecord();
      return Error(ErrorCode::kUnavailable, reply.error->message);
    }
    EmitUsage();
    overflow.Reset();
    if (reply.stop_reason == "refusal" && reply.calls.empty()) {
      // Not a mistake to send again (each time paid for): the user has to change the request.
      if (!reply.message.parts.empty()) Append(reply.message, /*with_record=*/true);
      EmitNotice(Paragraph(
          "The provider declined to answer (the model refused, or a content filter stopped "
          "it). Rephrase the request, or use another model."));
      SaveRecord();
      return StopReason::kRefusal;
    }
    if (reply.message.parts.empty()) {
      ++state.consecutive_mistakes;
      parts.push_back({});
      parts.back().text = NoToolsUsedText(state.protocol);
      if (session.cancelled_.load()) return StopReason::kCancelled;
      continue;
    }
    // With the session's row: the reply's tokens and cost are kept even if the engine is killed
    // during the tool call that follows.
    Append(reply.message, /*with_record=*/true);
    if (!reply.profile.empty() && reply.profile != state.profile.name &&
        reply.profile != fallback_noticed) {
      // Said where the user reads the answer (a log line is not seen in an editor): another,
      // maybe weaker or dearer, model wrote it. Once per turn and fallback.
      fallback_noticed = reply.profile;
      EmitNotice(Paragraph("(Profile '" + state.profile.name +
                           "' was unavailable; this answer came from its fallback '" +
                           reply.profile + "', model " + reply.model + ".)"));
      breaks_before_text = true;
    }
    if (session.cancelled_.load()) {
      SaveRecord();
      return StopReason::kCancelled;
    }
    if (reply.calls.empty()) {
      if (reply.stop_reason == "length") {
        SaveRecord();
        return StopReason::kMaxTokens;
      }
      ++state.consecutive_mistakes;
      parts.push_back({});
      parts.back().text = NoToolsUsedText(state.protocol);
      continue;
    }
    ToolOutcome outcome = Execute(reply.calls[0]);
    state.consecutive_mistakes = outcome.is_mistake ? state.consecutive_mistakes + 1 : 0;
    stuck = std::move(outcome.stuck);
    // The message's further calls are shown, as not run (the model's history has them; the user
    // never saw them). Their results go with the first's: now, or with the next prompt's answer.
    for (size_t i = 1; i < reply.calls.size(); ++i) {
      const ToolCall& call = reply.calls[i];
      json args = json::parse(call.arguments_json.empty() ? "{}" : call.arguments_json, nullptr,
                              /*allow_exceptions=*/false);
      ShowRefused(call, args.is_object() ? args : json::object(),
                  "Not run: one tool call per message; the model was told to go on from the "
                  "first one's result.");
    }
    if (outcome.ends_turn) {
      if (state.protocol == ToolProtocol::kNative) {
        state.awaiting_tool_id = reply.calls[0].id;
        state.awaiting_tool_name = reply.calls[0].name;
      }
      // Any further calls in the message get their results with the next prompt (native
      // requires one per call); they were not run.
      SaveRecord();
      return outcome.stop;
    }
    for (size_t i = 0; i < reply.calls.size(); ++i) {
      const ToolCall& call = reply.calls[i];
      std::string result =
          i == 0 ? outcome.text : "Tool [" + call.name + "] " + std::string(kOneToolOnly);
      bool is_error = i == 0 ? outcome.is_error : true;
      parts.push_back(ResultPart(call.id, call.name, std::move(result), is_error));
    }
    if (session.cancelled_.load()) {
      Append(LastUserMessage(std::move(parts)), /*with_record=*/true);
      return StopReason::kCancelled;
    }
    // The results and the session's row are stored together at the top of the loop.
  }
}

Result<StopReason> Session::Prompt(std::string_view text, SessionClient& client,
                                   const std::function<bool()>& cancelled_before) {
  {
    // Under mutex_ with Cancel(), so a cancel right after the turn starts is never lost.
    std::unique_lock lock(mutex_);
    // A prompt sent right after a cancel (the user typed on while the agent worked) waits for
    // the cancelled turn to end, which it does within moments: its command is being stopped
    // (2 s at most before SIGKILL), its stream closed.
    if (running_.load() && cancelled_.load()) {
      turn_ended_.wait_for(lock, std::chrono::seconds(10), [this] { return !running_.load(); });
    }
    if (running_.load()) {
      return Error(ErrorCode::kUnavailable,
                   "session " + id_ + " is already running a turn; cancel it or wait");
    }
    running_.store(true);
    // Cancel() reaches the turn from here on (under mutex_); one the front end was asked for
    // before, when Cancel() was a no-op, stops it at once.
    cancelled_.store(cancelled_before && cancelled_before());
  }
  if (state_->options.mcp && !state_->has_mcp_servers) {
    // Servers still starting are waited for (up to their start-up timeout), but a cancel ends
    // the wait: the turn then stops at once, and the next one waits again.
    while (!state_->options.mcp->IsReady() && !cancelled_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!cancelled_.load()) {
      state_->mcp_servers = state_->options.mcp->Servers();
      state_->mcp_failures = state_->options.mcp->Failures();
      state_->has_mcp_servers = true;
    }
  }
  Turn turn{*this, *state_, client, 0, false, 0};
  // What the user typed or piped in may be in another encoding: the history, the store and every
  // request carry it as JSON, which takes UTF-8 only (it aborted the process).
  Result<StopReason> stop = turn.Run(ValidUtf8(text));
  if (!stop.ok() || *stop == StopReason::kCancelled || *stop == StopReason::kMaxTurnRequests ||
      *stop == StopReason::kRefusal) {
    std::lock_guard lock(mutex_);
    state_->status = !stop.ok()                        ? SessionStatus::kFailed
                     : *stop == StopReason::kCancelled ? SessionStatus::kCancelled
                                                       : SessionStatus::kStopped;
  }
  turn.SaveRecord();
  if (SessionStore* db = engine_.store_; db != nullptr && !stop.ok()) {
    // Why it failed stays with the session (only that run's stderr or the editor said it).
    Status stored = db->JournalEvent(id_, kTurnErrorEvent,
                                     json{{"message", stop.error().message()}}.dump(), NowMs());
    if (!stored.ok()) spdlog::error("session {}: {}", id_, stored.error().ToString());
  }
  // The turn's journaled changes reach SQLite now, where other processes (`sessions show`, a
  // resume elsewhere) read them, instead of up to kFoldDelay later.
  if (SessionStore* db = engine_.store_) {
    Status flushed = db->Flush();
    if (!flushed.ok()) spdlog::warn("session {}: {}", id_, flushed.ToString());
  }
  {
    std::lock_guard lock(mutex_);
    running_.store(false);
  }
  turn_ended_.notify_all();
  return stop;
}

void Session::ReleaseForExit() { state_->open_lock.Reset(); }

bool Session::DiscardIfEmpty() {
  std::lock_guard lock(mutex_);
  if (running_.load() || !state_->history.empty()) return false;
  SessionStore* db = engine_.store_;
  if (db == nullptr) return true;
  Status deleted = db->DeleteSession(id_, state_->open_lock);
  if (!deleted.ok()) spdlog::warn("session {}: {}", id_, deleted.ToString());
  return deleted.ok();
}

Status Session::SetMode(std::string_view slug, SessionClient* client) {
  std::string names;
  // A mode added to the modes files since the session opened can be chosen at once.
  std::optional<std::vector<ModeConfig>> reloaded;
  std::string root;  // Set when the mode is unknown and no turn runs (one re-reads the modes).
  {
    std::lock_guard lock(mutex_);
    if (FindMode(state_->modes, slug) == nullptr && !running_.load()) {
      root = state_->workspace->root();
    }
  }
  if (!root.empty()) {
    Result<std::vector<ModeConfig>> modes = LoadModes(engine_.settings_.global_modes_file, root);
    if (modes.ok() && FindMode(*modes, slug) != nullptr) reloaded = *std::move(modes);
  }
  {
    std::lock_guard lock(mutex_);
    if (reloaded && !running_.load()) state_->modes = std::move(*reloaded);
    if (FindMode(state_->modes, slug) != nullptr) {
      // While a turn runs only its thread touches `mode`; it takes the change before its next
      // request.
      (running_.load() ? state_->pending_mode : state_->mode) = std::string(slug);
    } else {
      for (const ModeConfig& mode : state_->modes) names += (names.empty() ? "" : ", ") + mode.slug;
      return Error(ErrorCode::kNotFound,
                   "unknown mode '" + std::string(slug) + "'; the modes are: " + names);
    }
  }
  SessionUpdate update = TextUpdate(SessionUpdate::Kind::kCurrentModeUpdate, std::string(slug));
  const std::string acp_json = ToAcpJson(update);
  if (SessionStore* db = engine_.store_) {
    Status status = db->UpdateSession(RecordLocked());
    if (status.ok()) {
      status = db->AppendEvent(id_, UpdateKindName(update.kind), acp_json, NowMs()).status();
    }
    if (!status.ok()) spdlog::error("session {}: {}", id_, status.ToString());
  }
  if (client != nullptr) client->OnUpdate(id_, update, acp_json);
  return OkStatus();
}

Status Session::Replay(SessionClient& client) {
  SessionStore* db = engine_.store_;
  if (db == nullptr) return OkStatus();
  ASSIGN_OR_RETURN(std::vector<StoredEvent> events, db->LoadEvents(id_));
  for (const StoredEvent& event : events) {
    if (event.kind == kMessageEvent || event.kind == kTurnEndEvent ||
        event.kind == kTurnErrorEvent) {
      continue;
    }
    Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
    if (!update.ok()) {
      spdlog::warn("session {}: skipping stored event {}: {}", id_, event.seq,
                   update.error().message());
      continue;
    }
    client.OnUpdate(id_, *update, ToAcpJson(*update));
  }
  return OkStatus();
}

SessionRecord Session::RecordLocked() const {
  std::lock_guard lock(mutex_);
  const State& state = *state_;
  SessionRecord record;
  record.id = id_;
  record.parent_id = state.options.parent_id;
  record.title = state.title;
  record.workspace = state.options.workspace;
  record.mode = state.mode;
  record.profile = state.profile.name;
  record.model = state.model.id;
  record.tool_protocol = state.protocol;
  record.status = state.status;
  record.created_ms = state.created_ms;
  record.updated_ms = NowMs();
  record.totals = state.totals;
  json todos = json::array();
  for (const TodoItem& todo : state.todos) {
    todos.push_back({{"text", todo.text}, {"status", TodoStatusLabel(todo.status)}});
  }
  record.todos_json = todos.dump();
  json extra = json::object();
  if (!state.always_answers.empty()) extra["always"] = state.always_answers;
  if (!state.subtask_id.empty()) {
    extra["subtask"] = state.subtask_id;
    AddTotalsJson(state.subtask_counted, extra["subtask_counted"]);
  }
  if (!extra.empty()) record.extra_json = extra.dump();
  return record;
}

// ---- Engine

Engine::Engine(llm::ProviderPool& pool, SessionStore* store, AgentSettings settings)
    : pool_(pool), store_(store), settings_(std::move(settings)) {}

Engine::~Engine() = default;

namespace {

Result<llm::ProfileInfo> FindProfile(const llm::ProviderPool& pool, std::string_view name) {
  std::string wanted = name.empty() ? pool.default_profile() : std::string(name);
  std::string names;
  for (const llm::ProfileInfo& profile : pool.Profiles()) {
    if (profile.name == wanted) return profile;
    names += (names.empty() ? "" : ", ") + profile.name;
  }
  return Error(ErrorCode::kInvalidArgument,
               "unknown provider profile '" + wanted + "'; the profiles are: " + names);
}

}  // namespace

Result<std::shared_ptr<Session>> Engine::NewSession(const SessionOptions& options) {
  if (options.workspace.empty() || options.workspace[0] != '/') {
    return Error(ErrorCode::kInvalidArgument,
                 "workspace '" + options.workspace + "' must be an absolute directory path");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const workspace::Workspace> workspace,
                   workspace::Workspace::Open(options.workspace));
  ASSIGN_OR_RETURN(std::vector<ModeConfig> modes,
                   LoadModes(settings_.global_modes_file, workspace->root()));
  std::string mode = options.mode.empty() ? settings_.default_mode : options.mode;
  if (FindMode(modes, mode) == nullptr) {
    std::string names;
    for (const ModeConfig& each : modes) names += (names.empty() ? "" : ", ") + each.slug;
    if (options.mode.empty()) {  // Not the request's fault: the engine's setting.
      return Error(ErrorCode::kUnavailable,
                   "the default mode '" + mode +
                       "' (--mode, or agent.mode in config.toml) is not defined for this "
                       "workspace; the modes are: " +
                       names);
    }
    return Error(ErrorCode::kInvalidArgument,
                 "unknown mode '" + mode + "'; the modes are: " + names);
  }
  ASSIGN_OR_RETURN(llm::ProfileInfo profile, FindProfile(pool_, options.profile));

  std::shared_ptr<Session> session(new Session(*this, NewSessionId()));
  Session::State& state = *session->state_;
  state.options = options;
  state.options.workspace = workspace->root();
  state.workspace = std::move(workspace);
  state.modes = std::move(modes);
  state.mode = mode;
  state.model = pool_.catalog().Resolve(profile.provider, profile.model);
  state.profile = std::move(profile);
  state.protocol = settings_.tool_protocol.value_or(
      state.model.supports_tools ? ToolProtocol::kNative : ToolProtocol::kXml);
  state.approvals = settings_.approvals;
  state.created_ms = NowMs();
  if (store_ != nullptr) {
    ASSIGN_OR_RETURN(state.open_lock, store_->LockSession(session->id()));
    RETURN_IF_ERROR(store_->CreateSession(session->RecordLocked()));
  }
  std::lock_guard lock(mutex_);
  sessions_.push_back(session);
  return session;
}

Result<std::shared_ptr<Session>> Engine::LoadSession(std::string_view id,
                                                     std::shared_ptr<McpServers> mcp,
                                                     std::string_view mode,
                                                     bool keeps_undefined_mode,
                                                     std::optional<std::string> profile_name) {
  if (store_ == nullptr) {
    return Error(ErrorCode::kNotFound, "no session store: sessions are not kept");
  }
  ASSIGN_OR_RETURN(std::optional<SessionRecord> record, store_->FindSession(id));
  if (!record) {
    return Error(ErrorCode::kNotFound,
                 "no session '" + std::string(id) + "'; `lapce-ai sessions list` shows them");
  }
  if (std::shared_ptr<Session> loaded = Find(record->id)) return loaded;
  // Before anything is read: a session another process has open is still being written.
  ASSIGN_OR_RETURN(SessionLock open_lock, store_->LockSession(record->id));
  ASSIGN_OR_RETURN(std::shared_ptr<const workspace::Workspace> workspace,
                   workspace::Workspace::Open(record->workspace));
  ASSIGN_OR_RETURN(std::vector<ModeConfig> modes,
                   LoadModes(settings_.global_modes_file, workspace->root()));
  // A custom mode that is gone is not swapped silently for another (likely a wider) one.
  std::string chosen_mode(mode.empty() ? std::string_view(record->mode) : mode);
  if (FindMode(modes, chosen_mode) == nullptr && !(mode.empty() && keeps_undefined_mode)) {
    std::string names;
    for (const ModeConfig& each : modes) names += (names.empty() ? "" : ", ") + each.slug;
    if (!mode.empty()) {
      return Error(ErrorCode::kInvalidArgument,
                   "unknown mode '" + chosen_mode + "'; the modes are: " + names);
    }
    return Error(ErrorCode::kInvalidArgument,
                 "session " + record->id + " is in mode '" + chosen_mode +
                     "', which is not defined (in .kilocodemodes or the global modes file); "
                     "define it again, or resume the session in one of: " +
                     names);
  }
  Result<llm::ProfileInfo> profile = FindProfile(pool_, profile_name.value_or(record->profile));
  if (!profile.ok() && !profile_name) {
    return Error(ErrorCode::kInvalidArgument,
                 "session " + record->id + " used the provider profile '" + record->profile + "'" +
                     (record->profile == llm::kAdHocProfileName
                          ? " (a one-off --provider/--model/--base-url)"
                          : "") +
                     ", which is not configured here; nothing was sent. Name the provider again "
                     "(--provider, --model, --base-url as before, or --profile P)");
  }
  if (!profile.ok()) return std::move(profile).error();

  std::shared_ptr<Session> session(new Session(*this, record->id));
  Session::State& state = *session->state_;
  state.open_lock = std::move(open_lock);
  state.options.workspace = workspace->root();
  state.options.parent_id = record->parent_id;
  state.options.profile = profile->name;
  state.options.mcp = std::move(mcp);
  state.workspace = std::move(workspace);
  state.modes = std::move(modes);
  state.mode = std::move(chosen_mode);
  state.model = pool_.catalog().Resolve(profile->provider, profile->model);
  state.profile = std::move(*profile);
  state.protocol = record->tool_protocol;
  state.approvals = settings_.approvals;
  // The user's "always" answers of earlier processes hold again.
  json extra = json::parse(record->extra_json, nullptr, false);
  if (extra.is_object() && extra.contains("always") && extra["always"].is_array()) {
    for (const json& answer : extra["always"]) {
      std::lock_guard lock(session->mutex_);
      session->ApplyAlwaysAnswerLocked(answer);
      state.always_answers.push_back(answer);
    }
  }
  state.title = record->title;
  state.status = record->status;
  state.created_ms = record->created_ms;
  state.totals = record->totals;
  if (json todos = json::parse(record->todos_json, nullptr, false); todos.is_array()) {
    for (const json& todo : todos) {
      if (!todo.is_object()) continue;
      state.todos.push_back(
          {todo.value("text", ""), ParseTodoStatus(todo.value("status", std::string()))});
    }
  }
  ASSIGN_OR_RETURN(state.history, store_->LoadMessages(record->id));
  if (record->status == SessionStatus::kCompleted || record->status == SessionStatus::kWaiting) {
    // A question is the model's last message; the mistake limit leaves the tool results last.
    bool is_question =
        !state.history.empty() && state.history.back().message.role == llm::Role::kAssistant;
    state.awaiting = record->status == SessionStatus::kCompleted
                         ? Session::State::Awaiting::kFeedback
                     : is_question ? Session::State::Awaiting::kAnswer
                                   : Session::State::Awaiting::kMistakeFeedback;
    // The native call the next prompt answers (attempt_completion / ask_followup_question): the
    // first call of the last message, as the turn that ended left it.
    if (state.protocol == ToolProtocol::kNative && !state.history.empty() &&
        state.history.back().message.role == llm::Role::kAssistant) {
      for (const llm::ContentPart& part : state.history.back().message.parts) {
        if (part.kind != llm::ContentPart::Kind::kToolCall) continue;
        state.awaiting_tool_id = part.tool_call_id;
        state.awaiting_tool_name = part.tool_name;
        if (part.tool_name == "ask_followup_question") {
          state.suggestions = SuggestionsOf(json::parse(part.arguments_json, nullptr, false));
        }
        break;
      }
    }
  }

  // A subtask that stopped before completing, or was running when the engine stopped: the task
  // goes on in it, if the last message is still the new_task call it answers.
  if (extra.is_object() && extra.value("subtask", json()).is_string() && !state.history.empty() &&
      state.history.back().message.role == llm::Role::kAssistant &&
      record->status != SessionStatus::kCompleted) {
    for (const llm::ContentPart& part : state.history.back().message.parts) {
      if (part.kind != llm::ContentPart::Kind::kToolCall &&
          state.protocol == ToolProtocol::kNative) {
        continue;
      }
      state.awaiting = Session::State::Awaiting::kSubtask;
      state.subtask_id = extra["subtask"].get<std::string>();
      const json counted = extra.value("subtask_counted", json());
      state.subtask_counted = TotalsFromJson(counted);
      if (!counted.is_object()) state.subtask_counted.requests = -1;  // WaitingSubtask sets it.
      state.awaiting_tool_id = part.tool_call_id;
      state.awaiting_tool_name = part.tool_name;
      break;
    }
  }
  // A reply the engine was streaming when it stopped: its shown text is in the events after the
  // last stored message. Keep it in the history so the model sees what the user saw.
  ASSIGN_OR_RETURN(std::vector<StoredEvent> events, store_->LoadEvents(record->id));
  // Only a turn that never ended (status still active, or failed and then killed before it kept
  // its partial reply) left a reply unfinished; after a completion or a question the chunks after
  // the last message are the engine's own text.
  std::optional<llm::Message> unfinished = UnfinishedReply(events);
  if (unfinished &&
      (record->status == SessionStatus::kActive || record->status == SessionStatus::kFailed)) {
    HistoryMessage message;
    message.seq = NextSeq(state.history);
    message.time_ms = NowMs();
    message.message = std::move(*unfinished);
    message.token_estimate = EstimateTokens(message.message);
    RETURN_IF_ERROR(StoreMessage(*store_, record->id, message));
    state.history.push_back(std::move(message));
  }
  // Tool calls the stopped engine never ended are ended now, as failed, so an editor replaying
  // the session does not show them running for ever.
  if (record->status == SessionStatus::kActive || record->status == SessionStatus::kFailed) {
    for (const SessionUpdate& ending : UnfinishedToolCalls(events)) {
      RETURN_IF_ERROR(
          store_->AppendEvent(record->id, UpdateKindName(ending.kind), ToAcpJson(ending), NowMs())
              .status());
    }
  }
  std::lock_guard lock(mutex_);
  sessions_.push_back(session);
  return session;
}

std::shared_ptr<Session> Engine::Find(std::string_view id) const {
  std::lock_guard lock(mutex_);
  for (const std::shared_ptr<Session>& session : sessions_) {
    if (session->id() == id) return session;
  }
  return nullptr;
}

void Engine::Close(std::string_view id) {
  std::lock_guard lock(mutex_);
  std::erase_if(sessions_, [&](const std::shared_ptr<Session>& session) {
    return session->id() == id && !session->is_running();
  });
}

Status Engine::Claim(std::string_view id, const void* holder) {
  std::lock_guard lock(mutex_);
  auto [it, is_new] = holders_.try_emplace(std::string(id), holder);
  if (!is_new && it->second != holder) {
    // kUnavailable, as when another process holds it: the same JSON-RPC error either way
    // (kPermissionDenied would tell an ACP client to authenticate).
    return Error(ErrorCode::kUnavailable,
                 "session " + std::string(id) +
                     " is open in another editor connection to this lapce-ai; close it there "
                     "first");
  }
  return OkStatus();
}

void Engine::Release(std::string_view id, const void* holder) {
  {
    std::lock_guard lock(mutex_);
    auto it = holders_.find(id);
    if (it == holders_.end() || it->second != holder) return;
    holders_.erase(it);
  }
  Close(id);
}

}  // namespace lai::agent
