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
#include "agent/internal/session_turn.h"
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

using nlohmann::json;

namespace internal {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

Status StoreMessage(SessionStore& store, const std::string& session_id,
                    const HistoryMessage& message, const SessionRecord* record) {
  SessionStore::Changes changes;
  RETURN_IF_ERROR(changes.AppendMessage(session_id, message));
  RETURN_IF_ERROR(changes.AppendEvent(session_id, kMessageEvent, json{{"seq", message.seq}}.dump(),
                                      message.time_ms));
  if (record != nullptr) RETURN_IF_ERROR(changes.UpdateSession(*record));
  return store.Journal(std::move(changes));
}

}  // namespace internal

using internal::ContextChange;
using internal::NextSeq;
using internal::NowMs;
using internal::PlanOf;
using internal::StoreMessage;
using internal::Suggestion;
using internal::SuggestionsOf;
using internal::TextUpdate;
using internal::ToolCall;

namespace {

// Room kept in a summary request for its system prompt (the condense prompt, or the user's).
constexpr int64_t kSummaryPromptAllowanceTokens = 2000;

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

bool IsJsonObjectText(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false).is_object();
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

const XmlToolSpec* FindXmlSpec(std::string_view name) {
  for (const XmlToolSpec& spec : AllXmlSpecs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

std::optional<llm::Message> UnfinishedReply(const std::vector<StoredEvent>& events) {
  std::string partial;
  // After a tool call starts, what is said until it ends (or the next stored message) is a
  // subtask's (its updates are shown in the parent): never the parent's own reply. A call that
  // ends at once (a context change shown as one) leaves the reply going on after it.
  bool in_tool = false;
  std::string open_call;
  auto ends = [](const SessionUpdate& update) {
    return update.tool.status && (*update.tool.status == ToolStatus::kCompleted ||
                                  *update.tool.status == ToolStatus::kFailed);
  };
  for (const StoredEvent& event : events) {
    if (event.kind == kMessageEvent || event.kind == kTurnEndEvent ||
        event.kind == kTurnErrorEvent) {
      partial.clear();
      in_tool = false;
    } else if (event.kind == UpdateKindName(SessionUpdate::Kind::kToolCall)) {
      partial.clear();
      if (in_tool) continue;
      Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
      in_tool = !update.ok() || !ends(*update);
      if (update.ok()) open_call = update->tool.id;
    } else if (in_tool && event.kind == UpdateKindName(SessionUpdate::Kind::kToolCallUpdate)) {
      Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
      if (update.ok() && update->tool.id == open_call && ends(*update)) in_tool = false;
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

std::vector<UnfinishedCall> UnfinishedToolCalls(const std::vector<StoredEvent>& events) {
  std::vector<UnfinishedCall> open;
  auto find = [&](const std::string& id) {
    return std::find_if(open.begin(), open.end(),
                        [&](const UnfinishedCall& call) { return call.ending.tool.id == id; });
  };
  for (const StoredEvent& event : events) {
    bool is_call = event.kind == UpdateKindName(SessionUpdate::Kind::kToolCall);
    bool is_update = event.kind == UpdateKindName(SessionUpdate::Kind::kToolCallUpdate);
    if (!is_call && !is_update) continue;
    Result<SessionUpdate> update = SessionUpdateFromAcpJson(event.payload_json);
    if (!update.ok()) continue;
    const std::string& id = update->tool.id;
    const std::optional<ToolStatus>& status = update->tool.status;
    bool ended = status && (*status == ToolStatus::kCompleted || *status == ToolStatus::kFailed);
    auto call = find(id);
    if (ended) {
      if (call != open.end()) open.erase(call);
    } else if (is_call && call == open.end()) {
      UnfinishedCall added;
      added.ending.tool.id = id;
      added.started = status && *status != ToolStatus::kPending;
      open.push_back(std::move(added));
    } else if (call != open.end() && status && *status != ToolStatus::kPending) {
      call->started = true;
    }
  }
  for (UnfinishedCall& call : open) {
    call.ending.kind = SessionUpdate::Kind::kToolCallUpdate;
    call.ending.tool.status = ToolStatus::kFailed;
    ToolCallContent note;
    note.kind = ToolCallContent::Kind::kText;
    note.text = call.started ? "Interrupted: lapce-ai stopped before this finished."
                             : "Not run: lapce-ai stopped while this awaited approval.";
    call.ending.tool.content.push_back(std::move(note));
  }
  return open;
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

std::string Session::Turn::OutputLimitWords() const {
  if (state.model.max_output_tokens <= 0) return "";
  return " of " +
         std::to_string(
             DefaultMaxOutputTokens(state.model.context_window, state.model.max_output_tokens)) +
         " tokens";
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

void Session::Turn::EmitRunning(const std::string& call_id) {
  SessionUpdate running;
  running.kind = SessionUpdate::Kind::kToolCallUpdate;
  running.tool.id = call_id;
  running.tool.status = ToolStatus::kInProgress;
  Emit(running);
}

void Session::Turn::JournalNotice(const std::string& notice) {
  Journal(UpdateKindName(SessionUpdate::Kind::kAgentMessageChunk),
          ToAcpJson(TextUpdate(SessionUpdate::Kind::kAgentMessageChunk, notice)));
  Journal(kTurnEndEvent, "{}");
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

// Some servers number calls per reply ("call_0" in every one): a call keeps an id no other of
// the session has, so that an editor does not take it for an update of an earlier card, and its
// result answers it alone.
std::string Session::Turn::UnusedToolCallId(const std::string& id,
                                            const std::vector<ToolCall>& reply_calls) const {
  auto is_used = [&](const std::string& candidate) {
    for (const ToolCall& call : reply_calls) {
      if (call.id == candidate) return true;
    }
    for (const HistoryMessage& message : state.history) {
      for (const llm::ContentPart& part : message.message.parts) {
        if (part.kind == llm::ContentPart::Kind::kToolCall && part.tool_call_id == candidate) {
          return true;
        }
      }
    }
    return false;
  };
  if (!is_used(id)) return id;
  for (int n = 2;; ++n) {
    std::string candidate = id + "_" + std::to_string(n);
    if (!is_used(candidate)) return candidate;
  }
}

Status Session::Turn::RefreshModes() {
  LoadedModes loaded =
      LoadModes(session.engine_.settings_.global_modes_file, state.workspace->root());
  if (FindMode(loaded.modes, state.mode) == nullptr) {
    std::string problems = ModeProblemsText(loaded);
    return Error(ErrorCode::kInvalidArgument,
                 "this session's mode '" + state.mode +
                     "' is no longer defined (in .kilocodemodes or the global modes file); "
                     "nothing was sent. " +
                     (problems.empty() ? "" : problems + " ") +
                     "Define it again, or switch the session to another mode.");
  }
  std::lock_guard lock(session.mutex_);
  state.modes = std::move(loaded.modes);
  state.mode_problems = std::move(loaded.problems);
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
    // The summary request has the window less its answer and the condense prompt.
    if (budget.context_window > 0) {
      options.max_request_tokens =
          budget.context_window - budget.max_output_tokens - kSummaryPromptAllowanceTokens;
    }
    // history is read and written by the turn thread only; mutex_ guards what Info() reads.
    Result<CondenseResult> condensed = Condense(state.history, options, summarize);
    SaveRecord();  // The summary request's tokens and cost, kept should the engine stop now.
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
  // Halves of the middle are dropped until the history fits (a window that shrank, when the
  // session moved to a smaller model, takes more than one).
  for (int round = 0; truncate && round < 8; ++round) {
    ContextChange change = TruncateHistory(why);
    truncate = !change.hidden.empty();
    Persist(change);
    truncate = truncate && PlanContext(state.history, prompt_tokens, state.calibration, budget,
                                       context_settings)
                               .exceeds_allowed;
  }
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
  // The answer may be as long as the context plan leaves room for, and no longer: a provider
  // told the model's whole output limit refuses a prompt the plan lets through (Anthropic
  // counts both against the window).
  if (state.model.max_output_tokens > 0) {
    request.max_tokens =
        DefaultMaxOutputTokens(state.model.context_window, state.model.max_output_tokens);
  }
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
  std::string text;
  // The reply's reasoning blocks, in order: thought, or only its encrypted form.
  std::vector<llm::ContentPart> reasoning;
  int reasoning_block = -1;
  llm::Usage usage;
  std::vector<XmlEvent> xml_events;
  // What the model says, shown as it streams; <thinking>…</thinking> is shown as thought.
  ThinkingSplitter thinking(xml ? ThoughtTags::kThinking : ThoughtTags::kAll);
  std::vector<ThinkingSplitter::Piece> pieces;
  // XML calls: a reasoning model's leading <think> block is thought, taken off before the parser
  // (a call written in it ran, and the one the model then made was refused).
  ThinkingSplitter leading(ThoughtTags::kThink);
  std::vector<ThinkingSplitter::Piece> leading_pieces;
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
          call.is_partial = true;
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
  auto feed_xml = [&]() -> Status {
    Status fed = OkStatus();
    for (ThinkingSplitter::Piece& piece : leading_pieces) {
      if (piece.is_thought) {
        Emit(TextUpdate(SessionUpdate::Kind::kAgentThoughtChunk, std::move(piece.text)));
      } else if (fed.ok()) {
        fed = xml->Feed(piece.text, xml_events);
        handle_xml(xml_events);
      }
    }
    leading_pieces.clear();
    return fed;
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
          leading.Feed(event.text, leading_pieces);
          Status fed = feed_xml();
          if (!fed.ok()) {
            reply.error =
                llm::StreamError{llm::ErrorKind::kBadResponse, fed.error().message(), {}, 0};
            stop_stream();
          }
        }
        break;
      case llm::StreamEvent::Kind::kReasoningDelta:
        reply.has_output = true;
        if (reasoning.empty() || event.index != reasoning_block || event.redacted) {
          reasoning.emplace_back().kind = llm::ContentPart::Kind::kReasoning;
          reasoning.back().redacted = event.redacted;
          reasoning_block = event.index;
        }
        reasoning.back().text += event.text;
        if (!event.signature.empty()) reasoning.back().signature = event.signature;
        if (!event.text.empty()) {
          Emit(TextUpdate(SessionUpdate::Kind::kAgentThoughtChunk, event.text));
        }
        break;
      case llm::StreamEvent::Kind::kToolCallStart:
      case llm::StreamEvent::Kind::kToolCallDelta:
        reply.has_output = true;
        break;
      case llm::StreamEvent::Kind::kToolCallEnd:
        reply.calls.push_back({UnusedToolCallId(event.tool_call_id, reply.calls),
                               event.tool_name,
                               event.arguments_json,
                               {},
                               event.signature});
        break;
      case llm::StreamEvent::Kind::kUsage:
        usage = event.usage;
        break;
      case llm::StreamEvent::Kind::kRetrying: {
        // Kept as a notice (replayed by session/load, quoted by the transcripts) but shown only
        // by the front ends that ask for it: the terminal's log line says it already.
        std::string notice = "(" + event.text + ".)\n\n";
        JournalNotice(notice);
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
      leading.Finish(leading_pieces);
      if (Status fed = feed_xml(); !fed.ok() && !reply.error) {
        reply.error = llm::StreamError{llm::ErrorKind::kBadResponse, fed.error().message(), {}, 0};
      }
      xml->Finish(xml_events);
      handle_xml(xml_events);
    }
    if (reply.calls.empty() || !xml) finish_shown();
    return true;
  };
  if (session.cancelled_.load()) {  // Cancelled while the request was made ready: not sent.
    reply.error = llm::StreamError{llm::ErrorKind::kCancelled, "cancelled", {}, 0};
    return reply;
  }
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
  ++Root().requests;
  Root().state.limits.RecordRequest();
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
    Root().state.limits.RecordCost(usage.cost_usd);
    state.totals.requests += 1;
    int64_t reported = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
    if (reported > 0) {
      state.calibration.Observe(sent_estimate, reported);
      state.last_context_tokens = reported + usage.output_tokens;
    }
  }

  llm::Message& message = reply.message;
  // Who made the reasoning and signatures: they go back only to that endpoint.
  const llm::ProfileInfo* answered = &state.profile;
  std::vector<llm::ProfileInfo> profiles;
  if (!reply.profile.empty() && reply.profile != state.profile.name) {
    profiles = session.engine_.pool_.Profiles();
    for (const llm::ProfileInfo& profile : profiles) {
      if (profile.name == reply.profile) answered = &profile;
    }
  }
  const std::string origin = llm::ReasoningOrigin(answered->provider, answered->base_url);
  for (llm::ContentPart& part : reasoning) {
    part.origin = origin;
    message.parts.push_back(std::move(part));
  }
  // A reasoning model's leading <think> block (from a server that leaves it in the text) is kept
  // as its thought, which no request sends back (as Kilo Code's): it filled the context.
  if (std::optional<LeadingThink> think = SplitLeadingThink(text)) {
    llm::ContentPart thought;
    thought.kind = llm::ContentPart::Kind::kReasoning;
    thought.text = std::move(think->thought);
    message.parts.push_back(std::move(thought));
    text = std::move(think->rest);
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
      if (!call.signature.empty()) {
        part.signature = call.signature;
        part.origin = origin;
      }
      message.parts.push_back(std::move(part));
    }
  }
  return reply;
}

Result<std::string> Session::Turn::Summarize(const std::string& system_prompt,
                                             const std::vector<llm::Message>& messages) {
  llm::CompletionRequest request;
  request.system_prompt = system_prompt;
  request.messages = messages;
  // One try, not held against the provider: on failure the history is truncated instead.
  request.best_effort = true;
  if (state.model.max_output_tokens > 0) {
    request.max_tokens =
        DefaultMaxOutputTokens(state.model.context_window, state.model.max_output_tokens);
  }
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
    Root().state.limits.RecordCost(collected->usage.cost_usd);
    state.totals.input_tokens += collected->usage.input_tokens;
    state.totals.output_tokens += collected->usage.output_tokens;
    state.totals.cache_read_tokens += collected->usage.cache_read_tokens;
    state.totals.cache_write_tokens += collected->usage.cache_write_tokens;
    state.totals.requests += 1;
  }
  Root().state.limits.RecordRequest();  // A request the user's limit counts like any.
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
  if (!status.ok()) NoteUnsaved(status.error());
}

Error Session::Turn::Unsaved() const {
  return Error(ErrorCode::kIo, "the session could not be saved (" + unsaved->message() +
                                   "), so this turn stopped before doing more. Make room (or "
                                   "mend the store), then send your message again (from a "
                                   "terminal: lapce-ai sessions resume " +
                                   session.id_ + ")");
}

Result<StopReason> Session::Turn::Run(std::string_view text) {
  bool is_first = state.history.empty();
  // The limits count what runs without the user: a prompt of theirs starts counting again (in
  // the task's own turn; a subtask's counts in it).
  if (state.parent_turn == nullptr) state.limits.Reset();
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
  AddUnstartedResults(parts);
  state.awaiting = State::Awaiting::kNothing;
  state.suggestions.clear();
  state.consecutive_mistakes = 0;  // The user's word starts the count again.
  {
    std::lock_guard lock(session.mutex_);
    state.status = SessionStatus::kActive;
  }
  session.interrupted_.store(false);
  Emit(TextUpdate(SessionUpdate::Kind::kUserMessageChunk, std::string(text)));
  if (!state.mcp_failures.empty() && !state.has_told_mcp_failures) {
    state.has_told_mcp_failures = true;
    std::string told;
    for (const std::string& failure : state.mcp_failures) told += "(" + failure + ".)\n";
    told += "(Their tools are not available in this session.)\n\n";
    JournalNotice(told);
    client.OnNotice(session.id_, told);
  }
  if (state.mode_problems != state.told_mode_problems) {
    state.told_mode_problems = state.mode_problems;
    for (const std::string& problem : state.mode_problems) {
      std::string told = "(A modes file was left out: " + problem +
                         ". The other modes work; fix the file to use its modes.)\n\n";
      JournalNotice(told);
      client.OnNotice(session.id_, told);
    }
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

void Session::Turn::AddUnstartedResults(std::vector<llm::ContentPart>& parts) {
  std::vector<std::string> unstarted = std::exchange(state.unstarted_calls, {});
  if (state.history.empty() || state.history.back().message.role != llm::Role::kAssistant) return;
  for (const llm::ContentPart& part : state.history.back().message.parts) {
    // Only the tools that act after an approval, and say so when they get one: a read or a
    // session tool may have been running without a sign of it.
    std::optional<ToolGroup> group = GroupOfTool(part.tool_name);
    bool acts_when_approved = group == ToolGroup::kEdit || group == ToolGroup::kCommand ||
                              group == ToolGroup::kMcp || part.tool_name.starts_with("mcp--");
    bool is_answered = std::any_of(parts.begin(), parts.end(), [&](const llm::ContentPart& p) {
      return p.kind == llm::ContentPart::Kind::kToolResult && p.tool_call_id == part.tool_call_id;
    });
    if (part.kind != llm::ContentPart::Kind::kToolCall || !acts_when_approved || is_answered ||
        std::find(unstarted.begin(), unstarted.end(), part.tool_call_id) == unstarted.end()) {
      continue;
    }
    parts.push_back(ResultPart(part.tool_call_id, part.tool_name,
                               "Not run: lapce-ai stopped while this call awaited the user's "
                               "approval, so it had no effect.",
                               /*is_error=*/true));
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
                            "malformed or missing parameters, or calls the mode does not allow). "
                            "Reply with guidance to continue, "
                            "e.g. how to break the task down.");
    }
    if (const int made = Root().requests; made >= settings.max_requests_per_turn) {
      if (append_user) Append(LastUserMessage(std::move(parts)));
      EmitNotice(Paragraph("Stopped: this turn made ") + std::to_string(made) + " model request" +
                 (made == 1 ? "" : "s") +
                 ", its limit (agent.max_requests_per_turn). Send a message to continue.");
      SaveRecord();
      return StopReason::kMaxTurnRequests;
    }
    if (std::optional<LimitReached> reached = Root().state.limits.Check(state.approvals)) {
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
      Root().state.limits.Reset();
    }
    // With the session's row: the previous round's totals and state are saved here.
    if (append_user) Append(UserMessage(std::move(parts)), /*with_record=*/true);
    append_user = true;
    parts.clear();
    if (unsaved) return Unsaved();  // No request whose answer could not be kept.
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
    if (unsaved) return Unsaved();  // No tool run that could not be recorded.
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
        EmitNotice(Paragraph("(The reply was cut off: it reached the model's output limit" +
                             OutputLimitWords() + ". Say \"go on\" to have it continue.)"));
        SaveRecord();
        return StopReason::kMaxTokens;
      }
      ++state.consecutive_mistakes;
      parts.push_back({});
      parts.back().text = NoToolsUsedText(state.protocol);
      continue;
    }
    ToolCall& last = reply.calls.back();
    if (reply.stop_reason == "length" &&
        (last.is_partial || (last.error.empty() && !last.arguments_json.empty() &&
                             !json::parse(last.arguments_json, nullptr, false).is_object()))) {
      // Cut off by the output limit while the model wrote it: said so (it was told the call was
      // malformed, and sent the same too-long call again).
      last.error = "Not run: your reply reached the output limit" + OutputLimitWords() +
                   " while you wrote this " + last.name +
                   " call, so it arrived incomplete. Send less in one call: write a large file "
                   "in parts (write_to_file with the first part, then insert_content for each "
                   "next one), or change it with apply_diff.";
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
      *stop == StopReason::kRefusal || *stop == StopReason::kMaxTokens) {
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
  // With no turn running the modes files are read again: a mode added since the last prompt can
  // be chosen at once, and one whose file has since been removed or broken is refused now, saying
  // why, rather than at the next prompt. A running turn keeps the modes it started with.
  std::string root;
  {
    std::lock_guard lock(mutex_);
    if (!running_.load()) root = state_->workspace->root();
  }
  std::optional<LoadedModes> loaded;
  if (!root.empty()) loaded = LoadModes(engine_.settings_.global_modes_file, root);
  {
    std::lock_guard lock(mutex_);
    if (running_.load()) loaded.reset();
    const std::vector<ModeConfig>& modes = loaded ? loaded->modes : state_->modes;
    if (FindMode(modes, slug) == nullptr) {
      return Error(ErrorCode::kNotFound,
                   "unknown mode '" + std::string(slug) +
                       "'; the modes are: " + (loaded ? ModeNames(*loaded) : ModeSlugs(modes)));
    }
    if (loaded) {
      state_->modes = std::move(loaded->modes);
      state_->mode_problems = std::move(loaded->problems);
    }
    // While a turn runs only its thread touches `mode`; it takes the change before its next
    // request.
    (running_.load() ? state_->pending_mode : state_->mode) = std::string(slug);
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
  LoadedModes loaded = LoadModes(settings_.global_modes_file, workspace->root());
  std::string mode = options.mode.empty() ? settings_.default_mode : options.mode;
  if (FindMode(loaded.modes, mode) == nullptr) {
    std::string names = ModeNames(loaded);
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
  state.modes = std::move(loaded.modes);
  state.mode_problems = std::move(loaded.problems);
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
  Result<std::shared_ptr<const workspace::Workspace>> opened =
      workspace::Workspace::Open(record->workspace);
  if (!opened.ok()) {
    // Moved, renamed or deleted since: its history is still in the store.
    return Error(opened.error().code(),
                 opened.error().message() + "; the session works in that directory: put the " +
                     "project back there to continue it (`lapce-ai sessions export " + record->id +
                     "` keeps its history)");
  }
  std::shared_ptr<const workspace::Workspace> workspace = std::move(*opened);
  LoadedModes loaded = LoadModes(settings_.global_modes_file, workspace->root());
  // A custom mode that is gone is not swapped silently for another (likely a wider) one.
  std::string chosen_mode(mode.empty() ? std::string_view(record->mode) : mode);
  if (FindMode(loaded.modes, chosen_mode) == nullptr && !(mode.empty() && keeps_undefined_mode)) {
    std::string names = ModeNames(loaded);
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
  state.modes = std::move(loaded.modes);
  state.mode_problems = std::move(loaded.problems);
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
  session->interrupted_.store(record->status == SessionStatus::kActive);
  if (record->status == SessionStatus::kActive || record->status == SessionStatus::kFailed) {
    for (const UnfinishedCall& call : UnfinishedToolCalls(events)) {
      const SessionUpdate& ending = call.ending;
      RETURN_IF_ERROR(
          store_->AppendEvent(record->id, UpdateKindName(ending.kind), ToAcpJson(ending), NowMs())
              .status());
      if (!call.started) state.unstarted_calls.push_back(ending.tool.id);
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
