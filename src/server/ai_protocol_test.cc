#include "server/ai_protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace lai::server {
namespace {

using llm::ContentPart;

std::string ErrorOf(std::string_view json) {
  Result<AiRequest> r = ParseAiRequest(json);
  if (r.ok()) return "(parsed)";
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  return r.error().message();
}

TEST(ParseAiRequestTest, MinimalRequest) {
  Result<AiRequest> r = ParseAiRequest(R"({"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->profile, "");
  EXPECT_EQ(r->request.model, "");
  ASSERT_EQ(r->request.messages.size(), 1u);
  EXPECT_EQ(r->request.messages[0].role, llm::Role::kUser);
  ASSERT_EQ(r->request.messages[0].parts.size(), 1u);
  EXPECT_EQ(r->request.messages[0].parts[0].text, "hi");
}

TEST(ParseAiRequestTest, AllFields) {
  Result<AiRequest> r = ParseAiRequest(R"({
    "model": "gpt-4o", "profile": "work", "temperature": 0.5, "maxTokens": 100, "stream": false,
    "systemPrompt": "Be brief.",
    "tools": [{"name": "read_file", "description": "Read", "parameters": {"type": "object"}},
              {"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}],
    "messages": [
      {"role": "system", "content": "And kind."},
      {"role": "user", "content": [{"type": "text", "text": "look"},
                                   {"type": "image", "mediaType": "image/png", "data": "AAAA"}]},
      {"role": "assistant", "content": "ok", "toolCalls": [
         {"name": "read_file", "parameters": {"path": "a"}, "id": "c1"},
         {"name": "ls", "parameters": "{\"dir\":\".\"}", "id": "c2"}]},
      {"role": "tool", "toolCallId": "c1", "content": "text of a"},
      {"role": "tool", "toolCallId": "c2", "content": [{"type": "text", "text": "a b"}],
       "isError": true}
    ]})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const llm::CompletionRequest& q = r->request;
  EXPECT_EQ(r->profile, "work");
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(q.model, "gpt-4o");
  EXPECT_EQ(q.temperature, 0.5);
  EXPECT_EQ(q.max_tokens, 100);
  EXPECT_EQ(q.system_prompt, "Be brief.\n\nAnd kind.");
  ASSERT_EQ(q.tools.size(), 2u);
  EXPECT_EQ(q.tools[1].name, "ls");
  EXPECT_EQ(q.tools[1].parameters_schema_json, R"({"type":"object"})");
  ASSERT_EQ(q.messages.size(), 3u);  // user, assistant, one user message with both results.
  ASSERT_EQ(q.messages[0].parts.size(), 2u);
  EXPECT_EQ(q.messages[0].parts[1].kind, ContentPart::Kind::kImage);
  EXPECT_EQ(q.messages[0].parts[1].media_type, "image/png");
  ASSERT_EQ(q.messages[1].parts.size(), 3u);
  EXPECT_EQ(q.messages[1].parts[1].kind, ContentPart::Kind::kToolCall);
  EXPECT_EQ(q.messages[1].parts[1].arguments_json, R"({"path":"a"})");
  EXPECT_EQ(q.messages[1].parts[2].arguments_json, R"({"dir":"."})");
  EXPECT_EQ(q.messages[2].role, llm::Role::kUser);
  ASSERT_EQ(q.messages[2].parts.size(), 2u);
  EXPECT_EQ(q.messages[2].parts[0].kind, ContentPart::Kind::kToolResult);
  EXPECT_EQ(q.messages[2].parts[0].tool_name, "read_file");
  EXPECT_EQ(q.messages[2].parts[1].text, "a b");
  EXPECT_TRUE(q.messages[2].parts[1].is_error);
}

TEST(ParseAiRequestTest, ImageForms) {
  Result<AiRequest> r = ParseAiRequest(R"({"messages":[{"role":"user","content":[
      {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"QQ=="}},
      {"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lG"}}]}]})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->request.messages[0].parts[0].media_type, "image/jpeg");
  EXPECT_EQ(r->request.messages[0].parts[1].media_type, "image/gif");
  EXPECT_EQ(r->request.messages[0].parts[1].data_base64, "R0lG");
}

TEST(ParseAiRequestTest, ErrorsNameTheFieldAndExpectedType) {
  EXPECT_EQ(ErrorOf("{"), ErrorOf("{"));  // Not JSON: the parser's position.
  EXPECT_NE(ErrorOf("{").find("AIRequest: not valid JSON"), std::string::npos);
  // The position, never the payload's bytes (errors are safe to log and show).
  std::string broken = ErrorOf(R"({"messages": [SECRETWORD)");
  EXPECT_NE(broken.find("syntax error at byte 15"), std::string::npos) << broken;
  EXPECT_EQ(broken.find("SECRET"), std::string::npos) << broken;
  // A huge bad value is named by its start and length, not echoed whole.
  std::string role = ErrorOf(R"({"messages":[{"role":")" + std::string(200'000, 'r') +
                             R"(","content":"hi"}]})");
  EXPECT_NE(role.find("got \"" + std::string(64, 'r') + "…\" (200000 bytes)"), std::string::npos)
      << role;
  EXPECT_LT(role.size(), 300u);
  EXPECT_EQ(ErrorOf("[]"), "AIRequest (document): expected an object, got array");
  EXPECT_EQ(ErrorOf("{}"), "AIRequest messages: missing (expected an array of messages)");
  EXPECT_EQ(ErrorOf(R"({"messages":{}})"),
            "AIRequest messages: expected an array of messages, got object");
  EXPECT_EQ(ErrorOf(R"({"messages":[]})"), "AIRequest messages: must hold at least one message");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":3}]})"),
            "AIRequest messages[1].content: expected a string or an array of parts, got number");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"content":"a"}]})"),
            "AIRequest messages[0].role: missing (expected a string)");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"bot","content":"a"}]})"),
            "AIRequest messages[0].role: expected \"user\", \"assistant\", \"system\" or "
            "\"tool\", got \"bot\"");
  EXPECT_EQ(ErrorOf(R"({"model":7,"messages":[{"role":"user","content":"a"}]})"),
            "AIRequest model: expected a string, got number");
  EXPECT_EQ(ErrorOf(R"({"temperature":"hot","messages":[{"role":"user","content":"a"}]})"),
            "AIRequest temperature: expected a number, got string");
  EXPECT_EQ(ErrorOf(R"({"temperature":3,"messages":[{"role":"user","content":"a"}]})"),
            "AIRequest temperature: expected a number between 0 and 2, got 3");
  EXPECT_EQ(ErrorOf(R"({"maxTokens":1.5,"messages":[{"role":"user","content":"a"}]})"),
            "AIRequest maxTokens: expected an integer, got number");
  EXPECT_EQ(ErrorOf(R"({"stream":"yes","messages":[{"role":"user","content":"a"}]})"),
            "AIRequest stream: expected a boolean, got string");
  EXPECT_EQ(
      ErrorOf(R"({"tools":[{"description":"x"}],"messages":[{"role":"user","content":"a"}]})"),
      "AIRequest tools[0].name: missing (expected a string)");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"user","content":[{"type":"video"}]}]})"),
            "AIRequest messages[0].content[0].type: expected \"text\", \"image\" or "
            "\"image_url\", got \"video\"");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"assistant","content":"a","toolCalls":[
                {"name":"x","id":"1","parameters":[1]}]}]})"),
            "AIRequest messages[0].toolCalls[0].parameters: expected an object, got array");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"tool","toolCallId":"nope","content":"r"}]})"),
            "AIRequest messages[0].toolCallId: 'nope' matches no toolCalls[].id of an earlier "
            "assistant message");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"system","content":"s"}]})"),
            "AIRequest messages: holds only system messages; add a user message");
  EXPECT_EQ(ErrorOf(R"({"messages":[{"role":"user","content":[{"type":"image_url",
                "image_url":{"url":"https://x/y.png"}}]}]})"),
            "AIRequest messages[0].content[0].image_url.url: expected a base64 data URL "
            "(data:image/png;base64,...); remote image URLs are not fetched");
}

TEST(EventJsonTest, EachKind) {
  using Kind = llm::StreamEvent::Kind;
  llm::Usage usage{10, 20, 1, 2, 3, 0.5};
  llm::StreamEvent e;
  e.kind = Kind::kTextDelta;
  e.text = "Hi \"you\"";
  EXPECT_EQ(EventJson(e, usage), R"({"text":"Hi \"you\"","type":"text"})");
  e.kind = Kind::kReasoningDelta;
  e.text = "line\n\ttab \x01 \\ done";
  EXPECT_EQ(EventJson(e, usage), R"({"text":"line\n\ttab \u0001 \\ done","type":"reasoning"})");
  e.signature = "sig";
  EXPECT_EQ(EventJson(e, usage),
            R"({"signature":"sig","text":"line\n\ttab \u0001 \\ done","type":"reasoning"})");
  e = {};
  e.kind = Kind::kToolCallDelta;
  e.index = 2;
  e.tool_call_id = "c\"2";
  e.text = R"({"path":"a)";
  EXPECT_EQ(EventJson(e, usage),
            R"({"delta":"{\"path\":\"a","id":"c\"2","index":2,"type":"tool_call_delta"})");
  e = {};
  e.kind = Kind::kToolCallEnd;
  e.tool_call_id = "c1";
  e.tool_name = "ls";
  e.arguments_json = R"({"dir":"."})";
  EXPECT_EQ(EventJson(e, usage),
            R"({"id":"c1","index":0,"name":"ls","parameters":{"dir":"."},"type":"tool_call"})");
  // Arguments that are not an object, broken or not, are passed on as the text sent.
  e.arguments_json = "[1,2]";
  EXPECT_EQ(EventJson(e, usage),
            R"({"id":"c1","index":0,"name":"ls","parameters":"[1,2]","type":"tool_call"})");
  e.arguments_json = R"({"dir":)";
  EXPECT_EQ(EventJson(e, usage),
            R"({"id":"c1","index":0,"name":"ls","parameters":"{\"dir\":","type":"tool_call"})");
  e = {};
  e.kind = Kind::kError;
  e.error = {llm::ErrorKind::kRateLimited, "slow down", std::chrono::milliseconds(1500), 429};
  EXPECT_EQ(
      EventJson(e, usage),
      R"({"kind":"rate_limited","message":"slow down","retryAfterMs":1500,"status":429,"type":"error"})");
  e = {};
  e.kind = Kind::kDone;
  e.text = "stop";
  EXPECT_EQ(
      EventJson(e, usage),
      R"({"stopReason":"stop","type":"done","usage":{"cacheReadTokens":2,"cacheWriteTokens":1,"cost":0.5,"inputTokens":10,"outputTokens":20,"reasoningTokens":3}})");
}

// A chunk's text is written without a JSON tree; it must come out exactly as the tree would
// write it, invalid UTF-8 (replaced by U+FFFD) included.
TEST(EventJsonTest, TextIsWrittenAsTheJsonTreeWouldWriteIt) {
  llm::StreamEvent e;
  e.kind = llm::StreamEvent::Kind::kTextDelta;
  for (std::string text :
       {std::string("plain ascii, long enough for eight-byte steps"),
        std::string("\xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"), std::string("cut \xc3"),
        std::string("bad \xff\xfe byte"), std::string("ctl \x1f\x7f \"q\" \\ \r\n\b\f"),
        std::string(), std::string(5000, '\n'), std::string(3000, '\x01'),
        [] {  // Long lines of text with escapes between them, as in files.
          std::string lines;
          for (int i = 0; i < 500; ++i) {
            lines += std::string(i % 40, 'a') + "\t\"" + std::to_string(i) + "\n";
          }
          return lines;
        }()}) {
    e.text = text;
    nlohmann::json tree = {{"type", "text"}, {"text", text}};
    EXPECT_EQ(EventJson(e, {}), tree.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << text;
  }
}

TEST(ReplyCollectorTest, CollectsTheWholeAnswer) {
  using Kind = llm::StreamEvent::Kind;
  ReplyCollector collector;
  llm::StreamEvent e;
  e.kind = Kind::kTextDelta;
  e.text = "Hel";
  collector.Add(e);
  e.text = "lo";
  collector.Add(e);
  e = {};
  e.kind = Kind::kToolCallEnd;
  e.tool_call_id = "c";
  e.tool_name = "t";
  e.arguments_json = "{}";
  collector.Add(e);
  e = {};
  e.kind = Kind::kDone;
  e.text = "tool_use";
  collector.Add(e);
  EXPECT_EQ(
      collector.FinalJson(),
      R"({"reasoning":"","stopReason":"tool_use","text":"Hello","toolCalls":[{"id":"c","name":"t","parameters":{}}],"type":"done","usage":{"cacheReadTokens":0,"cacheWriteTokens":0,"cost":0.0,"inputTokens":0,"outputTokens":0,"reasoningTokens":0}})");
}

}  // namespace
}  // namespace lai::server
