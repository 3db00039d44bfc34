// The conversation as a session keeps it: provider-neutral messages with the bookkeeping that
// context management (condense, truncate) and the session store need. Value types;
// thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llm/types.h"

namespace lai::agent {

// How the model is asked to call tools: the provider's function calling, or XML tags in text.
enum class ToolProtocol { kNative, kXml };

// One message of a session's history. Context management never deletes a message: it hides it
// (condensed_by / truncated_by), so the store keeps the whole conversation and a resume sees the
// same effective history.
struct HistoryMessage {
  int64_t seq = 0;  // 1-based position in the session; assigned when appended.
  int64_t time_ms = 0;  // Unix epoch milliseconds.
  llm::Message message;
  int64_t token_estimate = 0;  // Estimated tokens of `message` (see context.h).
  bool is_summary = false;     // An assistant message holding a condensed summary.
  bool is_truncation_marker = false;  // "[Sliding window truncation: …]" user message.
  int64_t condensed_by = 0;    // seq of the summary that replaces this message; 0 = visible.
  int64_t truncated_by = 0;    // seq of the truncation marker that hides it; 0 = visible.

  bool is_visible() const { return condensed_by == 0 && truncated_by == 0; }
};

// Running totals of one session (and what the store keeps per session).
// kWaiting: a question, or a call for guidance, awaits the user's reply. kStopped: a limit
// (requests or cost) or a refusal ended the turn; the user's next message continues the task.
enum class SessionStatus { kActive, kCompleted, kCancelled, kFailed, kWaiting, kStopped };

struct SessionTotals {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_read_tokens = 0;
  int64_t cache_write_tokens = 0;
  double cost_usd = 0;
  int64_t requests = 0;  // Model requests made for this session (including condensing).
  // A parent session's totals include those of its subtasks (new_task) when they end.
};

}  // namespace lai::agent
