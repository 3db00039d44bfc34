#include "llm/test_events.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace lai::llm::test_support {
namespace {

std::string Quoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidKey:
      return "invalid_key";
    case ErrorKind::kUnknownModel:
      return "unknown_model";
    case ErrorKind::kContextTooLong:
      return "context_too_long";
    case ErrorKind::kRateLimited:
      return "rate_limited";
    case ErrorKind::kOverloaded:
      return "overloaded";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kUnavailable:
      return "unavailable";
    case ErrorKind::kBadResponse:
      return "bad_response";
    case ErrorKind::kInvalidRequest:
      return "invalid_request";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "?";
}

std::string FormatEvent(const StreamEvent& event) {
  using Kind = StreamEvent::Kind;
  switch (event.kind) {
    case Kind::kTextDelta:
      return "text " + Quoted(event.text);
    case Kind::kReasoningDelta:
      return "reasoning " + Quoted(event.text) +
             (event.signature.empty() ? "" : " signature=" + Quoted(event.signature));
    case Kind::kToolCallStart:
      return fmt::format("tool_start {} {} {}", event.index, event.tool_call_id, event.tool_name);
    case Kind::kToolCallDelta:
      return fmt::format("tool_delta {} {} {}", event.index, event.tool_call_id,
                         Quoted(event.text));
    case Kind::kToolCallEnd:
      return fmt::format("tool_end {} {} {} {}", event.index, event.tool_call_id, event.tool_name,
                         event.arguments_json) +
             (event.signature.empty() ? "" : " signature=" + Quoted(event.signature));
    case Kind::kUsage: {
      const Usage& u = event.usage;
      std::string line = fmt::format(
          "usage input={} output={} cache_write={} cache_read={} reasoning={}", u.input_tokens,
          u.output_tokens, u.cache_write_tokens, u.cache_read_tokens, u.reasoning_tokens);
      if (u.cost_usd != 0) line += fmt::format(" cost={:.6f}", u.cost_usd);
      return line;
    }
    case Kind::kError: {
      std::string line = fmt::format("error {}", ErrorKindName(event.error.kind));
      if (event.error.http_status != 0) line += fmt::format(" status={}", event.error.http_status);
      if (event.error.retry_after) {
        line += fmt::format(" retry_after_ms={}", event.error.retry_after->count());
      }
      return line + " " + Quoted(event.error.message);
    }
    case Kind::kDone:
      return "done " + event.text;
    case Kind::kRetrying:
      return "retrying " + Quoted(event.text);
  }
  return "?";
}

std::string FormatEvents(const std::vector<StreamEvent>& events) {
  std::string out;
  for (const StreamEvent& event : events) out += FormatEvent(event) + "\n";
  return out;
}

std::string ProvidersDir() { return std::string(LAI_TESTDATA_DIR) + "/providers"; }

std::string ReadFileOrEmpty(const std::string& path, bool* exists) {
  std::ifstream file(path, std::ios::binary);
  if (exists != nullptr) *exists = file.good();
  if (!file) return {};
  std::ostringstream out;
  out << file.rdbuf();
  return out.str();
}

std::vector<GoldenCase> LoadGoldenCases(std::string_view provider) {
  std::vector<GoldenCase> cases;
  std::filesystem::path dir = std::filesystem::path(ProvidersDir()) / std::string(provider);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() != ".events") continue;
    GoldenCase golden;
    golden.provider = std::string(provider);
    golden.name = entry.path().stem().string();
    std::string stem = (dir / golden.name).string();
    golden.expected_events = ReadFileOrEmpty(entry.path().string());
    for (const char* extension : {".sse", ".ndjson", ".json"}) {
      bool exists = false;
      std::string body = ReadFileOrEmpty(stem + extension, &exists);
      if (exists) {
        golden.body = std::move(body);
        break;
      }
    }
    std::string status = ReadFileOrEmpty(stem + ".status");
    if (!status.empty()) golden.status = std::stoi(status);
    std::istringstream headers(ReadFileOrEmpty(stem + ".headers"));
    for (std::string line; std::getline(headers, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      size_t colon = line.find(':');
      if (line.empty() || line[0] == '#' || colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      golden.headers.push_back({line.substr(0, colon), value});
    }
    cases.push_back(std::move(golden));
  }
  std::sort(cases.begin(), cases.end(),
            [](const GoldenCase& a, const GoldenCase& b) { return a.name < b.name; });
  return cases;
}

}  // namespace lai::llm::test_support
