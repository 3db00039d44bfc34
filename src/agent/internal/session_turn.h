// Session::State and Session::Turn, the parts of a session's turn shared by session.cc (the turn
// loop), session_tools.cc (tool calls and approvals) and session_subtasks.cc (new_task). Internal
// to lai::agent; a Turn is confined to its session's turn thread (State as its comment says).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/context.h"
#include "agent/mcp.h"
#include "agent/session.h"
#include "agent/session_tool_specs.h"
#include "agent/store.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool.h"
#include "agent/xml_tools.h"
#include "llm/pool.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace internal {

// What the model asked for in one assistant message.
struct ToolCall {
  std::string id;  // Native: the provider's id; XML: generated.
  std::string name;
  std::string arguments_json;  // Empty when the call could not be parsed (see error).
  std::string error;           // Malformed: what the model did wrong.
  std::string signature;       // Gemini's thoughtSignature of the call, sent back with it.
  bool is_partial = false;     // XML: its closing tag never came.
};

// One suggested answer of an ask_followup_question call, and the mode choosing it switches to.
struct Suggestion {
  std::string text;
  std::string mode;  // "" = none.
};

// What context management changed, to persist.
struct ContextChange {
  std::vector<MessageVisibility> hidden;
  std::optional<HistoryMessage> added;
};

int64_t NowMs();
SessionUpdate TextUpdate(SessionUpdate::Kind kind, std::string text);
std::vector<PlanEntry> PlanOf(const std::vector<TodoItem>& todos);
int64_t NextSeq(const std::vector<HistoryMessage>& history);
// The message and its "message" event, and the session's row when `record` is given, journaled
// together (one write, folded in one transaction): a load then knows which streamed text never
// became a message.
Status StoreMessage(SessionStore& store, const std::string& session_id,
                    const HistoryMessage& message, const SessionRecord* record = nullptr);
// The suggested answers of an ask_followup_question call (its follow_up array), in order.
std::vector<Suggestion> SuggestionsOf(const nlohmann::json& args);

}  // namespace internal

// What a session is; guarded by Session::mutex_ where other threads read it (Info()), otherwise
// confined to the turn thread.
struct Session::State {
  using json = nlohmann::json;
  using Suggestion = internal::Suggestion;

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
  // Why a modes file was left out (LoadedModes::problems), and what the user was last told of it.
  std::vector<std::string> mode_problems;
  std::vector<std::string> told_mode_problems;
  AutoApproveSettings approvals;  // The settings plus this session's "always" answers.
  // Kinds the user rejected for good in this session ("always reject"), and the commands (a
  // command's rejection refuses only that command, as a deny-list prefix, whatever the
  // approval settings say).
  std::set<ApprovalKind> rejected_always;
  std::vector<std::string> rejected_commands;
  std::set<std::string> allowed_mcp;  // "server tool name" / "server resources" allowed always.
  // The session questions rejected always: "mode_switch", "subtasks", or "mcp <what>" (one MCP
  // tool, as allowed_mcp).
  std::set<std::string> rejected_session;
  // Calls of the last assistant message that a stopped engine left awaiting their approval
  // (UnfinishedCall::started false): they never ran, and the next prompt tells the model so.
  std::vector<std::string> unstarted_calls;
  // The user's "always" answers, in order: kept with the session (its record's extra) and
  // applied again when it is loaded, so they hold in the editor's next process too.
  json always_answers = json::array();
  int64_t last_context_tokens = 0;
  int consecutive_mistakes = 0;
  ToolRepetitionDetector repetition;
  ApprovalLimits limits;
  // The turn of the task a running subtask belongs to (set by RunChild; the child runs on its
  // thread): the child's requests and cost count in that task's limits (Turn::Root).
  Turn* parent_turn = nullptr;
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
  // Messages of the history a store write failed to keep (a full disk): stored, in order,
  // before the next message is (Turn::Append).
  std::vector<HistoryMessage> unsaved_messages;
};

// One Prompt() call: the client, and helpers that persist before they show.
struct Session::Turn {
  using json = nlohmann::json;
  using ToolCall = internal::ToolCall;
  using ContextChange = internal::ContextChange;

  Session& session;
  State& state;
  SessionClient& client;
  int requests = 0;
  bool include_file_listing = false;

  SessionStore* store() { return session.engine_.store_; }

  // The task's top turn. A subtask's requests and cost count in its turn's request count and
  // the user's limits: the user sees one task (counting afresh in each child let a model that
  // delegates run on without bound).
  Turn& Root() { return state.parent_turn != nullptr ? state.parent_turn->Root() : *this; }

  bool has_shown_text = false;      // An agent_message_chunk was shown in this turn.
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

  // The first failure to store what this turn did (a full disk, a damaged store). What the
  // user was shown is not taken back, but nothing more is run: the turn stops at its next step
  // (Unsaved), since what it would do could not be recorded either.
  std::optional<Error> unsaved;
  void NoteUnsaved(const Error& error) {
    if (unsaved) return;  // Said once: every later write fails alike.
    spdlog::error("session {}: {}", session.id_, error.ToString());
    unsaved = error;
  }
  // The turn's error once a write failed.
  Error Unsaved() const;

  // Adds an event to the session's stored events.
  void Journal(std::string_view kind, const std::string& payload_json) {
    if (SessionStore* db = store()) {
      Status stored = db->JournalEvent(session.id_, kind, payload_json, internal::NowMs());
      if (!stored.ok()) NoteUnsaved(stored.error());
    }
  }

  // Stores and keeps a message; with_record also saves the session's row (SaveRecord) in the
  // same transaction. Messages an earlier write failed to store (State::unsaved_messages) are
  // stored first, in order, so the stored history has no hole where the model's has a message.
  void Append(llm::Message message, bool with_record = false) {
    HistoryMessage entry;
    entry.seq = internal::NextSeq(state.history);
    entry.time_ms = internal::NowMs();
    entry.token_estimate = EstimateTokens(message);
    entry.message = std::move(message);
    if (SessionStore* db = store()) {
      auto& pending = state.unsaved_messages;
      while (!pending.empty()) {
        Status retried = internal::StoreMessage(*db, session.id_, pending.front());
        if (!retried.ok()) {
          NoteUnsaved(retried.error());
          break;
        }
        pending.erase(pending.begin());
      }
      std::optional<SessionRecord> record;
      if (with_record) record = session.RecordLocked();
      Status status = pending.empty() ? internal::StoreMessage(*db, session.id_, entry,
                                                               record ? &*record : nullptr)
                                      : Status(*unsaved);
      if (!status.ok()) {
        NoteUnsaved(status.error());
        pending.push_back(entry);
      }
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
  // The results of the last message's calls in state.unstarted_calls (a stopped engine left them
  // awaiting approval), for the next prompt; empties the list.
  void AddUnstartedResults(std::vector<llm::ContentPart>& parts);
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
  std::string UnusedToolCallId(const std::string& id,
                               const std::vector<ToolCall>& reply_calls) const;
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
  // " of N tokens": the output limit requests ask for; "" when they leave it to the provider.
  std::string OutputLimitWords() const;
  // A tool call's card goes from pending to in_progress: it was approved and runs.
  void EmitRunning(const std::string& call_id);
  // A subtask's usage as its task's: the child's context, the task's cost with the child's.
  SessionUpdate TaskUsage(const SessionUpdate& child_usage);
  // A notice stored as agent text that front ends show as they choose (OnRetrying, OnNotice).
  void JournalNotice(const std::string& notice);
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
    if (!status.ok()) NoteUnsaved(status.error());
  }
};

}  // namespace lai::agent
