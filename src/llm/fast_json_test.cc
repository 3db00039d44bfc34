// The simdjson fast path of the stream parsers accepts exactly what the nlohmann path accepts:
// malformed values in fields the parser skips, trailing content and escaped keys are decided as
// before.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "llm/internal/adapter.h"
#include "llm/test_events.h"

namespace lai::llm {
namespace {

std::string Parse(std::string_view provider, std::string_view body) {
  std::vector<StreamEvent> events;
  auto parser =
      internal::NewStreamParser(*internal::FindProvider(provider), std::string(provider), "call",
                                [&](const StreamEvent& e) { events.push_back(e); });
  parser->Feed(body);
  parser->Finish();
  return test_support::FormatEvents(events);
}

TEST(FastJsonTest, MalformedValueInASkippedFieldIsABadResponse) {
  std::string out =
      Parse("openai",
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
            "data: {\"logprobs\":nul,\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
            "data: [DONE]\n\n");
  EXPECT_NE(out.find("text \"a\"\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("text \"b\""), std::string::npos) << out;
  EXPECT_NE(out.find("error bad_response"), std::string::npos) << out;
}

TEST(FastJsonTest, TrailingContentIsABadResponse) {
  std::string out =
      Parse("anthropic", "event: message_stop\ndata: {\"type\":\"message_stop\"} x\n\n");
  EXPECT_NE(out.find("error bad_response"), std::string::npos) << out;
}

TEST(FastJsonTest, EscapedKeysAndUnknownNestedFieldsAreReadLikeNlohmann) {
  std::string out = Parse(
      "openai",
      "data: {\"extra\":{\"a\":[1,2.5e3,true,null,{\"b\":\"\\u00e9\"}]},\"choices\":[{\"delta\":"
      "{\"con\\u0074ent\":\"hi\\n\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
      "data: [DONE]\n\n");
  EXPECT_EQ(out, "text \"hi\\n\"\ndone stop\n");
}

TEST(FastJsonTest, OllamaToolCallArgumentsAreSerialisedAsBefore) {
  std::string out =
      Parse("ollama",
            "{\"message\":{\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"read_file\","
            "\"arguments\":{\"z\": 1, \"a\": \"x\"}}}]},\"done\":true,\"eval_count\":3}\n");
  EXPECT_NE(out.find("tool_end 0 call_0 read_file {\"a\":\"x\",\"z\":1}"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace lai::llm
