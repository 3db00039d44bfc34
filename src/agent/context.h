// Context management for a session's history: token estimates corrected by the provider's usage,
// the allowed-context formula, the per-request plan (nothing / condense / truncate), condensing,
// sliding-window truncation, the effective message list and overflow recovery. Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/history.h"
#include "base/result.h"
#include "llm/types.h"

namespace lai::agent {

// ---- Token estimates -------------------------------------------------------------------------
//
// A fast byte-based estimate (no tokenizer, no allocation), in twelfths of a token per byte:
//   ASCII letters, digits and whitespace  3/12  (~4 bytes per token, prose)
//   ASCII punctuation and symbols         6/12  (~2 bytes per token, code and JSON are dense)
//   every byte of a non-ASCII character   4/12  (~3 bytes per token: one CJK character ≈ 1 token)
// rounded up. A message adds 3 tokens of framing; a tool call is counted as
// "Tool: <name>\nArguments: <json>", a tool result as "Tool Result (<id>)\n[Error]\n<text>", an
// image as ceil(sqrt(base64 bytes)) (300 when the data is absent), reasoning as its text.
// TokenCalibration corrects the systematic error per session from the provider's counts.
int64_t EstimateTokens(std::string_view text);
int64_t EstimateTokens(const llm::Message& message);
// Tool definitions as sent with a native request (name, description, schema of each).
int64_t EstimateTokens(const std::vector<llm::ToolDefinition>& tools);

// The prompt tokens a provider reports for a request, counted the same way for every provider:
// Anthropic reports cache reads and writes apart from input_tokens; OpenAI-style providers
// include them in input_tokens (see llm::CostOf).
int64_t PromptTokens(std::string_view provider, const llm::Usage& usage);

// Learns actual/estimate from requests the provider answered, so later estimates match what the
// provider counts. The ratio starts at 1, follows each observation with weight 1/2 (recent
// requests matter most: the mix of prose and code changes) and stays within [0.5, 3].
// Thread-compatible.
class TokenCalibration {
 public:
  static constexpr double kMinRatio = 0.5;
  static constexpr double kMaxRatio = 3.0;
  // Requests estimated below this are ignored: fixed provider overheads dominate them.
  static constexpr int64_t kMinEstimate = 64;

  // `estimated_tokens`: the raw estimate of what was sent (system prompt, tool definitions and
  // the effective messages); `actual_tokens`: PromptTokens() of that request's usage.
  void Observe(int64_t estimated_tokens, int64_t actual_tokens);
  // The corrected estimate: ceil(raw × ratio).
  int64_t Apply(int64_t raw_estimate) const;
  double ratio() const { return ratio_; }
  int observations() const { return observations_; }

 private:
  double ratio_ = 1.0;
  int observations_ = 0;
};

// ---- Budget and plan --------------------------------------------------------------------------

// Kilo's reserve for the answer when a model's output limit is unknown.
inline constexpr int64_t kDefaultMaxOutputTokens = 8192;
// Share of the window kept free for estimate errors (Kilo's TOKEN_BUFFER_PERCENTAGE).
inline constexpr double kContextBufferFraction = 0.1;

struct ContextBudget {
  int64_t context_window = 0;     // The model's window, tokens.
  int64_t max_output_tokens = 0;  // Reserved for the answer; see DefaultMaxOutputTokens.
};

// The answer reserve: the request's own max_tokens when set; otherwise min(model max output,
// ceil(0.2 × window)); kDefaultMaxOutputTokens when the model's maximum is unknown (0).
int64_t DefaultMaxOutputTokens(int64_t context_window, int64_t model_max_output_tokens,
                               std::optional<int64_t> request_max_tokens = std::nullopt);

// Tokens the prompt (system prompt + tools + messages) may use: floor(0.9 × window) − max
// output, never below 0.
int64_t AllowedTokens(const ContextBudget& budget);

// What the user configures (the lead maps config keys onto it).
struct ContextSettings {
  bool auto_condense = true;        // Summarise with the model when the threshold is reached.
  int auto_condense_percent = 100;  // 5–100: condense when the context reaches this % of window.
};

// kInvalidArgument naming the setting when auto_condense_percent is outside 5–100.
Status ValidateContextSettings(const ContextSettings& settings);

enum class ContextAction {
  kNone,      // Send as is.
  kCondense,  // Try Condense(); if it fails and exceeds_allowed, Truncate(…, 0.5).
  kTruncate,  // Over the limit and condensing is off: Truncate(…, 0.5).
};

struct ContextPlan {
  ContextAction action = ContextAction::kNone;
  int64_t context_tokens = 0;  // Calibrated: system prompt + tools + visible history.
  int64_t allowed_tokens = 0;  // AllowedTokens(budget).
  int percent = 0;             // 100 × context_tokens / window, rounded down.
  bool exceeds_allowed = false;
};

// Decided before each request (Kilo's manageContext): condense when auto-condense is on and the
// context reaches the threshold percent of the window or exceeds the allowed tokens; truncate
// when it exceeds the allowed tokens and condensing is off. `prompt_tokens` is the raw estimate of
// the system prompt plus tool definitions. A window of 0 (unknown) plans nothing.
ContextPlan PlanContext(const std::vector<HistoryMessage>& history, int64_t prompt_tokens,
                        const TokenCalibration& calibration, const ContextBudget& budget,
                        const ContextSettings& settings);

// Raw estimate of the visible history (each message's token_estimate, or EstimateTokens() when
// it is 0).
int64_t VisibleTokens(const std::vector<HistoryMessage>& history);

// ---- Order and effective messages ------------------------------------------------------------
//
// `history` is kept in seq order (the order messages were appended, which is what the store
// keeps). A summary or truncation marker is appended after the messages it hides, but belongs in
// the conversation right after the last of them: ConversationOrder() gives the indices of
// `history` in conversation order, so a resumed session (same seqs, same hide links) sees the
// same conversation. Precondition: `history` sorted by seq.
std::vector<size_t> ConversationOrder(const std::vector<HistoryMessage>& history);

// The text of the tool_result added for a tool call that never got one (Kilo's resume repair).
inline constexpr std::string_view kInterruptedToolResultText =
    "Task was interrupted before this tool call's result was recorded: it may have run, in part "
    "or whole. Check its effects before running it again.";

// The visible messages in conversation order as a provider must get them: starting with a user
// message, roles alternating (adjacent same-role messages merged), every tool call answered by a
// tool result in the next user message (missing ones added with kInterruptedToolResultText, tool
// results placed first in that message), every tool result answering a call of the preceding
// assistant message (orphans become text), and no empty messages.
std::vector<llm::Message> EffectiveMessages(const std::vector<HistoryMessage>& history);

// ---- Condense --------------------------------------------------------------------------------

// Kilo keeps the last 3 messages verbatim.
inline constexpr int kCondenseKeepMessages = 3;
// The final user message of a summarising request.
inline constexpr std::string_view kCondenseRequestText =
    "Summarize the conversation so far, as described in the prompt instructions.";

// Our summary instructions (Kilo's six sections). Used when CondenseOptions::custom_prompt is
// empty.
std::string_view DefaultCondensePrompt();

// Calls the model: the system prompt and the messages to summarise (tool calls and results
// already turned into text, so no tool definitions are needed; ends with kCondenseRequestText).
// Returns the summary text. Supplied by the session; called at most once per Condense().
using Summarizer = std::function<Result<std::string>(const std::string& system_prompt,
                                                     const std::vector<llm::Message>& messages)>;

struct CondenseOptions {
  int64_t next_seq = 0;  // seq of the summary message (must be > every seq in history).
  int64_t now_ms = 0;    // time_ms of the summary message.
  // Raw estimate of system prompt + tool definitions of the main requests, for the token counts.
  int64_t prompt_tokens = 0;
  const TokenCalibration* calibration = nullptr;  // nullptr = raw estimates.
  std::string custom_prompt;  // Replaces DefaultCondensePrompt() when not blank.
  // The most the summary request's messages may take (calibrated): the oldest messages after
  // the first (but the last summary) are left out of it until it fits. 0 = no bound.
  int64_t max_request_tokens = 0;
};

struct CondenseResult {
  HistoryMessage summary;  // As appended to history (is_summary, seq = next_seq).
  // The messages hidden by this condense (their condensed_by is now summary.seq), to persist.
  std::vector<int64_t> condensed_seqs;
  int64_t prev_context_tokens = 0;  // Calibrated, before.
  int64_t new_context_tokens = 0;   // Calibrated, after.
};

// Summarises the visible messages between the first one and the last kCondenseKeepMessages
// (since the last summary, which is summarised again), appends the summary as an assistant
// message and hides what it replaces. The keep boundary moves back so a kept tool result keeps
// its tool call. On error nothing changes. Errors (kResourceExhausted unless noted), with the
// text shown to the user:
//   "Not enough messages to condense: …"    too few visible messages;
//   "Context was condensed recently; …"     nothing new since the last summary, or a summary is
//                                           among the kept messages;
//   the Summarizer's error, with context;
//   "Condensing produced an empty summary"  (kUnavailable);
//   "Context grew from A to B tokens …"     the summary did not make the context smaller.
Result<CondenseResult> Condense(std::vector<HistoryMessage>& history,
                                const CondenseOptions& options, const Summarizer& summarize);

// ---- Truncate --------------------------------------------------------------------------------

struct TruncateResult {
  int64_t messages_hidden = 0;           // By this call; 0 = nothing changed (too few messages).
  std::optional<HistoryMessage> marker;  // As appended to history (is_truncation_marker).
  std::vector<int64_t> truncated_seqs;   // Their truncated_by is now marker->seq, to persist.
};

// The marker's text for `hidden` messages.
std::string TruncationMarkerText(int64_t hidden);

// Kilo's sliding window: keeps the first visible message and hides the next
// n = floor((visible − 1) × fraction) rounded down to even (moved back so no kept tool result
// loses its tool call), then appends a user marker "[Sliding window truncation: N messages hidden
// to reduce context]" with seq `next_seq` that sits where the hidden messages were. Earlier
// markers are not counted as visible messages; one in the hidden range is hidden with it, and N
// counts every message truncation has hidden so far.
TruncateResult Truncate(std::vector<HistoryMessage>& history, double fraction, int64_t next_seq,
                        int64_t now_ms);

// ---- Overflow recovery -----------------------------------------------------------------------

// What the turn loop does when a provider answers "context too long" (llm::ErrorKind::
// kContextTooLong): hide a quarter of the middle (keeping 75%, Kilo's
// FORCED_CONTEXT_REDUCTION_PERCENT) and retry, at most 3 times per request. Thread-compatible.
class ForcedReduction {
 public:
  static constexpr int kMaxRetries = 3;
  static constexpr double kHideFraction = 0.25;

  // Truncates for another attempt. nullopt when the retries are used up or nothing is left to
  // hide: the loop then reports the provider's error.
  std::optional<TruncateResult> Reduce(std::vector<HistoryMessage>& history, int64_t next_seq,
                                       int64_t now_ms);
  // A request went through: the next overflow starts counting again.
  void Reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

 private:
  int attempts_ = 0;
};

}  // namespace lai::agent
