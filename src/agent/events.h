// What a session tells its client while it works — the ACP `session/update` variants as typed
// values — and what it asks of the client (permission). ToAcpJson gives the exact ACP v1 JSON;
// the store keeps that JSON, so a loaded session replays the same updates. Value types;
// thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::agent {

// ACP ToolKind and ToolCallStatus.
enum class ToolKind { kRead, kEdit, kDelete, kMove, kSearch, kExecute, kThink, kFetch,
                      kSwitchMode, kOther };
enum class ToolStatus { kPending, kInProgress, kCompleted, kFailed };

struct ToolCallContent {
  enum class Kind { kText, kDiff, kTerminal };
  Kind kind = Kind::kText;
  std::string text;                     // kText.
  std::string path;                     // kDiff: absolute.
  std::optional<std::string> old_text;  // kDiff: nullopt for a new file.
  std::string new_text;                 // kDiff.
  std::string terminal_id;              // kTerminal.
};

struct ToolLocation {
  std::string path;  // Absolute.
  int64_t line = 0;  // 1-based; 0 = none.
};

// A tool call as ACP shows it. In an update, only the fields set (title non-empty, optionals
// engaged, vectors non-empty) are sent.
struct ToolCallInfo {
  std::string id;
  std::string title;
  std::optional<ToolKind> kind;
  std::optional<ToolStatus> status;
  std::vector<ToolLocation> locations;
  std::vector<ToolCallContent> content;
  std::string raw_input_json;  // The arguments object; empty = not sent.
  std::string raw_output;      // Empty = not sent.
};

struct PlanEntry {
  enum class Status { kPending, kInProgress, kCompleted };
  std::string content;
  Status status = Status::kPending;
};

struct SessionUpdate {
  enum class Kind {
    kUserMessageChunk,   // text
    kAgentMessageChunk,  // text
    kAgentThoughtChunk,  // text
    kToolCall,           // tool
    kToolCallUpdate,     // tool
    kPlan,               // plan
    kCurrentModeUpdate,  // text = mode slug
    kUsageUpdate,        // used_tokens, context_window, cost_usd
    kSessionInfoUpdate,  // text = title
  };
  Kind kind = Kind::kAgentMessageChunk;
  std::string text;
  ToolCallInfo tool;
  std::vector<PlanEntry> plan;
  int64_t used_tokens = 0;
  int64_t context_window = 0;
  double cost_usd = 0;
};

// The `update` object of an ACP `session/update` notification (compact, one line).
std::string ToAcpJson(const SessionUpdate& update);
// The inverse, for updates read back from the store. Errors: kInvalidArgument naming the field.
Result<SessionUpdate> SessionUpdateFromAcpJson(std::string_view json);
std::string_view ToolKindName(ToolKind kind);  // "read", "edit", …
std::string_view UpdateKindName(SessionUpdate::Kind kind);  // "agent_message_chunk", …

// Stored event kinds that are not updates. "message": a history message was stored here
// (payload {"seq": N}). "turn_end": the agent_message_chunk just before it was the engine's own
// words, not the model's (a fallback's notice, a limit that stopped the turn, a call for
// guidance); kept in no message.
// "turn_error": the turn failed (payload {"message": why}); its prompt was answered with that
// error, and the session shows as failed.
inline constexpr std::string_view kMessageEvent = "message";
inline constexpr std::string_view kTurnEndEvent = "turn_end";
inline constexpr std::string_view kTurnErrorEvent = "turn_error";

// A question to the user before a tool with side effects runs.
struct PermissionRequest {
  ToolCallInfo tool;  // The pending call, with its diff or command as content.
  // Whether "always" options make sense: they do for categories, not for a command that would
  // be asked again anyway.
  bool can_always = true;
  // tool.title is a whole question (a limit on requests or cost: go on?), not an operation to
  // allow. Feedback given instead of an answer means go on, with those words for the model.
  bool is_question = false;
};

enum class PermissionOutcome { kAllowOnce, kAllowAlways, kRejectOnce, kRejectAlways, kCancelled };

struct PermissionReply {
  PermissionOutcome outcome = PermissionOutcome::kCancelled;
  std::string feedback;  // Optional words from the user; reach the model with the result.
};

}  // namespace lai::agent
