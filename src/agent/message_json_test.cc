// MessageToJson / MessageFromJson: the exact text, round trips of every part kind and field, and
// errors naming the offending field.
#include "agent/message_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/events.h"

namespace lai::agent {
namespace {

using Kind = llm::ContentPart::Kind;

llm::ContentPart Part(Kind kind) {
  llm::ContentPart part;
  part.kind = kind;
  return part;
}

// One message holding every part kind with every field set.
llm::Message EveryPart() {
  llm::Message message;
  message.role = llm::Role::kAssistant;
  llm::ContentPart text = Part(Kind::kText);
  text.text = "Héllo \"world\"\n<tag>";
  llm::ContentPart reasoning = Part(Kind::kReasoning);
  reasoning.text = "think";
  reasoning.signature = "sig==";
  llm::ContentPart redacted = Part(Kind::kReasoning);  // Anthropic's redacted_thinking.
  redacted.redacted = true;
  redacted.signature = "EmwKAhgB";
  redacted.origin = "anthropic https://api.anthropic.com";
  llm::ContentPart call = Part(Kind::kToolCall);
  call.tool_call_id = "toolu_1";
  call.tool_name = "read_file";
  call.arguments_json = R"({"path":"a.txt","z":1,"a":[true,null]})";
  llm::ContentPart result = Part(Kind::kToolResult);
  result.tool_call_id = "toolu_1";
  result.tool_name = "read_file";
  result.text = "1 | x";
  result.is_error = true;
  llm::ContentPart image = Part(Kind::kImage);
  image.media_type = "image/png";
  image.data_base64 = "iVBORw0KGgo=";
  message.parts = {text, reasoning, redacted, call, result, image};
  return message;
}

void ExpectSameMessage(const llm::Message& a, const llm::Message& b) {
  ASSERT_EQ(a.role, b.role);
  ASSERT_EQ(a.parts.size(), b.parts.size());
  for (size_t i = 0; i < a.parts.size(); ++i) {
    SCOPED_TRACE("part " + std::to_string(i));
    const llm::ContentPart& x = a.parts[i];
    const llm::ContentPart& y = b.parts[i];
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.text, y.text);
    EXPECT_EQ(x.media_type, y.media_type);
    EXPECT_EQ(x.data_base64, y.data_base64);
    EXPECT_EQ(x.signature, y.signature);
    EXPECT_EQ(x.tool_call_id, y.tool_call_id);
    EXPECT_EQ(x.tool_name, y.tool_name);
    EXPECT_EQ(x.arguments_json, y.arguments_json);
    EXPECT_EQ(x.is_error, y.is_error);
    EXPECT_EQ(x.redacted, y.redacted);
    EXPECT_EQ(x.origin, y.origin);
  }
}

TEST(MessageJsonTest, WritesAnthropicShapedJson) {
  EXPECT_EQ(MessageToJson(EveryPart()),
            R"({"role":"assistant","content":[{"type":"text","text":"Héllo \"world\"\n<tag>"},)"
            R"({"type":"thinking","thinking":"think","signature":"sig=="},)"
            R"({"type":"redacted_thinking","data":"EmwKAhgB",)"
            R"("origin":"anthropic https://api.anthropic.com"},)"
            R"({"type":"tool_use","id":"toolu_1","name":"read_file",)"
            R"("input":{"path":"a.txt","z":1,"a":[true,null]}},)"
            R"({"type":"tool_result","tool_use_id":"toolu_1","content":"1 | x","is_error":true,)"
            R"("name":"read_file"},)"
            R"({"type":"image","source":{"type":"base64","media_type":"image/png",)"
            R"("data":"iVBORw0KGgo="}}]})");
}

TEST(MessageJsonTest, RoundTripsEveryPartKindAndField) {
  llm::Message message = EveryPart();
  Result<llm::Message> back = MessageFromJson(MessageToJson(message));
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  ExpectSameMessage(message, *back);

  llm::Message user;
  user.role = llm::Role::kUser;
  user.parts = {Part(Kind::kText), Part(Kind::kReasoning), Part(Kind::kToolResult)};
  back = MessageFromJson(MessageToJson(user));
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  ExpectSameMessage(user, *back);
}

TEST(MessageJsonTest, KeepsArgumentsThatAreNotAJsonObjectAsRawText) {
  for (std::string raw : {std::string("{\"path\": "), std::string(""), std::string("[1,2]"),
                          std::string("\"quoted\"")}) {
    llm::Message message;
    message.role = llm::Role::kAssistant;
    llm::ContentPart call = Part(Kind::kToolCall);
    call.tool_call_id = "c";
    call.tool_name = "t";
    call.arguments_json = raw;
    message.parts = {call};
    Result<llm::Message> back = MessageFromJson(MessageToJson(message));
    ASSERT_TRUE(back.ok()) << back.error().ToString();
    EXPECT_EQ(back->parts[0].arguments_json, raw);
  }
}

TEST(MessageJsonTest, CompactsWhitespaceInsideArgumentsButKeepsKeyOrder) {
  llm::Message message;
  message.role = llm::Role::kAssistant;
  llm::ContentPart call = Part(Kind::kToolCall);
  call.tool_call_id = "c";
  call.tool_name = "t";
  call.arguments_json = "{ \"b\": 1,\n \"a\": \"x\" }";
  message.parts = {call};
  Result<llm::Message> back = MessageFromJson(MessageToJson(message));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->parts[0].arguments_json, R"({"b":1,"a":"x"})");
}

TEST(MessageJsonTest, AcceptsPlainStringContent) {
  Result<llm::Message> message = MessageFromJson(R"({"role":"user","content":"hi"})");
  ASSERT_TRUE(message.ok());
  ASSERT_EQ(message->parts.size(), 1u);
  EXPECT_EQ(message->parts[0].kind, Kind::kText);
  EXPECT_EQ(message->parts[0].text, "hi");
}

TEST(MessageJsonTest, MalformedInputNamesTheField) {
  struct Case {
    const char* json;
    const char* expected;
  };
  const Case cases[] = {
      {"{\"role\":", "not valid JSON"},
      {"[1]", "(top level): expected an object, got array"},
      {R"({"content":[]})", "role: missing"},
      {R"({"role":"system","content":[]})", "role: 'system' is not a role"},
      {R"({"role":7,"content":[]})", "role: expected a string, got number"},
      {R"({"role":"user"})", "content: missing"},
      {R"({"role":"user","content":{}})", "content: expected an array or a string, got object"},
      {R"({"role":"user","content":[{"type":"text","text":"a"},3]})",
       "content[1]: expected an object, got number"},
      {R"({"role":"user","content":[{"text":"a"}]})", "content[0].type: missing"},
      {R"({"role":"user","content":[{"type":"video"}]})",
       "content[0].type: unknown part type 'video'"},
      {R"({"role":"user","content":[{"type":"text","text":1}]})",
       "content[0].text: expected a string, got number"},
      {R"({"role":"user","content":[{"type":"tool_use","id":"x","name":"n"}]})",
       "content[0].input: missing"},
      {R"({"role":"user","content":[{"type":"tool_use","name":"n","input":{}}]})",
       "content[0].id: missing"},
      {R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"x"}]})",
       "content[0].content: missing"},
      {R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"",)"
       R"("is_error":"yes"}]})",
       "content[0].is_error: expected true or false, got string"},
      {R"({"role":"user","content":[{"type":"thinking","signature":"s"}]})",
       "content[0].thinking: missing"},
      {R"({"role":"user","content":[{"type":"image"}]})", "content[0].source: missing"},
      {R"({"role":"user","content":[{"type":"image","source":{"type":"url"}}]})",
       "content[0].source.type: 'url' is not supported"},
      {R"({"role":"user","content":[{"type":"image","source":{"type":"base64",)"
       R"("media_type":"image/png"}}]})",
       "content[0].source.data: missing"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Result<llm::Message> message = MessageFromJson(c.json);
    ASSERT_FALSE(message.ok());
    EXPECT_EQ(message.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(message.error().message().find("message JSON: "), std::string::npos);
    EXPECT_NE(message.error().message().find(c.expected), std::string::npos)
        << message.error().message();
  }
}

// Streamed chunks are written without a tree: the same text the tree prints, and read back whole.
// IsValidJson agrees with nlohmann::json::accept on both of its paths (simdjson, and nlohmann for
// what simdjson refuses or what is too large for the fast path).
TEST(IsValidJsonTest, AgreesWithAStrictParser) {
  std::string big_array = "[";
  for (int i = 0; i < 40'000; ++i) big_array += "1,";
  const std::string big_broken = big_array + "]";  // 80 KB, past the fast path, ends in ",]".
  big_array += "1]";
  const std::vector<std::string> texts = {
      R"({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi"}})",
      "[]", "0", "\"x\"", "true", "null", "-1.5e3",
      "123456789012345678901234567890",  // Wider than 64 bits: simdjson refuses, JSON allows.
      "", " ", "{", "{}}", "[1,]", "{\"a\":}", "nul", "01", "1.", "\"\\x\"", "{} {}",
      "\"\xff\"",       // Invalid UTF-8.
      "\"\\ud800\"",    // A lone surrogate escape.
      "\"tab\there\"",  // A raw control character in a string.
      big_array, big_broken};
  for (const std::string& text : texts) {
    EXPECT_EQ(IsValidJson(text), nlohmann::json::accept(text)) << text.substr(0, 40);
  }
  EXPECT_TRUE(IsValidJson("123456789012345678901234567890"));
  EXPECT_FALSE(IsValidJson("{} {}"));
  EXPECT_TRUE(IsValidJson(big_array));
  EXPECT_FALSE(IsValidJson(big_broken));
}

TEST(AcpJsonTest, ChunksAreWrittenAsTheTreeWouldPrintThem) {
  using UpdateKind = SessionUpdate::Kind;
  for (UpdateKind kind : {UpdateKind::kUserMessageChunk, UpdateKind::kAgentMessageChunk,
                          UpdateKind::kAgentThoughtChunk}) {
    for (std::string text : {std::string(""), std::string("plain"),
                             std::string("quotes \" back\\slash\nnew\tline \x01 é"),
                             std::string("bad utf-8 \xff\xfe end")}) {
      SessionUpdate update;
      update.kind = kind;
      update.text = text;
      nlohmann::json tree = {{"sessionUpdate", UpdateKindName(kind)},
                             {"content", {{"type", "text"}, {"text", text}}}};
      EXPECT_EQ(ToAcpJson(update),
                tree.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      Result<SessionUpdate> back = SessionUpdateFromAcpJson(ToAcpJson(update));
      ASSERT_TRUE(back.ok());
      EXPECT_EQ(back->kind, kind);
      if (text.find('\xff') == std::string::npos) {
        EXPECT_EQ(back->text, text);
      }
    }
  }
}

}  // namespace
}  // namespace lai::agent
