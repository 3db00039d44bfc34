#include "agent/context.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <unordered_set>
#include <utility>

#include "base/check.h"

namespace lai::agent {
namespace {

using llm::ContentPart;
using llm::Message;
using llm::Role;

constexpr int64_t kTwelfthsPerToken = 12;
constexpr int64_t kMessageOverheadTokens = 3;
constexpr int64_t kToolDefinitionOverheadTokens = 3;
constexpr int64_t kUnknownImageTokens = 300;

constexpr std::array<uint8_t, 256> MakeByteWeights() {
  std::array<uint8_t, 256> weights{};
  for (int c = 0; c < 256; ++c) {
    bool is_word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (c >= 0x80) {
      weights[c] = 4;
    } else if (is_word) {
      weights[c] = 3;
    } else {
      weights[c] = 6;
    }
  }
  return weights;
}
constexpr std::array<uint8_t, 256> kByteWeights = MakeByteWeights();

int64_t Twelfths(std::string_view text) {
  int64_t sum = 0;
  for (unsigned char c : text) sum += kByteWeights[c];
  return sum;
}

int64_t CeilDiv(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

int64_t MessageTokens(const HistoryMessage& message) {
  return message.token_estimate > 0 ? message.token_estimate : EstimateTokens(message.message);
}

bool HasToolCalls(const Message& message) {
  return std::any_of(message.parts.begin(), message.parts.end(), [](const ContentPart& part) {
    return part.kind == ContentPart::Kind::kToolCall;
  });
}

bool HasToolResults(const Message& message) {
  return std::any_of(message.parts.begin(), message.parts.end(), [](const ContentPart& part) {
    return part.kind == ContentPart::Kind::kToolResult;
  });
}

ContentPart TextPart(std::string text) {
  ContentPart part;
  part.kind = ContentPart::Kind::kText;
  part.text = std::move(text);
  return part;
}

std::string ToolResultAsText(const ContentPart& part) {
  std::string text = part.is_error ? "[Tool Result (Error)]" : "[Tool Result]";
  if (!part.text.empty()) {
    text += '\n';
    text += part.text;
  }
  return text;
}

// Merges adjacent messages of the same role and drops empty ones.
bool IsEnvironmentDetails(const llm::ContentPart& part) {
  return part.kind == llm::ContentPart::Kind::kText &&
         part.text.starts_with("<environment_details>");
}

void MergeSameRole(std::vector<Message>& messages) {
  std::vector<Message> merged;
  merged.reserve(messages.size());
  for (Message& message : messages) {
    if (message.parts.empty()) continue;
    if (!merged.empty() && merged.back().role == message.role) {
      auto& parts = merged.back().parts;
      // A prompt whose request failed kept its environment details; the next one brings newer
      // details, and the model is to see one block, the current one.
      if (std::any_of(message.parts.begin(), message.parts.end(), IsEnvironmentDetails)) {
        std::erase_if(parts, IsEnvironmentDetails);
      }
      parts.insert(parts.end(), std::make_move_iterator(message.parts.begin()),
                   std::make_move_iterator(message.parts.end()));
    } else {
      merged.push_back(std::move(message));
    }
  }
  messages = std::move(merged);
}

constexpr std::string_view kContinueText = "Please continue from the following summary:";

void StartWithUser(std::vector<Message>& messages) {
  if (!messages.empty() && messages.front().role != Role::kUser) {
    Message user;
    user.role = Role::kUser;
    user.parts.push_back(TextPart(std::string(kContinueText)));
    messages.insert(messages.begin(), std::move(user));
  }
}

// Makes `user` answer exactly the tool calls of `assistant` (nullptr = none): tool results
// first, in call order, a missing one added as interrupted, orphans and duplicates as text.
void RepairToolResults(const Message* assistant, Message& user) {
  std::vector<const ContentPart*> calls;
  if (assistant != nullptr) {
    for (const ContentPart& part : assistant->parts) {
      if (part.kind == ContentPart::Kind::kToolCall) calls.push_back(&part);
    }
  }
  if (calls.empty() && !HasToolResults(user)) return;

  std::vector<ContentPart> results(calls.size());
  std::vector<bool> answered(calls.size(), false);
  std::vector<ContentPart> others;
  for (ContentPart& part : user.parts) {
    if (part.kind != ContentPart::Kind::kToolResult) {
      others.push_back(std::move(part));
      continue;
    }
    size_t match = calls.size();
    for (size_t i = 0; i < calls.size(); ++i) {
      if (!answered[i] && calls[i]->tool_call_id == part.tool_call_id) {
        match = i;
        break;
      }
    }
    if (match == calls.size()) {
      others.push_back(TextPart(ToolResultAsText(part)));
    } else {
      answered[match] = true;
      results[match] = std::move(part);
    }
  }
  std::vector<ContentPart> parts;
  parts.reserve(calls.size() + others.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    if (!answered[i]) {
      ContentPart& result = results[i];
      result.kind = ContentPart::Kind::kToolResult;
      result.tool_call_id = calls[i]->tool_call_id;
      result.tool_name = calls[i]->tool_name;
      result.text = std::string(kInterruptedToolResultText);
    }
    parts.push_back(std::move(results[i]));
  }
  for (ContentPart& part : others) parts.push_back(std::move(part));
  user.parts = std::move(parts);
}

// A message as text only, for a summarising request: tool calls and results written out, images
// named, reasoning dropped (its signatures are only valid in the original conversation).
Message AsPlainText(const Message& message) {
  Message out;
  out.role = message.role;
  for (const ContentPart& part : message.parts) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
        if (!part.text.empty()) out.parts.push_back(TextPart(part.text));
        break;
      case ContentPart::Kind::kImage:
        out.parts.push_back(TextPart("[Image]"));
        break;
      case ContentPart::Kind::kReasoning:
        break;
      case ContentPart::Kind::kToolCall:
        out.parts.push_back(TextPart("[Tool Use: " + part.tool_name + "]\n" + part.arguments_json));
        break;
      case ContentPart::Kind::kToolResult:
        out.parts.push_back(TextPart(ToolResultAsText(part)));
        break;
    }
  }
  return out;
}

std::vector<size_t> VisibleInOrder(const std::vector<HistoryMessage>& history) {
  std::vector<size_t> visible;
  visible.reserve(history.size());
  for (size_t index : ConversationOrder(history)) {
    if (history[index].is_visible()) visible.push_back(index);
  }
  return visible;
}

int64_t Calibrated(const TokenCalibration* calibration, int64_t raw) {
  return calibration == nullptr ? raw : calibration->Apply(raw);
}

constexpr std::string_view kDefaultCondensePrompt =
    R"(Your task is to write a detailed summary of the conversation so far, so that the work can continue from it without the earlier messages. Pay close attention to what the user explicitly asked for and to what you have already done.
The summary must keep the technical details, code patterns and architectural decisions needed to carry on with the task.

Structure it in these sections:
1. Previous Conversation: the overall flow of the conversation with the user, in enough detail to follow it.
2. Current Work: precisely what was being worked on just before this summary was requested, with particular attention to the most recent messages.
3. Key Technical Concepts: the technologies, frameworks, coding conventions and concepts that matter for continuing.
4. Relevant Files and Code: the files and code sections that were examined, changed or created, why each matters, what changed, and the important snippets.
5. Problem Solving: the problems solved so far and any troubleshooting still in progress.
6. Pending Tasks and Next Steps: every task the user asked for that is not finished, and the next steps you will take. Quote the most recent messages verbatim where they show exactly what you were doing and where you stopped, so nothing is lost.

Example layout:
1. Previous Conversation:
  [description]
2. Current Work:
  [description]
3. Key Technical Concepts:
  - [concept]
4. Relevant Files and Code:
  - [file name]
    - [why it matters, what changed]
    - [important snippet]
5. Problem Solving:
  [description]
6. Pending Tasks and Next Steps:
  - [task, its status and next step]

Do not call any tools. Output only the summary, with no commentary before or after it.
)";

}  // namespace

// ---- Token estimates ---------------------------------------------------------------------------

int64_t EstimateTokens(std::string_view text) { return CeilDiv(Twelfths(text), kTwelfthsPerToken); }

int64_t EstimateTokens(const llm::Message& message) {
  int64_t twelfths = 0;
  int64_t tokens = kMessageOverheadTokens;
  for (const ContentPart& part : message.parts) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
      case ContentPart::Kind::kReasoning:
        twelfths += Twelfths(part.text);
        break;
      case ContentPart::Kind::kImage:
        tokens += part.data_base64.empty()
                      ? kUnknownImageTokens
                      : static_cast<int64_t>(
                            std::ceil(std::sqrt(static_cast<double>(part.data_base64.size()))));
        break;
      case ContentPart::Kind::kToolCall:
        twelfths += Twelfths("Tool: ") + Twelfths(part.tool_name) + Twelfths("\nArguments: ") +
                    Twelfths(part.arguments_json);
        break;
      case ContentPart::Kind::kToolResult:
        twelfths += Twelfths("Tool Result (") + Twelfths(part.tool_call_id) + Twelfths(")\n") +
                    (part.is_error ? Twelfths("[Error]\n") : 0) + Twelfths(part.text);
        break;
    }
  }
  return tokens + CeilDiv(twelfths, kTwelfthsPerToken);
}

int64_t EstimateTokens(const std::vector<llm::ToolDefinition>& tools) {
  int64_t tokens = 0;
  for (const llm::ToolDefinition& tool : tools) {
    tokens +=
        kToolDefinitionOverheadTokens + CeilDiv(Twelfths(tool.name) + Twelfths(tool.description) +
                                                    Twelfths(tool.parameters_schema_json),
                                                kTwelfthsPerToken);
  }
  return tokens;
}

int64_t PromptTokens(std::string_view provider, const llm::Usage& usage) {
  if (provider == "anthropic") {
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
  }
  return usage.input_tokens;
}

void TokenCalibration::Observe(int64_t estimated_tokens, int64_t actual_tokens) {
  if (estimated_tokens < kMinEstimate || actual_tokens <= 0) return;
  double observed =
      std::clamp(static_cast<double>(actual_tokens) / static_cast<double>(estimated_tokens),
                 kMinRatio, kMaxRatio);
  ratio_ = observations_ == 0 ? observed : (ratio_ + observed) / 2;
  ratio_ = std::clamp(ratio_, kMinRatio, kMaxRatio);
  ++observations_;
}

int64_t TokenCalibration::Apply(int64_t raw_estimate) const {
  if (raw_estimate <= 0) return 0;
  return static_cast<int64_t>(std::ceil(static_cast<double>(raw_estimate) * ratio_));
}

// ---- Budget and plan ---------------------------------------------------------------------------

int64_t DefaultMaxOutputTokens(int64_t context_window, int64_t model_max_output_tokens,
                               std::optional<int64_t> request_max_tokens) {
  if (request_max_tokens.has_value() && *request_max_tokens > 0) return *request_max_tokens;
  if (model_max_output_tokens <= 0) return kDefaultMaxOutputTokens;
  if (context_window <= 0) return model_max_output_tokens;
  int64_t fifth_of_window = (context_window + 4) / 5;  // ceil(0.2 × window)
  return std::min(model_max_output_tokens, fifth_of_window);
}

int64_t AllowedTokens(const ContextBudget& budget) {
  int64_t usable = budget.context_window * 9 / 10;  // floor((1 − 0.1) × window)
  return std::max<int64_t>(0, usable - budget.max_output_tokens);
}

Status ValidateContextSettings(const ContextSettings& settings) {
  if (settings.auto_condense_percent < 5 || settings.auto_condense_percent > 100) {
    return Error(ErrorCode::kInvalidArgument,
                 "auto_condense_percent is " + std::to_string(settings.auto_condense_percent) +
                     ": use a percentage of the context window between 5 and 100");
  }
  return OkStatus();
}

int64_t VisibleTokens(const std::vector<HistoryMessage>& history) {
  int64_t tokens = 0;
  for (const HistoryMessage& message : history) {
    if (message.is_visible()) tokens += MessageTokens(message);
  }
  return tokens;
}

ContextPlan PlanContext(const std::vector<HistoryMessage>& history, int64_t prompt_tokens,
                        const TokenCalibration& calibration, const ContextBudget& budget,
                        const ContextSettings& settings) {
  ContextPlan plan;
  plan.context_tokens = calibration.Apply(prompt_tokens + VisibleTokens(history));
  plan.allowed_tokens = AllowedTokens(budget);
  if (budget.context_window <= 0) return plan;
  plan.percent = static_cast<int>(plan.context_tokens * 100 / budget.context_window);
  plan.exceeds_allowed = plan.context_tokens > plan.allowed_tokens;
  int64_t threshold = std::clamp(settings.auto_condense_percent, 5, 100);
  bool reached_threshold = plan.context_tokens * 100 >= threshold * budget.context_window;
  if (settings.auto_condense && (reached_threshold || plan.exceeds_allowed)) {
    plan.action = ContextAction::kCondense;
  } else if (plan.exceeds_allowed) {
    plan.action = ContextAction::kTruncate;
  }
  return plan;
}

// ---- Order and effective messages ------------------------------------------------------------

std::vector<size_t> ConversationOrder(const std::vector<HistoryMessage>& history) {
  std::unordered_set<int64_t> parents;
  for (const HistoryMessage& message : history) {
    if (message.condensed_by != 0) parents.insert(message.condensed_by);
    if (message.truncated_by != 0) parents.insert(message.truncated_by);
  }
  std::vector<size_t> order;
  order.reserve(history.size());
  for (size_t i = 0; i < history.size(); ++i) {
    LAI_DCHECK(i == 0 || history[i - 1].seq < history[i].seq) << "history not in seq order";
    const int64_t seq = history[i].seq;
    size_t position = order.size();
    if (parents.count(seq) != 0) {
      // Right after the last message (in conversation order) that this one hides.
      for (size_t k = order.size(); k-- > 0;) {
        const HistoryMessage& child = history[order[k]];
        if (child.condensed_by == seq || child.truncated_by == seq) {
          position = k + 1;
          break;
        }
      }
    }
    order.insert(order.begin() + static_cast<std::ptrdiff_t>(position), i);
  }
  return order;
}

std::vector<llm::Message> EffectiveMessages(const std::vector<HistoryMessage>& history) {
  std::vector<Message> messages;
  messages.reserve(history.size());
  for (size_t index : ConversationOrder(history)) {
    const HistoryMessage& message = history[index];
    if (message.is_visible() && !message.message.parts.empty()) {
      messages.push_back(message.message);
    }
  }
  MergeSameRole(messages);
  StartWithUser(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != Role::kUser) continue;
    const Message* assistant = i > 0 ? &messages[i - 1] : nullptr;
    RepairToolResults(assistant, messages[i]);
  }
  if (!messages.empty() && messages.back().role == Role::kAssistant &&
      HasToolCalls(messages.back())) {
    Message user;
    user.role = Role::kUser;
    RepairToolResults(&messages.back(), user);
    messages.push_back(std::move(user));
  }
  return messages;
}

// ---- Condense ----------------------------------------------------------------------------------

std::string_view DefaultCondensePrompt() { return kDefaultCondensePrompt; }

Result<CondenseResult> Condense(std::vector<HistoryMessage>& history,
                                const CondenseOptions& options, const Summarizer& summarize) {
  LAI_CHECK(history.empty() || options.next_seq > history.back().seq)
      << "condense: next_seq " << options.next_seq << " is not after the last seq";
  const std::vector<size_t> visible = VisibleInOrder(history);
  const int64_t prev_tokens =
      Calibrated(options.calibration, options.prompt_tokens + VisibleTokens(history));
  const size_t keep = static_cast<size_t>(kCondenseKeepMessages);
  const std::string not_enough =
      "Not enough messages to condense: " + std::to_string(visible.size()) + " visible, at least " +
      std::to_string(keep + 2) + " are needed (the first message and the last " +
      std::to_string(keep) + " are kept as they are)";
  if (visible.size() < keep + 2) return Error(ErrorCode::kResourceExhausted, not_enough);

  // The first kept message; moved back so a kept tool result keeps the call it answers.
  size_t boundary = visible.size() - keep;
  while (boundary > 1 && HasToolResults(history[visible[boundary]].message)) --boundary;

  const std::string recently =
      "Context was condensed recently; nothing new to summarise, so this attempt was skipped";
  for (size_t k = boundary; k < visible.size(); ++k) {
    if (history[visible[k]].is_summary) return Error(ErrorCode::kResourceExhausted, recently);
  }
  size_t last_summary = 0;  // 0 = none (position 0 is the first message, never a summary here).
  for (size_t k = 1; k < boundary; ++k) {
    if (history[visible[k]].is_summary) last_summary = k;
  }
  size_t new_messages = boundary - (last_summary == 0 ? 1 : last_summary + 1);
  if (new_messages == 0 && last_summary != 0) return Error(ErrorCode::kResourceExhausted, recently);
  if (new_messages == 0) {  // Enough messages, but the kept ones reach back to the first.
    return Error(ErrorCode::kResourceExhausted,
                 "Nothing to condense: the last " + std::to_string(keep) +
                     " messages are kept whole with the tool calls their results answer, and "
                     "that leaves nothing between them and the first message");
  }

  // A summary of little saves little, and costs a request: most of the context is in the first
  // message and the kept ones (a huge tool result among the last few, say).
  int64_t condensable = 0;
  for (size_t k = 1; k < boundary; ++k) condensable += MessageTokens(history[visible[k]]);
  if (Calibrated(options.calibration, condensable) * 10 < prev_tokens) {
    return Error(ErrorCode::kResourceExhausted,
                 "Little to condense: a summary would replace about " +
                     std::to_string(Calibrated(options.calibration, condensable)) + " of the " +
                     std::to_string(prev_tokens) + " tokens (" + std::to_string(boundary - 1) +
                     (boundary == 2 ? " message" : " messages") +
                     "); the rest is the first message and the last ones, kept whole");
  }

  // Beyond the room the summary request has, its oldest messages are left out of it (the window
  // may have shrunk: another model, a smaller local one).
  int64_t request_tokens = 0;
  for (size_t k = 0; k < boundary; ++k) request_tokens += MessageTokens(history[visible[k]]);
  size_t first_included = 1;
  while (options.max_request_tokens > 0 && first_included < boundary &&
         Calibrated(options.calibration, request_tokens) > options.max_request_tokens) {
    if (first_included != last_summary) {
      request_tokens -= MessageTokens(history[visible[first_included]]);
    }
    ++first_included;
  }
  std::vector<Message> request;
  request.reserve(boundary + 1);
  for (size_t k = 0; k < boundary; ++k) {
    if (k == 0 || k >= first_included || k == last_summary) {
      request.push_back(AsPlainText(history[visible[k]].message));
    }
    const size_t left_out =
        first_included - 1 - (last_summary != 0 && last_summary < first_included);
    if (k == 0 && left_out > 0) {  // Said, so that the summary does not claim what it did not see.
      Message note;
      note.role = Role::kUser;
      note.parts.push_back(TextPart("[" + std::to_string(left_out) +
                                    " older messages are left out here: they did not fit.]"));
      request.push_back(std::move(note));
    }
  }
  Message final_request;
  final_request.role = Role::kUser;
  final_request.parts.push_back(TextPart(std::string(kCondenseRequestText)));
  request.push_back(std::move(final_request));
  MergeSameRole(request);
  StartWithUser(request);

  const bool has_custom_prompt =
      options.custom_prompt.find_first_not_of(" \t\r\n") != std::string::npos;
  const std::string prompt =
      has_custom_prompt ? options.custom_prompt : std::string(kDefaultCondensePrompt);
  Result<std::string> summary_text = summarize(prompt, request);
  if (!summary_text.ok()) {
    return std::move(summary_text).error().WithContext("condense context: summarising request");
  }
  std::string text = std::move(*summary_text);
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) {
    return Error(ErrorCode::kUnavailable,
                 "Condensing produced an empty summary; the context was left as it was");
  }
  size_t end = text.find_last_not_of(" \t\r\n");
  text = text.substr(begin, end - begin + 1);

  HistoryMessage summary;
  summary.seq = options.next_seq;
  summary.time_ms = options.now_ms;
  summary.message.role = Role::kAssistant;
  summary.message.parts.push_back(TextPart(std::move(text)));
  summary.token_estimate = EstimateTokens(summary.message);
  summary.is_summary = true;

  int64_t new_raw =
      options.prompt_tokens + MessageTokens(history[visible[0]]) + summary.token_estimate;
  for (size_t k = boundary; k < visible.size(); ++k) new_raw += MessageTokens(history[visible[k]]);
  const int64_t new_tokens = Calibrated(options.calibration, new_raw);
  if (new_tokens >= prev_tokens) {
    return Error(ErrorCode::kResourceExhausted,
                 "Context grew from " + std::to_string(prev_tokens) + " to " +
                     std::to_string(new_tokens) +
                     " tokens while condensing; the context was left as it was");
  }

  CondenseResult result;
  result.prev_context_tokens = prev_tokens;
  result.new_context_tokens = new_tokens;
  result.condensed_seqs.reserve(boundary - 1);
  for (size_t k = 1; k < boundary; ++k) {
    HistoryMessage& hidden = history[visible[k]];
    hidden.condensed_by = summary.seq;
    result.condensed_seqs.push_back(hidden.seq);
  }
  result.summary = summary;
  history.push_back(std::move(summary));
  return result;
}

// ---- Truncate ----------------------------------------------------------------------------------

std::string TruncationMarkerText(int64_t hidden) {
  return "[Sliding window truncation: " + std::to_string(hidden) +
         (hidden == 1 ? " message" : " messages") + " hidden to reduce context]";
}

TruncateResult Truncate(std::vector<HistoryMessage>& history, double fraction, int64_t next_seq,
                        int64_t now_ms) {
  LAI_CHECK(history.empty() || next_seq > history.back().seq)
      << "truncate: next_seq " << next_seq << " is not after the last seq";
  TruncateResult result;
  // Earlier markers are not conversation: they are neither counted nor kept as a message to
  // hide, but go with the messages they stand for (the new marker stands for all of them).
  const std::vector<size_t> visible = VisibleInOrder(history);
  std::vector<size_t> conversation;
  conversation.reserve(visible.size());
  for (size_t index : visible) {
    if (!history[index].is_truncation_marker) conversation.push_back(index);
  }
  if (conversation.size() < 2) return result;
  fraction = std::clamp(fraction, 0.0, 1.0);
  auto hide =
      static_cast<size_t>(std::floor(static_cast<double>(conversation.size() - 1) * fraction));
  // The latest message (what the model must answer) always stays.
  hide = std::min(hide, conversation.size() - 2);
  hide -= hide % 2;
  // The first kept message must not be a tool result whose call would be hidden.
  while (hide > 0 && HasToolResults(history[conversation[1 + hide]].message)) --hide;
  if (hide == 0) return result;

  const size_t first_kept = conversation[1 + hide];
  for (size_t k = 1; k < visible.size() && visible[k] != first_kept; ++k) {
    HistoryMessage& hidden = history[visible[k]];
    hidden.truncated_by = next_seq;
    result.truncated_seqs.push_back(hidden.seq);
  }
  int64_t hidden_in_all = 0;
  for (const HistoryMessage& message : history) {
    hidden_in_all += message.truncated_by != 0 && !message.is_truncation_marker ? 1 : 0;
  }
  HistoryMessage marker;
  marker.seq = next_seq;
  marker.time_ms = now_ms;
  marker.message.role = Role::kUser;
  marker.message.parts.push_back(TextPart(TruncationMarkerText(hidden_in_all)));
  marker.token_estimate = EstimateTokens(marker.message);
  marker.is_truncation_marker = true;
  result.messages_hidden = static_cast<int64_t>(hide);
  result.marker = marker;
  history.push_back(std::move(marker));
  return result;
}

// ---- Overflow recovery -------------------------------------------------------------------------

std::optional<TruncateResult> ForcedReduction::Reduce(std::vector<HistoryMessage>& history,
                                                      int64_t next_seq, int64_t now_ms) {
  if (attempts_ >= kMaxRetries) return std::nullopt;
  ++attempts_;
  TruncateResult result = Truncate(history, kHideFraction, next_seq, now_ms);
  if (result.messages_hidden == 0) {
    // A short history rounds a quarter down to nothing; half still keeps the latest message.
    result = Truncate(history, 0.5, next_seq, now_ms);
  }
  if (result.messages_hidden == 0) return std::nullopt;
  return result;
}

}  // namespace lai::agent
