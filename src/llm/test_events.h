// Test helpers: the one-line text form of StreamEvents used by the golden .events files, and
// reading golden transcripts from tests/testdata/providers. Thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/client.h"
#include "llm/types.h"

namespace lai::llm::test_support {

// One line per event, e.g. `text "Hi"`, `tool_start 0 call_1 read_file`,
// `usage input=7 output=4 cache_write=0 cache_read=0 reasoning=0`, `done stop`,
// `error rate_limited status=429 retry_after_ms=20000 "429 from openai: …"`. Strings are JSON
// string literals; cost_usd is appended as ` cost=<usd>` only when non-zero.
std::string FormatEvent(const StreamEvent& event);
std::string FormatEvents(const std::vector<StreamEvent>& events);  // Lines, each ending in '\n'.
std::string_view ErrorKindName(ErrorKind kind);

// tests/testdata/providers.
std::string ProvidersDir();
// The whole file, or "" when it does not exist (and *exists = false when given).
std::string ReadFileOrEmpty(const std::string& path, bool* exists = nullptr);

struct GoldenCase {
  std::string provider;
  std::string name;
  int status = 200;
  std::vector<http::Header> headers;
  std::string body;
  std::string expected_events;
};
// Every <case>.events under providers/<provider>/ with its body (.sse, .ndjson or .json),
// .status and .headers files, sorted by name.
std::vector<GoldenCase> LoadGoldenCases(std::string_view provider);

}  // namespace lai::llm::test_support
