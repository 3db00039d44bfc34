// Agent sessions and the turn loop: a prompt goes to the model, the stream is forwarded as it
// arrives, at most one tool call per assistant message runs after approval, its result becomes
// the next user message, until attempt_completion, a question, cancellation or a limit.
// Engine is thread-safe; a Session runs one turn at a time (Prompt from one thread; Cancel and
// the accessors from any thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/approval_policy.h"
#include "agent/events.h"
#include "agent/history.h"
#include "agent/tools/tool.h"
#include "base/result.h"

namespace lai::llm {
class ProviderPool;
}

namespace lai::agent {

class McpServers;
class SessionStore;
struct ModeConfig;
struct SessionRecord;

// Whoever shows a session to a user: an ACP connection, an IPC client, the terminal.
// OnUpdate is called from the session's turn thread, in order; RequestPermission blocks that
// thread until the user answers (or `cancelled` becomes true: then answer kCancelled soon).
class SessionClient {
 public:
  virtual ~SessionClient() = default;
  // `acp_json` is ToAcpJson(update), made once for the store and the client. Called on the turn
  // thread, or during a model's stream on the provider's I/O thread: keep it short.
  virtual void OnUpdate(const std::string& session_id, const SessionUpdate& update,
                        std::string_view acp_json) = 0;
  virtual PermissionReply RequestPermission(const std::string& session_id,
                                            const PermissionRequest& request,
                                            const std::atomic<bool>& cancelled) = 0;
  // nullptr = tools use the local file system.
  virtual FileAccess* files() { return nullptr; }
  // nullptr = commands run as local child processes.
  virtual CommandRunner* commands() { return nullptr; }
  // The model request is being sent again (rate limited, overloaded, …) or to a fallback
  // profile: `notice` says why and when, as agent text, for front ends that would otherwise show
  // nothing meanwhile (the log says it too). It is stored as a notice, so a replay shows it as
  // an agent_message_chunk. Called on a provider thread.
  virtual void OnRetrying(const std::string& session_id, const std::string& notice) {
    (void)session_id;
    (void)notice;
  }

  // The engine's word on the session as a turn starts (MCP servers that did not start, a modes
  // file left out). Stored as a notice, like OnRetrying's; shown as agent text unless a front
  // end says it elsewhere. Called on the turn thread.
  virtual void OnNotice(const std::string& session_id, const std::string& notice) {
    ShowAsReplyText(session_id, notice);
  }

  // Output of a command the turn runs locally, as it arrives (the result follows as a
  // tool_call_update): for front ends that show it live. Called on the turn thread.
  virtual void OnToolOutput(const std::string& session_id, const std::string& tool_call_id,
                            std::string_view chunk) {
    (void)session_id;
    (void)tool_call_id;
    (void)chunk;
  }

 protected:
  // Shows `text` as an agent_message_chunk update (for OnRetrying and OnNotice, which show
  // notices as the reply's text).
  void ShowAsReplyText(const std::string& session_id, const std::string& text);
};

enum class StopReason { kEndTurn, kMaxTokens, kMaxTurnRequests, kRefusal, kCancelled };
std::string_view StopReasonName(StopReason reason);  // ACP: "end_turn", …

struct AgentSettings {
  ToolSettings tools;
  AutoApproveSettings approvals;
  std::optional<ToolProtocol> tool_protocol;  // nullopt = the model catalog decides.
  int mistake_limit = 3;                      // 0 = unlimited.
  int max_requests_per_turn = 100;            // Model requests in one prompt turn.
  bool auto_condense = true;
  int condense_threshold_percent = 100;  // Of the context window; 5–100.
  std::string default_mode = "code";
  std::string custom_instructions;  // Global, for every mode.
  std::string global_modes_file;    // Custom modes (YAML/JSON); may not exist.
  std::string global_rules_dir;     // Global rules; may not exist.
};

struct SessionOptions {
  std::string workspace;  // Absolute.
  std::string mode;       // Empty = settings' default.
  std::string profile;    // Empty = the pool's default.
  std::string parent_id;  // A subtask's parent.
  // The MCP servers the session's model may use (use_mcp_tool, access_mcp_resource); null =
  // none. Subtasks share their parent's.
  std::shared_ptr<McpServers> mcp;
};

struct SessionInfo {
  std::string id;
  std::string parent_id;
  std::string title;
  std::string workspace;
  std::string mode;
  std::string profile;
  std::string model;
  ToolProtocol protocol = ToolProtocol::kNative;
  SessionTotals totals;
  int64_t context_tokens = 0;  // Estimated tokens of the next request.
  int64_t context_window = 0;
  std::vector<PlanEntry> todos;
  SessionStatus status = SessionStatus::kActive;
};

class Engine;
struct StoredEvent;

// The reply the engine was streaming when it stopped (killed mid-turn), from a session's stored
// events: the agent message chunks after the last stored message, unless the turn ended after
// them (the engine's own notices, such as a stop at a limit, are not a reply); nullopt when none.
// As the history keeps it: an assistant message marked as cut off.
std::optional<llm::Message> UnfinishedReply(const std::vector<StoredEvent>& events);
// The tool calls in `events` that were shown and never ended: the engine stopped while they ran
// or awaited approval. `ending` ends the call's card (tool_call_update, failed, with a note);
// `started` says whether it got past pending (a first approval, or one it did not need).
struct UnfinishedCall {
  SessionUpdate ending;
  bool started = false;
};
std::vector<UnfinishedCall> UnfinishedToolCalls(const std::vector<StoredEvent>& events);

class Session {
 public:
  ~Session();
  // Runs one turn to its end. Errors: kUnavailable when a turn is already running; provider
  // errors that retries and recovery could not overcome. `cancelled_before`, when given, says
  // whether the front end was asked to cancel this prompt before the turn started (Cancel() is
  // a no-op until then): the turn then stops at once.
  Result<StopReason> Prompt(std::string_view text, SessionClient& client,
                            const std::function<bool()>& cancelled_before = {});
  // Stops the running turn (the stream, a tool, a pending permission); Prompt then returns
  // kCancelled. No-op when idle.
  void Cancel();
  // Errors: kNotFound naming the modes there are.
  Status SetMode(std::string_view slug, SessionClient* client);
  // Sends the stored updates of this session to `client`, in order.
  Status Replay(SessionClient& client);

  const std::string& id() const { return id_; }
  SessionInfo Info() const;
  std::vector<ModeConfig> Modes() const;
  bool is_running() const { return running_.load(); }
  // Loaded after its engine stopped mid-turn (kill -9, a crash), and no turn has run since: its
  // stored status still says active.
  bool was_interrupted() const { return interrupted_.load(); }
  // Deletes the stored session when nothing was ever said in it (its first prompt was refused
  // before it became part of the session) and no turn runs; true when it did. For a front end
  // that created the session for that prompt alone.
  bool DiscardIfEmpty();
  // The process is about to end without destructors (std::_Exit on a signal): gives up the
  // session's lock now, removing its lock file, which would otherwise stay behind. Nothing may
  // use the session after it.
  void ReleaseForExit();

 private:
  friend class Engine;
  struct Turn;
  Session(Engine& engine, std::string id);
  SessionRecord RecordLocked() const;  // The store's row; takes mutex_.
  // An "always" answer (as State keeps them) applied to the session's approvals. Under mutex_.
  void ApplyAlwaysAnswerLocked(const nlohmann::json& answer);
  // Applies and keeps those of `answers` the session has not had (a subtask's answers in its
  // parent, the parent's in a new subtask). Under mutex_.
  void AdoptAlwaysAnswersLocked(const nlohmann::json& answers);

  Engine& engine_;
  const std::string id_;
  std::atomic<bool> running_{false};
  std::atomic<bool> interrupted_{false};  // See was_interrupted().
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;  // Guards state_ fields read by Info() from other threads.
  std::condition_variable turn_ended_;  // With mutex_: running_ became false.
  struct State;
  std::unique_ptr<State> state_;
};

class Engine {
 public:
  // `pool` must outlive the engine; `store` may be null (nothing persisted).
  Engine(llm::ProviderPool& pool, SessionStore* store, AgentSettings settings);
  ~Engine();

  // Errors: kInvalidArgument for a workspace that is not an absolute directory, an unknown mode
  // or profile (naming the choices).
  Result<std::shared_ptr<Session>> NewSession(const SessionOptions& options);
  // A stored session (id or unique prefix), in memory from then on, using `mcp` (as
  // SessionOptions::mcp) when it is not in memory yet, in `mode` (when given) or the mode it was
  // in. Errors: kNotFound; kInvalidArgument when that mode is not defined (any more), unless
  // `keeps_undefined_mode` (an editor, which cannot name a mode on load): the session then loads
  // in it, and its prompts are refused until it is switched to a defined one.
  // `profile` names the provider profile the loaded session uses ("" = the pool's default): the
  // user chose it for this load. Without it, the one the session was stored with; when the pool
  // has no such profile (say a one-off --provider/--base-url of an earlier run) the load fails
  // (kInvalidArgument, saying how to name one): the conversation never goes to another provider
  // unasked.
  Result<std::shared_ptr<Session>> LoadSession(std::string_view id,
                                               std::shared_ptr<McpServers> mcp = nullptr,
                                               std::string_view mode = {},
                                               bool keeps_undefined_mode = false,
                                               std::optional<std::string> profile = std::nullopt);
  // nullptr when not in memory.
  std::shared_ptr<Session> Find(std::string_view id) const;
  // Drops an idle session from memory (it stays in the store).
  void Close(std::string_view id);
  // Editor connections sharing the engine (`serve`) each hold the sessions they opened: a session
  // is held by one connection at a time, as by one process. Claim fails (kPermissionDenied) when
  // another `holder` has it; Release gives it up and closes it if idle, so its lock file goes.
  Status Claim(std::string_view id, const void* holder);
  void Release(std::string_view id, const void* holder);

  const AgentSettings& settings() const { return settings_; }
  llm::ProviderPool& pool() { return pool_; }
  SessionStore* store() { return store_; }

 private:
  friend class Session;
  llm::ProviderPool& pool_;
  SessionStore* store_;
  const AgentSettings settings_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::map<std::string, const void*, std::less<>> holders_;  // Guarded by mutex_.
};

}  // namespace lai::agent
