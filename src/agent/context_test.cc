#include "agent/context.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lai::agent {
namespace {

using llm::ContentPart;
using llm::Message;
using llm::Role;

HistoryMessage Text(int64_t seq, Role role, std::string text) {
  HistoryMessage entry;
  entry.seq = seq;
  entry.message.role = role;
  ContentPart part;
  part.text = std::move(text);
  entry.message.parts.push_back(std::move(part));
  entry.token_estimate = EstimateTokens(entry.message);
  return entry;
}
HistoryMessage User(int64_t seq, std::string text) {
  return Text(seq, Role::kUser, std::move(text));
}
HistoryMessage Assistant(int64_t seq, std::string text) {
  return Text(seq, Role::kAssistant, std::move(text));
}

ContentPart Call(std::string id, std::string name, std::string args) {
  ContentPart part;
  part.kind = ContentPart::Kind::kToolCall;
  part.tool_call_id = std::move(id);
  part.tool_name = std::move(name);
  part.arguments_json = std::move(args);
  return part;
}
ContentPart ToolResult(std::string id, std::string text, bool is_error = false) {
  ContentPart part;
  part.kind = ContentPart::Kind::kToolResult;
  part.tool_call_id = std::move(id);
  part.text = std::move(text);
  part.is_error = is_error;
  return part;
}

HistoryMessage AssistantCall(int64_t seq, std::string id) {
  HistoryMessage entry = Assistant(seq, "Reading the file.");
  entry.message.parts.push_back(Call(std::move(id), "read_file", R"({"path":"a.txt"})"));
  entry.token_estimate = EstimateTokens(entry.message);
  return entry;
}
HistoryMessage UserResult(int64_t seq, std::string id, std::string text) {
  HistoryMessage entry;
  entry.seq = seq;
  entry.message.role = Role::kUser;
  entry.message.parts.push_back(ToolResult(std::move(id), std::move(text)));
  entry.token_estimate = EstimateTokens(entry.message);
  return entry;
}

std::string Long(std::string_view tag) {
  std::string text(tag);
  while (text.size() < 2000) text += " lorem ipsum dolor sit amet";
  return text;
}

// first user (seq 1) then alternating assistant/user up to `count` messages, each ~2000 bytes.
std::vector<HistoryMessage> Conversation(int count) {
  std::vector<HistoryMessage> history;
  for (int seq = 1; seq <= count; ++seq) {
    std::string text = Long("m" + std::to_string(seq));
    history.push_back(seq % 2 == 1 ? User(seq, text) : Assistant(seq, text));
  }
  return history;
}

int64_t NextSeq(const std::vector<HistoryMessage>& history) { return history.back().seq + 1; }

std::string FirstText(const Message& message) {
  for (const ContentPart& part : message.parts) {
    if (part.kind == ContentPart::Kind::kText) return part.text;
  }
  return {};
}

std::vector<int64_t> VisibleSeqs(const std::vector<HistoryMessage>& history) {
  std::vector<int64_t> seqs;
  for (size_t index : ConversationOrder(history)) {
    if (history[index].is_visible()) seqs.push_back(history[index].seq);
  }
  return seqs;
}

// A Summarizer that records what it was given.
struct FakeSummarizer {
  Summarizer Get() {
    return [this](const std::string& system_prompt, const std::vector<Message>& messages) {
      ++calls;
      seen_prompt = system_prompt;
      seen_messages = messages;
      return reply;
    };
  }
  Result<std::string> reply = std::string("SUMMARY of the work so far");
  int calls = 0;
  std::string seen_prompt;
  std::vector<Message> seen_messages;
};

CondenseOptions OptionsFor(const std::vector<HistoryMessage>& history) {
  CondenseOptions options;
  options.next_seq = NextSeq(history);
  options.now_ms = 1000;
  options.prompt_tokens = 500;
  return options;
}

// ---- Estimates ----------------------------------------------------------------------------------

TEST(EstimateTokensTest, FollowsTheByteRule) {
  EXPECT_EQ(EstimateTokens(""), 0);
  EXPECT_EQ(EstimateTokens("abcd"), 1);
  EXPECT_EQ(EstimateTokens(std::string(400, 'a')), 100);     // prose: 4 bytes per token
  EXPECT_EQ(EstimateTokens(std::string(100, '{')), 50);      // symbols: 2 bytes per token
  EXPECT_EQ(EstimateTokens("\xe4\xb8\xad\xe6\x96\x87"), 2);  // two CJK characters
  EXPECT_EQ(EstimateTokens("abcde"), 2);                     // rounded up
}

TEST(EstimateTokensTest, MessagePartsAreCountedAsSerialised) {
  Message text;
  text.parts.push_back(ContentPart{});
  text.parts.back().text = std::string(400, 'a');
  EXPECT_EQ(EstimateTokens(text), 3 + 100);

  Message call;
  call.role = Role::kAssistant;
  call.parts.push_back(Call("id1", "read_file", R"({"path":"a"})"));
  EXPECT_EQ(EstimateTokens(call),
            3 + EstimateTokens("Tool: read_file\nArguments: {\"path\":\"a\"}"));

  Message result;
  result.parts.push_back(ToolResult("id1", "boom", /*is_error=*/true));
  EXPECT_EQ(EstimateTokens(result), 3 + EstimateTokens("Tool Result (id1)\n[Error]\nboom"));

  Message image;
  image.parts.push_back(ContentPart{});
  image.parts.back().kind = ContentPart::Kind::kImage;
  image.parts.back().data_base64 = std::string(10000, 'A');
  EXPECT_EQ(EstimateTokens(image), 3 + 100);
  image.parts.back().data_base64.clear();
  EXPECT_EQ(EstimateTokens(image), 3 + 300);
}

TEST(EstimateTokensTest, ToolDefinitionsAndProviderPromptTokens) {
  std::vector<llm::ToolDefinition> tools = {{"read_file", "Read a file", R"({"type":"object"})"}};
  EXPECT_EQ(EstimateTokens(tools),
            3 + EstimateTokens(std::string("read_fileRead a file") + R"({"type":"object"})"));
  llm::Usage usage;
  usage.input_tokens = 100;
  usage.cache_read_tokens = 1000;
  usage.cache_write_tokens = 10;
  EXPECT_EQ(PromptTokens("anthropic", usage), 1110);
  EXPECT_EQ(PromptTokens("openai", usage), 100);
}

TEST(TokenCalibrationTest, LearnsTheRatioWithinBounds) {
  TokenCalibration calibration;
  EXPECT_EQ(calibration.Apply(100), 100);
  calibration.Observe(1000, 2000);
  EXPECT_DOUBLE_EQ(calibration.ratio(), 2.0);
  EXPECT_EQ(calibration.Apply(100), 200);
  calibration.Observe(1000, 1000);  // Half way to the new observation.
  EXPECT_DOUBLE_EQ(calibration.ratio(), 1.5);
  calibration.Observe(1000, 100000);  // Clamped to 3 before averaging.
  EXPECT_DOUBLE_EQ(calibration.ratio(), 2.25);
  calibration.Observe(10, 100000);  // Too small to tell: ignored.
  calibration.Observe(1000, 0);     // No usage reported: ignored.
  EXPECT_EQ(calibration.observations(), 3);

  TokenCalibration low;
  low.Observe(1000, 1);
  EXPECT_DOUBLE_EQ(low.ratio(), TokenCalibration::kMinRatio);
  TokenCalibration high;
  high.Observe(1000, 1000000);
  EXPECT_DOUBLE_EQ(high.ratio(), TokenCalibration::kMaxRatio);
}

// ---- Budget and plan --------------------------------------------------------------------------

TEST(ContextBudgetTest, AllowedTokensFormula) {
  EXPECT_EQ(AllowedTokens({200000, 8192}), 180000 - 8192);
  EXPECT_EQ(AllowedTokens({128001, 0}), 115200);  // floor(0.9 × window)
  EXPECT_EQ(AllowedTokens({1000, 5000}), 0);
  EXPECT_EQ(AllowedTokens({0, 0}), 0);

  EXPECT_EQ(DefaultMaxOutputTokens(200000, 64000), 40000);  // ceil(0.2 × window)
  EXPECT_EQ(DefaultMaxOutputTokens(200001, 64000), 40001);
  EXPECT_EQ(DefaultMaxOutputTokens(200000, 8192), 8192);                  // the model's own maximum
  EXPECT_EQ(DefaultMaxOutputTokens(200000, 0), kDefaultMaxOutputTokens);  // unknown
  EXPECT_EQ(DefaultMaxOutputTokens(200000, 64000, 1000), 1000);           // the request's
}

TEST(ContextPlanTest, DecidesNothingCondenseOrTruncate) {
  std::vector<HistoryMessage> history = Conversation(10);  // ~5 000 tokens
  TokenCalibration calibration;
  ContextSettings settings;

  ContextPlan plan = PlanContext(history, 1000, calibration, {100000, 8192}, settings);
  EXPECT_EQ(plan.action, ContextAction::kNone);
  EXPECT_EQ(plan.context_tokens, 1000 + VisibleTokens(history));
  EXPECT_EQ(plan.allowed_tokens, 90000 - 8192);
  EXPECT_FALSE(plan.exceeds_allowed);

  ContextBudget small{6000, 1000};  // allowed 4400
  plan = PlanContext(history, 1000, calibration, small, settings);
  EXPECT_EQ(plan.action, ContextAction::kCondense);
  EXPECT_TRUE(plan.exceeds_allowed);
  EXPECT_GE(plan.percent, 100);

  settings.auto_condense = false;
  plan = PlanContext(history, 1000, calibration, small, settings);
  EXPECT_EQ(plan.action, ContextAction::kTruncate);

  // The threshold percent condenses before the limit is reached.
  ContextBudget roomy{20000, 1000};
  settings = ContextSettings{true, 25};
  plan = PlanContext(history, 1000, calibration, roomy, settings);
  EXPECT_FALSE(plan.exceeds_allowed);
  EXPECT_EQ(plan.action, ContextAction::kCondense);
  settings.auto_condense = false;
  EXPECT_EQ(PlanContext(history, 1000, calibration, roomy, settings).action, ContextAction::kNone);

  // Calibration that learned the provider counts twice as much tips it over.
  settings = ContextSettings{};
  ContextBudget tight{12000, 1000};  // allowed 9800
  EXPECT_EQ(PlanContext(history, 1000, calibration, tight, settings).action, ContextAction::kNone);
  calibration.Observe(1000, 2000);
  EXPECT_EQ(PlanContext(history, 1000, calibration, tight, settings).action,
            ContextAction::kCondense);

  // Hidden messages do not count; an unknown window plans nothing.
  for (size_t i = 1; i < 8; ++i) history[i].truncated_by = 99;
  EXPECT_EQ(PlanContext(history, 1000, TokenCalibration{}, tight, settings).action,
            ContextAction::kNone);
  EXPECT_EQ(PlanContext(Conversation(10), 1000, calibration, {0, 0}, settings).action,
            ContextAction::kNone);
}

TEST(ContextPlanTest, ValidatesTheThreshold) {
  EXPECT_TRUE(ValidateContextSettings({true, 5}).ok());
  EXPECT_TRUE(ValidateContextSettings({true, 100}).ok());
  Status low = ValidateContextSettings({true, 4});
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(low.error().message().find("between 5 and 100"), std::string::npos);
  EXPECT_FALSE(ValidateContextSettings({true, 101}).ok());
}

// ---- Condense ---------------------------------------------------------------------------------

TEST(CondenseTest, SummarisesTheMiddleAndKeepsFirstAndLastThree) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_TRUE(result.ok()) << result.error().message();

  EXPECT_EQ(fake.calls, 1);
  EXPECT_EQ(fake.seen_prompt, DefaultCondensePrompt());
  EXPECT_NE(fake.seen_prompt.find("6. Pending Tasks and Next Steps"), std::string::npos);
  // The first message and messages 2..6, then the request to summarise.
  ASSERT_EQ(fake.seen_messages.size(), 7u);
  EXPECT_EQ(fake.seen_messages.front().role, Role::kUser);
  EXPECT_EQ(FirstText(fake.seen_messages.front()).substr(0, 3), "m1 ");
  EXPECT_EQ(FirstText(fake.seen_messages[5]).substr(0, 3), "m6 ");
  EXPECT_EQ(FirstText(fake.seen_messages.back()), kCondenseRequestText);

  EXPECT_EQ(result->condensed_seqs, (std::vector<int64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(result->summary.seq, 10);
  EXPECT_TRUE(result->summary.is_summary);
  EXPECT_EQ(result->summary.message.role, Role::kAssistant);
  EXPECT_LT(result->new_context_tokens, result->prev_context_tokens);
  ASSERT_EQ(history.size(), 10u);
  EXPECT_EQ(history.back().seq, 10);  // Appended: seq order is append order.
  for (int64_t seq = 2; seq <= 6; ++seq) EXPECT_EQ(history[seq - 1].condensed_by, 10);

  // In conversation order the summary sits where the hidden messages were.
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 10, 7, 8, 9}));
  std::vector<Message> effective = EffectiveMessages(history);
  ASSERT_EQ(effective.size(), 5u);
  EXPECT_EQ(FirstText(effective[1]), "SUMMARY of the work so far");
  EXPECT_EQ(FirstText(effective[2]).substr(0, 3), "m7 ");
}

TEST(CondenseTest, NotEnoughMessages) {
  std::vector<HistoryMessage> history = Conversation(4);
  FakeSummarizer fake;
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("Not enough messages"), std::string::npos);
  EXPECT_EQ(fake.calls, 0);
  EXPECT_EQ(history.size(), 4u);
}

// Five messages are enough in number, but when the kept last three reach back (a kept result
// keeps its call) to the first, there is nothing to summarise, and the error says so rather
// than "5 visible, at least 5 are needed".
TEST(CondenseTest, NothingBetweenTheFirstAndTheKeptOnes) {
  std::vector<HistoryMessage> history = {User(1, Long("task")), AssistantCall(2, "c1"),
                                         UserResult(3, "c1", Long("one")), AssistantCall(4, "c2"),
                                         UserResult(5, "c2", Long("two"))};
  FakeSummarizer fake;
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("Nothing to condense: the last 3 messages are kept "
                                          "whole with the tool calls their results answer"),
            std::string::npos)
      << result.error().message();
  EXPECT_EQ(fake.calls, 0);
}

// A summary that could save little (the context is in a kept message, a huge tool result) is
// not asked for: it cost a request and saved 13 of 18,200 tokens.
TEST(CondenseTest, LittleToCondenseIsNotSummarised) {
  std::vector<HistoryMessage> history = Conversation(5);
  history.back() = User(5, Long("m5") + std::string(200'000, 'x'));
  FakeSummarizer fake;
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("Little to condense: a summary would replace about "),
            std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().message().find(" tokens (1 message);"), std::string::npos)
      << result.error().message();
  EXPECT_EQ(fake.calls, 0);
  EXPECT_EQ(history.size(), 5u);
}

TEST(CondenseTest, CondensedRecently) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  ASSERT_TRUE(Condense(history, OptionsFor(history), fake.Get()).ok());
  Result<CondenseResult> again = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("condensed recently"), std::string::npos);
  EXPECT_EQ(fake.calls, 1);
  EXPECT_EQ(history.size(), 10u);
}

TEST(CondenseTest, CondensesAgainIncludingThePreviousSummary) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  ASSERT_TRUE(Condense(history, OptionsFor(history), fake.Get()).ok());
  for (int64_t seq = 11; seq <= 16; ++seq) {
    std::string text = Long("n" + std::to_string(seq));
    history.push_back(seq % 2 == 0 ? Assistant(seq, text) : User(seq, text));
  }
  // Visible: 1, S10, 7, 8, 9, 11..16.
  fake.reply = std::string("SECOND summary");
  Result<CondenseResult> second = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(second->condensed_seqs, (std::vector<int64_t>{10, 7, 8, 9, 11, 12, 13}));
  EXPECT_EQ(FirstText(fake.seen_messages[1]), "SUMMARY of the work so far");
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 17, 14, 15, 16}));
}

TEST(CondenseTest, EmptySummaryChangesNothing) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  fake.reply = std::string(" \n\t ");
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(result.error().message().find("empty summary"), std::string::npos);
  EXPECT_EQ(history.size(), 9u);
  EXPECT_EQ(VisibleSeqs(history).size(), 9u);
}

TEST(CondenseTest, SummarizerErrorIsPassedOnWithContext) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  fake.reply = Error(ErrorCode::kUnavailable, "503 from openai: overloaded");
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(result.error().message().find("condense context"), std::string::npos);
  EXPECT_NE(result.error().message().find("503 from openai"), std::string::npos);
  EXPECT_EQ(VisibleSeqs(history).size(), 9u);
}

TEST(CondenseTest, ContextThatGrowsIsRejected) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  fake.reply = std::string(50000, 'x');
  Result<CondenseResult> result = Condense(history, OptionsFor(history), fake.Get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("grew"), std::string::npos);
  EXPECT_EQ(history.size(), 9u);
  EXPECT_EQ(VisibleSeqs(history).size(), 9u);
}

TEST(CondenseTest, KeptToolResultKeepsItsToolCall) {
  // 1 u, 2 a, 3 u, 4 a, 5 u, 6 a(call), 7 u(result), 8 a, 9 u: the last three start with the
  // result, so the call is kept too.
  std::vector<HistoryMessage> history = Conversation(5);
  history.push_back(AssistantCall(6, "call_1"));
  history.push_back(UserResult(7, "call_1", "file contents"));
  history.push_back(Assistant(8, "Done reading."));
  history.push_back(User(9, "Thanks."));
  FakeSummarizer fake;
  CondenseOptions options = OptionsFor(history);
  options.custom_prompt = "Custom summary instructions";
  Result<CondenseResult> result = Condense(history, options, fake.Get());
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(fake.seen_prompt, "Custom summary instructions");
  EXPECT_EQ(result->condensed_seqs, (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 10, 6, 7, 8, 9}));

  std::vector<Message> effective = EffectiveMessages(history);
  ASSERT_EQ(effective.size(), 5u);  // The summary and the call merge into one assistant message.
  EXPECT_EQ(effective[1].role, Role::kAssistant);
  EXPECT_EQ(effective[1].parts.back().kind, ContentPart::Kind::kToolCall);
  EXPECT_EQ(effective[2].parts.front().kind, ContentPart::Kind::kToolResult);
  EXPECT_EQ(effective[2].parts.front().text, "file contents");
}

TEST(CondenseTest, ToolBlocksReachTheSummarizerAsText) {
  std::vector<HistoryMessage> history = Conversation(1);
  history.push_back(AssistantCall(2, "call_1"));
  history.push_back(UserResult(3, "call_1", Long("contents")));
  history.push_back(Assistant(4, Long("a4")));
  history.push_back(User(5, Long("u5")));
  history.push_back(Assistant(6, Long("a6")));
  history.push_back(User(7, Long("u7")));
  FakeSummarizer fake;
  ASSERT_TRUE(Condense(history, OptionsFor(history), fake.Get()).ok());
  for (const Message& message : fake.seen_messages) {
    for (const ContentPart& part : message.parts) EXPECT_EQ(part.kind, ContentPart::Kind::kText);
  }
  EXPECT_EQ(fake.seen_messages[1].parts[1].text, "[Tool Use: read_file]\n{\"path\":\"a.txt\"}");
  EXPECT_EQ(FirstText(fake.seen_messages[2]).substr(0, 23), "[Tool Result]\ncontents ");
}

// ---- Truncate ---------------------------------------------------------------------------------

TEST(TruncateTest, HidesHalfOfTheMiddleRoundedToEven) {
  std::vector<HistoryMessage> history = Conversation(9);  // 8 after the first: hide 4
  TruncateResult result = Truncate(history, 0.5, NextSeq(history), 77);
  EXPECT_EQ(result.messages_hidden, 4);
  EXPECT_EQ(result.truncated_seqs, (std::vector<int64_t>{2, 3, 4, 5}));
  ASSERT_TRUE(result.marker.has_value());
  EXPECT_EQ(result.marker->seq, 10);
  EXPECT_EQ(result.marker->time_ms, 77);
  EXPECT_TRUE(result.marker->is_truncation_marker);
  EXPECT_EQ(FirstText(result.marker->message),
            "[Sliding window truncation: 4 messages hidden to reduce context]");
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 10, 6, 7, 8, 9}));

  // The marker joins the first user message; roles alternate after it.
  std::vector<Message> effective = EffectiveMessages(history);
  ASSERT_EQ(effective.size(), 5u);
  EXPECT_EQ(effective[0].parts.size(), 2u);
  EXPECT_EQ(effective[0].parts[1].text, TruncationMarkerText(4));
  EXPECT_EQ(effective[1].role, Role::kAssistant);
}

// A second truncation does not count the first one's marker as a message: it hides as many
// messages as it says, the old marker with them, and its own marker counts both truncations.
TEST(TruncateTest, AnEarlierMarkerIsHiddenWithTheMessagesItStandsFor) {
  std::vector<HistoryMessage> history = Conversation(25);  // 24 after the first
  TruncateResult first = Truncate(history, 0.25, NextSeq(history), 0);
  EXPECT_EQ(first.messages_hidden, 6);
  ASSERT_TRUE(first.marker.has_value());
  TruncateResult second = Truncate(history, 0.25, NextSeq(history), 0);
  EXPECT_EQ(second.messages_hidden, 4);  // floor(18 × 0.25) = 4 of the 19 messages left.
  ASSERT_TRUE(second.marker.has_value());
  EXPECT_EQ(FirstText(second.marker->message), TruncationMarkerText(10));
  EXPECT_EQ(second.truncated_seqs.front(), first.marker->seq);
  EXPECT_EQ(second.truncated_seqs.size(), 5u);
  std::vector<int64_t> visible = VisibleSeqs(history);
  ASSERT_GE(visible.size(), 2u);
  EXPECT_EQ(visible[0], 1);
  EXPECT_EQ(visible[1], second.marker->seq);
  EXPECT_EQ(visible[2], 12);  // Seqs 2-11 are hidden.
  EXPECT_EQ(TruncationMarkerText(1),
            "[Sliding window truncation: 1 message hidden to reduce context]");
}

TEST(TruncateTest, OddCountsRoundDownAndTinyHistoriesStay) {
  std::vector<HistoryMessage> history = Conversation(8);  // floor(7 / 2) = 3 -> 2
  EXPECT_EQ(Truncate(history, 0.5, NextSeq(history), 0).messages_hidden, 2);

  std::vector<HistoryMessage> tiny = Conversation(3);  // floor(2 / 2) = 1 -> 0
  TruncateResult result = Truncate(tiny, 0.5, NextSeq(tiny), 0);
  EXPECT_EQ(result.messages_hidden, 0);
  EXPECT_FALSE(result.marker.has_value());
  EXPECT_EQ(tiny.size(), 3u);

  // Even hiding everything asked for keeps the latest message.
  std::vector<HistoryMessage> all = Conversation(6);
  EXPECT_EQ(Truncate(all, 1.0, NextSeq(all), 0).messages_hidden, 4);
  EXPECT_EQ(VisibleSeqs(all), (std::vector<int64_t>{1, 7, 6}));
}

TEST(TruncateTest, DoesNotSplitAToolCallFromItsResult) {
  // 1 u, 2 a, 3 u, 4 a, 5 a(call), 6 u(result), 7 a, 8 u, 9 a, 10 u: hiding 4 would leave the
  // result of call 5 first, so only 3 are hidden.
  std::vector<HistoryMessage> history = Conversation(4);
  history.push_back(AssistantCall(5, "call_5"));
  history.push_back(UserResult(6, "call_5", "ok"));
  history.push_back(Assistant(7, "a7"));
  history.push_back(User(8, "u8"));
  history.push_back(Assistant(9, "a9"));
  history.push_back(User(10, "u10"));
  TruncateResult result = Truncate(history, 0.5, NextSeq(history), 0);
  EXPECT_EQ(result.messages_hidden, 3);
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 11, 5, 6, 7, 8, 9, 10}));
  std::vector<Message> effective = EffectiveMessages(history);
  EXPECT_EQ(effective[1].parts.back().kind, ContentPart::Kind::kToolCall);
  EXPECT_EQ(effective[2].parts.front().text, "ok");
}

TEST(TruncateTest, AfterACondenseTheMarkerFollowsTheHiddenSummary) {
  std::vector<HistoryMessage> history = Conversation(9);
  FakeSummarizer fake;
  ASSERT_TRUE(Condense(history, OptionsFor(history), fake.Get()).ok());  // 1, S10, 7, 8, 9
  TruncateResult result = Truncate(history, 0.5, NextSeq(history), 0);   // hides S10, 7
  EXPECT_EQ(result.truncated_seqs, (std::vector<int64_t>{10, 7}));
  EXPECT_EQ(VisibleSeqs(history), (std::vector<int64_t>{1, 11, 8, 9}));
  // Resuming from the stored rows (same seqs and links) gives the same conversation.
  std::vector<HistoryMessage> resumed = history;
  EXPECT_EQ(VisibleSeqs(resumed), VisibleSeqs(history));
  std::vector<size_t> order = ConversationOrder(history);
  std::vector<int64_t> seqs;
  for (size_t index : order) seqs.push_back(history[index].seq);
  EXPECT_EQ(seqs, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 10, 7, 11, 8, 9}));
}

// ---- Effective messages -----------------------------------------------------------------------

TEST(EffectiveMessagesTest, RepairsToolPairsAndRoles) {
  std::vector<HistoryMessage> history;
  history.push_back(Assistant(1, "I start."));  // starts with an assistant
  history.push_back(User(2, "task"));
  history.push_back(User(3, "more"));             // merged with 2
  history.push_back(AssistantCall(4, "call_a"));  // answered by text only
  history.push_back(User(5, "no result here"));
  history.push_back(Assistant(6, "plain"));
  history.push_back(UserResult(7, "call_zzz", "stray"));  // orphan result
  HistoryMessage empty;
  empty.seq = 8;
  empty.message.role = Role::kAssistant;
  history.push_back(empty);                       // empty: dropped
  history.push_back(AssistantCall(9, "call_b"));  // last, unanswered
  std::vector<Message> effective = EffectiveMessages(history);

  ASSERT_EQ(effective.size(), 9u);
  for (size_t i = 0; i < effective.size(); ++i) {
    EXPECT_EQ(effective[i].role, i % 2 == 0 ? Role::kUser : Role::kAssistant) << i;
  }
  EXPECT_EQ(FirstText(effective[0]), "Please continue from the following summary:");
  EXPECT_EQ(effective[2].parts.size(), 2u);  // "task" + "more"
  // The missing result comes first in the next user message.
  ASSERT_EQ(effective[4].parts.size(), 2u);
  EXPECT_EQ(effective[4].parts[0].kind, ContentPart::Kind::kToolResult);
  EXPECT_EQ(effective[4].parts[0].tool_call_id, "call_a");
  EXPECT_EQ(effective[4].parts[0].tool_name, "read_file");
  EXPECT_EQ(effective[4].parts[0].text, kInterruptedToolResultText);
  EXPECT_EQ(effective[4].parts[1].text, "no result here");
  // The orphan result became text.
  ASSERT_EQ(effective[6].parts.size(), 1u);
  EXPECT_EQ(effective[6].parts[0].kind, ContentPart::Kind::kText);
  EXPECT_EQ(effective[6].parts[0].text, "[Tool Result]\nstray");
  // The trailing call gets its interrupted result.
  ASSERT_EQ(effective.back().parts.size(), 1u);
  EXPECT_EQ(effective.back().parts[0].tool_call_id, "call_b");
}

TEST(EffectiveMessagesTest, ResultsMoveBeforeTextAndDuplicatesBecomeText) {
  std::vector<HistoryMessage> history;
  history.push_back(User(1, "task"));
  HistoryMessage calls = Assistant(2, "two calls");
  calls.message.parts.push_back(Call("c1", "read_file", "{}"));
  calls.message.parts.push_back(Call("c2", "list_files", "{}"));
  history.push_back(calls);
  HistoryMessage answers = User(3, "note first");
  answers.message.parts.push_back(ToolResult("c2", "two"));
  answers.message.parts.push_back(ToolResult("c1", "one"));
  answers.message.parts.push_back(ToolResult("c1", "again"));
  history.push_back(answers);
  std::vector<Message> effective = EffectiveMessages(history);
  ASSERT_EQ(effective.size(), 3u);
  const auto& parts = effective[2].parts;
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].tool_call_id, "c1");
  EXPECT_EQ(parts[0].text, "one");
  EXPECT_EQ(parts[1].tool_call_id, "c2");
  EXPECT_EQ(parts[2].text, "note first");
  EXPECT_EQ(parts[3].kind, ContentPart::Kind::kText);
  EXPECT_EQ(parts[3].text, "[Tool Result]\nagain");
}

// A prompt whose request failed stays in the history with its environment details; the next
// prompt's message merges with it, and the model sees only the newer details.
TEST(EffectiveMessagesTest, AFailedPromptsEnvironmentDetailsGiveWayToTheNextOnes) {
  auto details = [](std::string text) {
    ContentPart part;
    part.text = "<environment_details>\n" + text + "\n</environment_details>";
    return part;
  };
  std::vector<HistoryMessage> history;
  history.push_back(User(1, "<task>first</task>"));
  history.back().message.parts.push_back(details("old"));
  history.push_back(User(2, "<user_message>second</user_message>"));
  history.back().message.parts.push_back(details("new"));
  std::vector<Message> effective = EffectiveMessages(history);
  ASSERT_EQ(effective.size(), 1u);
  std::vector<std::string> texts;
  for (const ContentPart& part : effective[0].parts) texts.push_back(part.text);
  EXPECT_EQ(texts,
            (std::vector<std::string>{"<task>first</task>", "<user_message>second</user_message>",
                                      "<environment_details>\nnew\n</environment_details>"}));
}

// ---- Overflow recovery ------------------------------------------------------------------------

TEST(ForcedReductionTest, HidesAQuarterAtMostThreeTimes) {
  std::vector<HistoryMessage> history = Conversation(25);  // 24 after the first
  ForcedReduction reduction;
  std::optional<TruncateResult> first = reduction.Reduce(history, NextSeq(history), 0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->messages_hidden, 6);  // floor(24 × 0.25)
  ASSERT_TRUE(reduction.Reduce(history, NextSeq(history), 0).has_value());
  ASSERT_TRUE(reduction.Reduce(history, NextSeq(history), 0).has_value());
  EXPECT_EQ(reduction.attempts(), 3);
  size_t before = history.size();
  EXPECT_FALSE(reduction.Reduce(history, NextSeq(history), 0).has_value());
  EXPECT_EQ(history.size(), before);
  reduction.Reset();
  EXPECT_TRUE(reduction.Reduce(history, NextSeq(history), 0).has_value());
}

TEST(ForcedReductionTest, ShortHistoriesFallBackToHalfOrGiveUp) {
  std::vector<HistoryMessage> five = Conversation(5);  // a quarter of 4 rounds to 0, half is 2
  ForcedReduction reduction;
  std::optional<TruncateResult> result = reduction.Reduce(five, NextSeq(five), 0);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->messages_hidden, 2);

  std::vector<HistoryMessage> three = Conversation(3);
  ForcedReduction other;
  EXPECT_FALSE(other.Reduce(three, NextSeq(three), 0).has_value());
  EXPECT_EQ(three.size(), 3u);
}

}  // namespace
}  // namespace lai::agent
