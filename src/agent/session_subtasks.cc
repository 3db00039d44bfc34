// new_task subtasks: a child session whose work is shown in its parent's turn, whose result
// returns to the parent, and which a later prompt goes on in when it stopped before completing.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/internal/session_turn.h"

namespace lai::agent {

using internal::NowMs;
using internal::PlanOf;
using internal::TextUpdate;
using nlohmann::json;

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
  // (the task's own plan is shown again when it ends), and its usage as the task's (its context,
  // the task's cost). Its mode is its own.
  class Forward : public SessionClient {
   public:
    Forward(Turn& parent, std::string prefix) : parent_(parent), prefix_(std::move(prefix)) {}
    void OnUpdate(const std::string&, const SessionUpdate& update, std::string_view) override {
      using Kind = SessionUpdate::Kind;
      if (update.kind == Kind::kCurrentModeUpdate || update.kind == Kind::kSessionInfoUpdate ||
          update.kind == Kind::kUserMessageChunk) {
        return;
      }
      if (update.kind == Kind::kUsageUpdate) return parent_.Emit(parent_.TaskUsage(update));
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
    void OnRetrying(const std::string&, const std::string& notice) override {
      parent_.client.OnRetrying(parent_.session.id_, notice);
    }
    void OnNotice(const std::string&, const std::string& notice) override {
      parent_.client.OnNotice(parent_.session.id_, notice);
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
    // for the parent's new_task. The prefix is the child id's random end: subtasks started
    // within seconds share its start (time), and their cards took each other's place.
    std::string Key(const std::string& id) const { return prefix_ + id; }

    Turn& parent_;
    std::string prefix_;
  } forward(*this, "sub_" + child->id().substr(child->id().size() - 8) + "_");
  {
    std::scoped_lock lock(session.mutex_, child->mutex_);
    state.active_child = child;
    state.subtask = child;
    state.subtask_id = child->id();
    child->state_->parent_turn = this;
  }
  SaveRecord();  // With the subtask's id: a task killed meanwhile goes on in it when resumed.
  Result<StopReason> stop = child->Prompt(text, forward);
  {
    std::scoped_lock lock(session.mutex_, child->mutex_);
    state.active_child.reset();
    child->state_->parent_turn = nullptr;
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

SessionUpdate Session::Turn::TaskUsage(const SessionUpdate& child_usage) {
  SessionUpdate usage = child_usage;
  std::lock_guard lock(session.mutex_);
  usage.cost_usd = state.totals.cost_usd + child_usage.cost_usd - state.subtask_counted.cost_usd;
  return usage;
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

}  // namespace lai::agent
