// ExportMarkdown / ExportJson against golden files (tests/testdata/store/); set
// LAI_GOLDEN_UPDATE=1 to rewrite them after an intended change. Also: a session written to the
// store and loaded back exports identically.
#include "agent/session_export.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "agent/store.h"

namespace lai::agent {
namespace {

using Json = nlohmann::json;
using Kind = llm::ContentPart::Kind;

const std::string kGoldenDir = std::string(LAI_TESTDATA_DIR) + "/store/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  const std::string path = kGoldenDir + name;
  if (std::getenv("LAI_GOLDEN_UPDATE") != nullptr) {
    std::filesystem::create_directories(kGoldenDir);
    std::ofstream(path, std::ios::binary) << actual;
  }
  EXPECT_EQ(ReadFile(path), actual)
      << "golden " << path << " differs (LAI_GOLDEN_UPDATE=1 rewrites it)";
}

llm::ContentPart Text(const std::string& text) {
  llm::ContentPart part;
  part.text = text;
  return part;
}

HistoryMessage Message(int64_t seq, llm::Role role, std::vector<llm::ContentPart> parts) {
  HistoryMessage message;
  message.seq = seq;
  message.time_ms = 1'764'216'000'000 + seq * 1'000;
  message.message.role = role;
  message.message.parts = std::move(parts);
  message.token_estimate = 10 * seq;
  return message;
}

SessionRecord Record() {
  SessionRecord record;
  record.id = "7f3a9c1e-0b2d-4c5e-9f10-2a3b4c5d6e7f";
  record.parent_id = "1e2d3c4b";
  record.title = "Fix the failing test in parser | quickly";
  record.workspace = "/home/dev/project";
  record.mode = "code";
  record.profile = "anthropic";
  record.model = "claude-sonnet-4-5";
  record.tool_protocol = ToolProtocol::kNative;
  record.status = SessionStatus::kCompleted;
  record.created_ms = 1'764'216'000'000;
  record.updated_ms = 1'764'216'042'500;
  record.totals = SessionTotals{15234, 1876, 12000, 3000, 0.0875, 4};
  // As the session writes them (Session's RecordLocked).
  record.todos_json = R"([{"text":"Reproduce the failure","status":"Completed"},)"
                      R"({"text":"Fix the parser","status":"In Progress"},)"
                      R"({"text":"Run the tests","status":"Pending"}])";
  record.extra_json = R"({"completion_result":"Fixed."})";
  return record;
}

std::vector<HistoryMessage> Messages() {
  llm::ContentPart reasoning;
  reasoning.kind = Kind::kReasoning;
  reasoning.text = "The test fails on empty input.";
  reasoning.signature = "EqQBCkYIBRgCKkA=";
  llm::ContentPart call;
  call.kind = Kind::kToolCall;
  call.tool_call_id = "toolu_01";
  call.tool_name = "read_file";
  call.arguments_json = R"({"path":"src/parser.cc","line_range":[1,40]})";
  llm::ContentPart result;
  result.kind = Kind::kToolResult;
  result.tool_call_id = "toolu_01";
  result.tool_name = "read_file";
  result.text = "1 | int Parse(std::string_view s) {\n2 |   // ``` fence inside\n3 | }";
  llm::ContentPart failed = result;
  failed.tool_call_id = "toolu_02";
  failed.tool_name = "execute_command";
  failed.is_error = true;
  failed.text = "The user denied this operation.";
  llm::ContentPart raw_call = call;
  raw_call.tool_call_id = "toolu_02";
  raw_call.tool_name = "execute_command";
  raw_call.arguments_json = "{\"command\": \"make test";  // Truncated by the provider.
  llm::ContentPart image;
  image.kind = Kind::kImage;
  image.media_type = "image/png";
  image.data_base64 = "iVBORw0KGgoAAAANSUhEUg==";

  std::vector<HistoryMessage> messages;
  messages.push_back(
      Message(1, llm::Role::kUser, {Text("<task>\nFix the failing test\n</task>"), image}));
  messages.push_back(
      Message(2, llm::Role::kAssistant, {reasoning, Text("Let me read the parser."), call}));
  messages.push_back(Message(3, llm::Role::kUser, {result}));
  messages.push_back(Message(4, llm::Role::kAssistant, {raw_call}));
  messages.push_back(Message(5, llm::Role::kUser, {failed, Text("Use ctest instead.")}));
  messages.push_back(
      Message(6, llm::Role::kAssistant, {Text("Summary: the parser crashed on empty input.")}));
  messages.push_back(
      Message(7, llm::Role::kUser, {Text("[Sliding window truncation: 2 messages hidden]")}));
  messages[1].condensed_by = 6;
  messages[2].condensed_by = 6;
  messages[3].truncated_by = 7;
  messages[5].is_summary = true;
  messages[6].is_truncation_marker = true;
  return messages;
}

std::vector<StoredEvent> Events() {
  return {
      StoredEvent{1, 1'764'216'001'000, "text", R"({"text":"Let me"})"},
      StoredEvent{2, 1'764'216'001'050, "tool_call",
                  R"({"id":"toolu_01","name":"read_file","arguments":{"path":"src/parser.cc"}})"},
      StoredEvent{3, 1'764'216'042'500, "completed", "null"}};
}

TEST(SessionExportTest, MarkdownMatchesGolden) {
  ExpectGolden("session.md", ExportMarkdown(Record(), Messages(), Events()));
}

TEST(SessionExportTest, JsonMatchesGolden) {
  ExpectGolden("session.json", ExportJson(Record(), Messages(), Events()));
}

// The engine's own words (a fallback answered, a limit stopped the turn) are in no message: the
// stream had them, and so does the transcript, quoted where they came.
TEST(SessionExportTest, NoticesAreQuotedAfterTheMessageTheyFollowed) {
  SessionRecord record;
  record.id = "n";
  std::vector<HistoryMessage> messages = {Message(1, llm::Role::kUser, {Text("Fix it")}),
                                          Message(2, llm::Role::kAssistant, {Text("Fixed.")})};
  auto chunk = [](int64_t seq, const char* text) {
    return StoredEvent{seq, 0, "agent_message_chunk",
                       Json{{"sessionUpdate", "agent_message_chunk"},
                            {"content", {{"type", "text"}, {"text", text}}}}
                           .dump()};
  };
  std::vector<StoredEvent> events = {
      StoredEvent{1, 0, "message", R"({"seq":1})"},
      chunk(2, "Fixed."),  // The model's: it became message 2.
      StoredEvent{3, 0, "message", R"({"seq":2})"},
      chunk(4, "\n\n(Profile 'main' was unavailable; this answer came from its fallback.)"),
      StoredEvent{5, 0, "turn_end", "{}"},
      chunk(6, "Stopped: the cost limit.\nSend a message to continue."),
      StoredEvent{7, 0, "turn_end", "{}"},
      chunk(8, "A reply cut short"),  // Never a message, never a notice.
  };
  std::string markdown = ExportMarkdown(record, messages, events);
  EXPECT_NE(markdown.find("Fixed.\n\n> **lapce-ai:** (Profile 'main' was unavailable; this "
                          "answer came from its fallback.)\n\n> **lapce-ai:** Stopped: the cost "
                          "limit.\n> Send a message to continue.\n\n"),
            std::string::npos)
      << markdown;
  EXPECT_EQ(markdown.find("cut short"), std::string::npos) << markdown;
  // Before the first message (a store journaled by hand) and with a payload that is not an
  // update: where it falls, and skipped.
  events = {chunk(1, "Stopped early."), StoredEvent{2, 0, "turn_end", "{}"},
            StoredEvent{3, 0, "agent_message_chunk", "{not json"},
            StoredEvent{4, 0, "turn_end", "{}"}};
  markdown = ExportMarkdown(record, messages, events);
  EXPECT_LT(markdown.find("> **lapce-ai:** Stopped early."), markdown.find("## 1. User"))
      << markdown;
}

TEST(SessionExportTest, MinimalSessionHasIdAsTitleAndNoTodoSection) {
  SessionRecord record;
  record.id = "abc";
  std::string markdown = ExportMarkdown(record, {}, {});
  EXPECT_EQ(markdown.rfind("# Session abc\n", 0), 0u) << markdown;
  EXPECT_EQ(markdown.find("Todo list"), std::string::npos);
}

// Under the XML tool protocol the calls are in the assistant's text: they are fenced as XML
// (a Markdown renderer would swallow the tags), the prose around them kept as it is.
// A reply cut off inside a code block (interrupted, or the model's slip) has its fence closed
// where it ends: the block swallowed the rest of the document.
TEST(SessionExportTest, AFenceLeftOpenIsClosedAtTheEndOfItsMessage) {
  std::vector<HistoryMessage> messages = {
      Message(1, llm::Role::kUser, {Text("Show code")}),
      Message(2, llm::Role::kAssistant, {Text("Here:\n```python\nprint(1)\n")}),
      Message(3, llm::Role::kUser, {Text("Thanks")})};
  std::string markdown = ExportMarkdown(Record(), messages, {});
  EXPECT_NE(markdown.find("print(1)\n```\n"), std::string::npos) << markdown;
  // A closed block and a longer fence inside one are left as they are.
  messages[1] = Message(2, llm::Role::kAssistant, {Text("````\n```\nx\n````\nDone.")});
  markdown = ExportMarkdown(Record(), messages, {});
  EXPECT_NE(markdown.find("````\n```\nx\n````\nDone.\n\n## 3."), std::string::npos) << markdown;
  // Inline code that looks like a fence, and a block in a list item, are left as they are (a
  // stray fence was added, which opened a block to the end).
  messages[1] = Message(2, llm::Role::kAssistant,
                        {Text("```js```\nSteps:\n\n1. ```bash\n   make\n   ```\n2. Done.")});
  markdown = ExportMarkdown(Record(), messages, {});
  EXPECT_NE(markdown.find("   ```\n2. Done.\n\n## 3."), std::string::npos) << markdown;
}

// What a model or a command said reaches a terminal (cat, less -R) without its control
// characters working: they are shown, as the terminal front end shows them.
TEST(SessionExportTest, ControlCharactersAreShownNotObeyed) {
  std::vector<HistoryMessage> messages = {
      Message(1, llm::Role::kUser, {Text("line\r\nbell\a esc\033[2J")})};
  std::string markdown = ExportMarkdown(Record(), messages, {});
  EXPECT_NE(markdown.find("line\nbell^G esc^[[2J"), std::string::npos) << markdown;
  EXPECT_EQ(markdown.find('\033'), std::string::npos);
}

TEST(SessionExportTest, XmlToolCallsInTheTextAreFenced) {
  SessionRecord record;
  record.id = "x";
  record.tool_protocol = ToolProtocol::kXml;
  std::vector<HistoryMessage> messages = {
      Message(1, llm::Role::kUser, {Text("Read a.txt")}),
      Message(2, llm::Role::kAssistant,
              {Text("Reading <b>it</b>.\n<read_file>\n<path>a.txt</path>\n</read_file>")})};
  std::string markdown = ExportMarkdown(record, messages, {});
  EXPECT_NE(markdown.find("Reading <b>it</b>.\n\nTool call `read_file`:\n\n```xml\n<read_file>\n"
                          "<path>a.txt</path>\n</read_file>\n```\n"),
            std::string::npos)
      << markdown;
  record.tool_protocol = ToolProtocol::kNative;  // Native text is never parsed for calls.
  EXPECT_EQ(ExportMarkdown(record, messages, {}).find("```xml"), std::string::npos);
}

TEST(SessionExportTest, StoredAndLoadedSessionExportsTheSame) {
  std::string pattern = std::string(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
                        "/lai-export-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::string dir = pattern;
  struct DirectoryRemover {
    ~DirectoryRemover() { std::filesystem::remove_all(path); }
    std::string path;
  } remover{dir};
  {
    Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(dir + "/sessions.db");
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    SessionRecord parent;
    parent.id = Record().parent_id;
    ASSERT_TRUE((*store)->CreateSession(parent).ok());
    ASSERT_TRUE((*store)->CreateSession(Record()).ok());
    for (const HistoryMessage& message : Messages()) {
      ASSERT_TRUE((*store)->AppendMessage(Record().id, message).ok());
    }
    for (const StoredEvent& event : Events()) {
      ASSERT_TRUE(
          (*store)->AppendEvent(Record().id, event.kind, event.payload_json, event.time_ms).ok());
    }
    Result<std::optional<SessionRecord>> record = (*store)->FindSession("7f3a");
    ASSERT_TRUE(record.ok() && record->has_value());
    Result<std::vector<HistoryMessage>> messages = (*store)->LoadMessages(Record().id);
    ASSERT_TRUE(messages.ok());
    Result<std::vector<StoredEvent>> events = (*store)->LoadEvents(Record().id);
    ASSERT_TRUE(events.ok());
    EXPECT_EQ(ExportJson(**record, *messages, *events), ExportJson(Record(), Messages(), Events()));
    EXPECT_EQ(ExportMarkdown(**record, *messages, *events),
              ExportMarkdown(Record(), Messages(), Events()));
  }
}

}  // namespace
}  // namespace lai::agent
