#include "http/sse.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace lai::http {
namespace {

struct Event {
  std::string event;
  std::string data;
  std::string id;
  std::optional<int64_t> retry_ms;
  bool operator==(const Event&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Event& e) {
  return os << "{event='" << e.event << "' data='" << e.data << "' id='" << e.id
            << "' retry=" << (e.retry_ms ? std::to_string(*e.retry_ms) : "none") << "}";
}

std::vector<Event> DecodePieces(const std::vector<std::string_view>& pieces) {
  SseDecoder decoder;
  std::vector<Event> events;
  for (std::string_view piece : pieces) {
    decoder.Feed(piece, [&](const SseEvent& e) {
      events.push_back({std::string(e.event), std::string(e.data), std::string(e.id), e.retry_ms});
    });
  }
  EXPECT_TRUE(decoder.status().ok()) << decoder.status().ToString();
  return events;
}

// Decodes `input` whole, at every 2-way split point and one byte at a time; all must agree with
// `expected`.
void ExpectEvents(std::string_view input, const std::vector<Event>& expected) {
  EXPECT_EQ(DecodePieces({input}), expected) << "whole input";
  for (size_t split = 0; split <= input.size(); ++split) {
    ASSERT_EQ(DecodePieces({input.substr(0, split), input.substr(split)}), expected)
        << "split at byte " << split;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(DecodePieces(bytes), expected) << "one byte at a time";
}

TEST(SseDecoderTest, SingleEvent) {
  ExpectEvents("data: hello\n\n", {{"message", "hello", "", {}}});
}

TEST(SseDecoderTest, MultiLineDataJoinedWithNewline) {
  ExpectEvents("data: a\ndata: b\ndata:\ndata: c\n\n", {{"message", "a\nb\n\nc", "", {}}});
}

TEST(SseDecoderTest, EventNameAndResetAfterDispatch) {
  ExpectEvents("event: ping\ndata: {}\n\ndata: x\n\n",
               {{"ping", "{}", "", {}}, {"message", "x", "", {}}});
}

TEST(SseDecoderTest, AllLineEndings) {
  ExpectEvents("data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n", {{"message", "a", "", {}},
                                                                      {"message", "b", "", {}},
                                                                      {"message", "c", "", {}},
                                                                      {"message", "d", "", {}}});
}

// The line-end scan looks at 16 bytes at a time: every line length around that width, with each
// line ending, wherever the line starts in its block.
TEST(SseDecoderTest, LineEndsAtEveryOffsetOfTheScanWidth) {
  for (std::string_view eol : {"\n", "\r", "\r\n"}) {
    for (size_t length = 0; length <= 40; ++length) {
      std::string value(length, 'v');
      for (size_t i = 0; i < length; ++i) value[i] = static_cast<char>('a' + i % 26);
      std::string input = "event: e\r\n";
      input += "data: " + value + std::string(eol) + "data: " + value + std::string(eol);
      input += eol;
      ExpectEvents(input, {{"e", value + "\n" + value, "", {}}});
      if (HasFatalFailure()) return;
    }
  }
}

TEST(SseDecoderTest, CrThenLfAcrossPiecesIsOneLineEnd) {
  // "data: a\r" + "\ndata: b\r\n\r\n" must not see an empty line between "a" and "b".
  EXPECT_EQ(DecodePieces({"data: a\r", "\ndata: b\r", "\n\r", "\n"}),
            (std::vector<Event>{{"message", "a\nb", "", {}}}));
}

TEST(SseDecoderTest, BomAtStartIsSkippedOnlyThere) {
  ExpectEvents(
      "\xEF\xBB\xBF"
      "data: x\n\n",
      {{"message", "x", "", {}}});
  // Later, the BOM bytes are part of a field name that matches nothing.
  ExpectEvents(
      "data: x\n\n\xEF\xBB\xBF"
      "data: y\n\n",
      {{"message", "x", "", {}}});
  // A partial BOM is ordinary data.
  ExpectEvents(
      "\xEF\xBB"
      "data: x\n\ndata: y\n\n",
      {{"message", "y", "", {}}});
}

TEST(SseDecoderTest, CommentsAreIgnored) {
  ExpectEvents(": ping\n:\ndata: x\n: between\ndata: y\n\n: trailing\n\n",
               {{"message", "x\ny", "", {}}});
}

TEST(SseDecoderTest, FieldWithoutColonHasEmptyValue) {
  ExpectEvents("data\n\n", {{"message", "", "", {}}});
  ExpectEvents("data\ndata\n\n", {{"message", "\n", "", {}}});
  ExpectEvents("event\ndata: x\n\n", {{"message", "x", "", {}}});
}

TEST(SseDecoderTest, OnlyOneLeadingSpaceRemoved) {
  ExpectEvents("data:x\n\ndata:  y\n\ndata: a: b\n\n",
               {{"message", "x", "", {}}, {"message", " y", "", {}}, {"message", "a: b", "", {}}});
}

TEST(SseDecoderTest, IdPersistsAndNulIdIsIgnored) {
  using namespace std::string_literals;
  ExpectEvents("id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n"s,
               {{"message", "a", "7", {}},
                {"message", "b", "7", {}},
                {"message", "c", "7", {}},
                {"message", "d", "", {}}});
}

TEST(SseDecoderTest, RetryDigitsOnly) {
  ExpectEvents(
      "retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry: -1\nretry:\ndata: c\n\n",
      {{"message", "a", "", 1500}, {"message", "b", "", 1500}, {"message", "c", "", 1500}});
  ExpectEvents("retry: 99999999999999999999999\ndata: a\n\n", {{"message", "a", "", {}}});
}

TEST(SseDecoderTest, EventWithoutDataIsNotDispatched) {
  ExpectEvents("event: x\n\nid: 1\n\nretry: 5\n\n\n\ndata: y\n\n", {{"message", "y", "1", 5}});
}

TEST(SseDecoderTest, UnknownFieldsIgnored) {
  ExpectEvents("foo: bar\nDATA: no\ndata : no\ndata: yes\n\n", {{"message", "yes", "", {}}});
}

TEST(SseDecoderTest, IncompleteEventAtEndIsDiscarded) {
  ExpectEvents("data: a\n\ndata: b", {{"message", "a", "", {}}});
  ExpectEvents("data: a\n\ndata: b\n", {{"message", "a", "", {}}});
  SseDecoder decoder;
  int events = 0;
  decoder.Feed("data: a\n\ndata: b\n", [&](const SseEvent&) { ++events; });
  EXPECT_EQ(events, 1);
  EXPECT_TRUE(decoder.has_pending_input());
  decoder.Feed("\n", [&](const SseEvent&) { ++events; });
  EXPECT_EQ(events, 2);
  EXPECT_FALSE(decoder.has_pending_input());
}

TEST(SseDecoderTest, OpenAiStream) {
  ExpectEvents(
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}\n\n"
      ": OPENROUTER PROCESSING\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"数据\"}}]}\n\n"
      "data: [DONE]\n\n",
      {{"message", R"({"choices":[{"delta":{"content":"Hé"}}]})", "", {}},
       {"message", R"({"choices":[{"delta":{"content":"数据"}}]})", "", {}},
       {"message", "[DONE]", "", {}}});
}

TEST(SseDecoderTest, AnthropicStream) {
  ExpectEvents(
      "event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
      "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
      "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\": \"}}\r\n\r\n"
      "event: error\r\ndata: "
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\r\n\r\n",
      {{"message_start", R"({"type":"message_start"})", "", {}},
       {"ping", R"({"type": "ping"})", "", {}},
       {"content_block_delta",
        R"({"type":"content_block_delta","delta":{"type":"input_json_delta","partial_json":"{\"path\": "}})",
        "",
        {}},
       {"error", R"({"type":"error","error":{"type":"overloaded_error"}})", "", {}}});
}

TEST(SseDecoderTest, LineLimitMakesStreamInvalid) {
  SseDecoder decoder(/*max_line_bytes=*/16, /*max_event_bytes=*/64);
  int events = 0;
  decoder.Feed("data: 0123456789", [&](const SseEvent&) { ++events; });
  EXPECT_TRUE(decoder.status().ok());
  decoder.Feed("abcdef", [&](const SseEvent&) { ++events; });
  ASSERT_FALSE(decoder.status().ok());
  EXPECT_EQ(decoder.status().code(), ErrorCode::kProtocol);
  EXPECT_NE(decoder.status().error().message().find("longer than 16 bytes"), std::string::npos);
  decoder.Feed("\n\ndata: x\n\n", [&](const SseEvent&) { ++events; });
  EXPECT_EQ(events, 0);
  decoder.Reset();
  decoder.Feed("data: x\n\n", [&](const SseEvent&) { ++events; });
  EXPECT_EQ(events, 1);
}

TEST(SseDecoderTest, LineLimitAppliesToWholeLinesInOnePiece) {
  SseDecoder decoder(/*max_line_bytes=*/16, /*max_event_bytes=*/64);
  int events = 0;
  decoder.Feed("data: ok\n\ndata: 0123456789abcdef\n\n", [&](const SseEvent&) { ++events; });
  EXPECT_EQ(events, 1);
  EXPECT_EQ(decoder.status().code(), ErrorCode::kProtocol);
}

TEST(SseDecoderTest, EventLimitMakesStreamInvalid) {
  SseDecoder decoder(/*max_line_bytes=*/64, /*max_event_bytes=*/10);
  decoder.Feed("data: 012345\ndata: 6789\n", [](const SseEvent&) {});
  EXPECT_EQ(decoder.status().code(), ErrorCode::kProtocol);
}

std::vector<std::string> NdjsonPieces(const std::vector<std::string_view>& pieces) {
  NdjsonDecoder decoder;
  std::vector<std::string> lines;
  auto sink = [&](std::string_view line) { lines.emplace_back(line); };
  for (std::string_view piece : pieces) decoder.Feed(piece, sink);
  decoder.Finish(sink);
  EXPECT_TRUE(decoder.status().ok());
  return lines;
}

void ExpectLines(std::string_view input, const std::vector<std::string>& expected) {
  for (size_t split = 0; split <= input.size(); ++split) {
    ASSERT_EQ(NdjsonPieces({input.substr(0, split), input.substr(split)}), expected)
        << "split at byte " << split;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(NdjsonPieces(bytes), expected) << "one byte at a time";
}

TEST(NdjsonDecoderTest, LinesAtEverySplit) {
  ExpectLines(
      "{\"message\":{\"content\":\"He\"},\"done\":false}\n"
      "{\"message\":{\"content\":\"数据\"},\"done\":false}\r\n"
      "\n  \r\n"
      "{\"done\":true}",
      {R"({"message":{"content":"He"},"done":false})",
       R"({"message":{"content":"数据"},"done":false})", R"({"done":true})"});
}

TEST(NdjsonDecoderTest, FinishWithoutPendingLineDeliversNothing) {
  ExpectLines("{\"a\":1}\n", {R"({"a":1})"});
  ExpectLines("", {});
  ExpectLines("\r\n\n", {});
}

TEST(NdjsonDecoderTest, LineLimit) {
  NdjsonDecoder decoder(8);
  int lines = 0;
  decoder.Feed("{\"a\":12345", [&](std::string_view) { ++lines; });
  EXPECT_EQ(decoder.status().code(), ErrorCode::kProtocol);
  decoder.Feed("}\n{}\n", [&](std::string_view) { ++lines; });
  EXPECT_EQ(lines, 0);
}

}  // namespace
}  // namespace lai::http
