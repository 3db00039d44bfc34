// Data-driven golden tests: every tests/testdata/providers/<provider>/<case>.events is the exact
// event list our parser (or error mapping, for non-2xx cases) must produce from the recorded body,
// whole, one byte at a time, and in 7-byte pieces.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "llm/internal/adapter.h"
#include "llm/test_events.h"

namespace lai::llm {
namespace {

using internal::Endpoint;
using internal::FindProvider;
using internal::ProviderSpec;
using test_support::FormatEvents;
using test_support::GoldenCase;
using test_support::LoadGoldenCases;

constexpr char kSecretKey[] = "sk-golden-SECRET-0123456789";

std::string ModelFor(std::string_view provider) {
  if (provider == "openai") return "gpt-4.1";
  if (provider == "anthropic") return "claude-sonnet-4-5";
  if (provider == "gemini") return "gemini-2.5-flash";
  return "qwen3:8b";
}

Endpoint EndpointFor(const ProviderSpec& spec) {
  Endpoint endpoint;
  endpoint.provider = std::string(spec.name);
  endpoint.base_url = std::string(spec.default_base_url);
  if (!spec.default_key_env.empty()) {
    endpoint.api_key = kSecretKey;
    endpoint.api_key_source = std::string(spec.default_key_env);
  }
  return endpoint;
}

// Runs one case with the body split into pieces of `piece_bytes` (0 = whole).
std::vector<StreamEvent> RunCase(const GoldenCase& golden, size_t piece_bytes) {
  const ProviderSpec* spec = FindProvider(golden.provider);
  std::vector<StreamEvent> events;
  if (golden.status < 200 || golden.status > 299) {
    StreamEvent event;
    event.kind = StreamEvent::Kind::kError;
    event.error = internal::ErrorFromResponse(EndpointFor(*spec), ModelFor(golden.provider),
                                              golden.status, golden.headers, golden.body);
    events.push_back(event);
    return events;
  }
  auto parser = internal::NewStreamParser(*spec, golden.provider, "call",
                                          [&](const StreamEvent& e) { events.push_back(e); });
  std::string_view body = golden.body;
  size_t step = piece_bytes == 0 ? std::max<size_t>(body.size(), 1) : piece_bytes;
  for (size_t at = 0; at < body.size(); at += step) parser->Feed(body.substr(at, step));
  parser->Finish();
  EXPECT_TRUE(parser->is_terminated());
  return events;
}

std::vector<GoldenCase> AllCases() {
  std::vector<GoldenCase> all;
  for (const char* provider : {"openai", "anthropic", "gemini", "ollama"}) {
    std::vector<GoldenCase> cases = LoadGoldenCases(provider);
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

TEST(GoldenCasesTest, EveryProviderHasTheRequiredCases) {
  for (const char* provider : {"openai", "anthropic", "gemini", "ollama"}) {
    std::vector<std::string> names;
    for (const GoldenCase& golden : LoadGoldenCases(provider)) names.push_back(golden.name);
    for (const char* required :
         {"text", "tool_call", "malformed_json", "truncated", "error_404", "error_overloaded"}) {
      EXPECT_NE(std::find(names.begin(), names.end(), required), names.end())
          << provider << " lacks the golden case " << required;
    }
  }
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, ParsesExactlyWhateverTheSplit) {
  const GoldenCase& golden = GetParam();
  ASSERT_FALSE(golden.body.empty());
  for (size_t piece : {size_t{0}, size_t{1}, size_t{7}}) {
    std::vector<StreamEvent> events = RunCase(golden, piece);
    std::string actual = FormatEvents(events);
    EXPECT_EQ(actual, golden.expected_events) << "split into pieces of " << piece;
    // Exactly one terminal event, and it is the last.
    ASSERT_FALSE(events.empty());
    auto is_terminal = [](const StreamEvent& e) {
      return e.kind == StreamEvent::Kind::kDone || e.kind == StreamEvent::Kind::kError;
    };
    EXPECT_EQ(std::count_if(events.begin(), events.end(), is_terminal), 1);
    EXPECT_TRUE(is_terminal(events.back()));
    EXPECT_EQ(actual.find(kSecretKey), std::string::npos) << "the API key leaked";
  }
}

INSTANTIATE_TEST_SUITE_P(Providers, GoldenTest, ::testing::ValuesIn(AllCases()),
                         [](const auto& param_info) {
                           return param_info.param.provider + "_" + param_info.param.name;
                         });

}  // namespace
}  // namespace lai::llm
