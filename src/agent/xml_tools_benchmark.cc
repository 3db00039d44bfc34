// `xml_tools_benchmark [iterations]`: MB/s of XmlToolParser on a ~100 KB assistant message (prose
// with markup, a write_to_file of ~40 KB, a read_file call) fed in 20-byte chunks, beside a
// baseline that only copies the same chunks and looks for '<' in them. Build Release.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/session_tool_specs.h"
#include "agent/tools/tool.h"
#include "agent/xml_tools.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<lai::agent::XmlToolSpec> Specs() {
  std::vector<lai::agent::XmlToolSpec> specs;
  for (const auto& tool : lai::agent::WorkspaceTools()) {
    auto spec = lai::agent::XmlToolSpec::FromSchema(tool->name(), tool->parameters_schema());
    if (spec.ok()) specs.push_back(std::move(*spec));
  }
  for (const auto& tool : lai::agent::SessionToolSpecs()) {
    auto spec = lai::agent::XmlToolSpec::FromSchema(tool.name, tool.parameters_schema);
    if (spec.ok()) specs.push_back(std::move(*spec));
  }
  return specs;
}

std::string Message() {
  std::string message;
  while (message.size() < 50 * 1024) {
    message += "The <b>parser</b> keeps a < b; see <div class=\"x\">here</div> and <rea later.\n";
  }
  message += "<write_to_file>\n<path>src/generated.cc</path>\n<content>\n";
  while (message.size() < 95 * 1024) {
    message += "  if (a < b && c > d) { out += \"<tag>\"; }  // </other>\n";
  }
  message += "</content>\n<line_count>100</line_count>\n</write_to_file>\n";
  message += "<read_file><args><file><path>a.cc</path><line_range>1-50</line_range></file>"
             "</args></read_file>\n";
  while (message.size() < 100 * 1024) message += "Trailing prose after the calls.\n";
  return message;
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
  if (iterations <= 0) {
    std::fprintf(stderr, "usage: xml_tools_benchmark [iterations > 0]\n");
    return 2;
  }
  constexpr size_t kChunk = 20;
  const std::string message = Message();
  const std::vector<lai::agent::XmlToolSpec> specs = Specs();

  size_t events_seen = 0;
  auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) {
    lai::agent::XmlToolParser parser(specs);
    std::vector<lai::agent::XmlEvent> events;
    for (size_t at = 0; at < message.size(); at += kChunk) {
      if (!parser.Feed(std::string_view(message).substr(at, kChunk), events).ok()) return 1;
    }
    parser.Finish(events);
    events_seen += events.size();
  }
  double parse_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  size_t baseline_hits = 0;
  start = Clock::now();
  for (int i = 0; i < iterations; ++i) {
    std::string copy;
    for (size_t at = 0; at < message.size(); at += kChunk) {
      std::string_view chunk = std::string_view(message).substr(at, kChunk);
      copy.append(chunk);
      baseline_hits += std::memchr(chunk.data(), '<', chunk.size()) != nullptr;
    }
    baseline_hits += copy.size() & 1;
  }
  double baseline_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  const double megabytes = static_cast<double>(message.size()) * iterations / (1024.0 * 1024.0);
  std::printf("message %zu bytes, %zu-byte chunks, %d iterations, %zu events/message\n",
              message.size(), kChunk, iterations, events_seen / iterations);
  std::printf("XmlToolParser            %8.1f MB/s  (%.1f us per message)\n",
              megabytes / parse_seconds, parse_seconds * 1e6 / iterations);
  std::printf("baseline copy+memchr     %8.1f MB/s  (%.1f us per message) [%zu]\n",
              megabytes / baseline_seconds, baseline_seconds * 1e6 / iterations, baseline_hits);
  return 0;
}
