// Every SSE and NDJSON golden transcript under tests/testdata/providers decodes to the same events
// whether it arrives whole, split in two at any byte, or one byte at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "http/sse.h"
#include "testing/fake_provider_server.h"

namespace lai::http {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> files;
  for (const fs::directory_entry& dir : fs::directory_iterator(testing::ProvidersTestdataDir())) {
    if (!dir.is_directory()) continue;
    for (const fs::directory_entry& file : fs::directory_iterator(dir.path())) {
      std::string ext = file.path().extension().string();
      if (ext == ".sse" || ext == ".ndjson") files.push_back(file.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

// Events as "event\x1f" "data\x1f" "id" strings, plus whether the stream ended cleanly.
std::vector<std::string> Decode(const std::string& path, std::string_view body,
                                const std::vector<size_t>& cuts) {
  std::vector<std::string> out;
  auto feed = [&](auto& decoder, auto&& sink) {
    size_t at = 0;
    for (size_t cut : cuts) {
      decoder.Feed(body.substr(at, cut - at), sink);
      at = cut;
    }
    decoder.Feed(body.substr(at), sink);
  };
  if (path.ends_with(".sse")) {
    SseDecoder decoder;
    feed(decoder, [&](const SseEvent& e) {
      out.push_back(std::string(e.event) + "\x1f" + std::string(e.data) + "\x1f" +
                    std::string(e.id));
    });
    out.push_back(decoder.status().ok() ? "ok" : "error");
  } else {
    NdjsonDecoder decoder;
    auto sink = [&](std::string_view line) { out.emplace_back(line); };
    feed(decoder, sink);
    decoder.Finish(sink);
    out.push_back(decoder.status().ok() ? "ok" : "error");
  }
  return out;
}

class GoldenSplitTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenSplitTest, SameEventsAtEverySplit) {
  const std::string body = ReadAll(GetParam());
  const std::vector<std::string> whole = Decode(GetParam(), body, {});
  ASSERT_GT(whole.size(), 1u) << "no events in " << GetParam();
  EXPECT_EQ(whole.back(), "ok");
  for (size_t split = 1; split < body.size(); ++split) {
    ASSERT_EQ(Decode(GetParam(), body, {split}), whole) << "split at byte " << split;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < body.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(Decode(GetParam(), body, every_byte), whole) << "one byte at a time";
}

INSTANTIATE_TEST_SUITE_P(Providers, GoldenSplitTest, ::testing::ValuesIn(GoldenFiles()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           fs::path p(param_info.param);
                           std::string name = p.parent_path().filename().string() + "_" +
                                              p.stem().string() + "_" +
                                              p.extension().string().substr(1);
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace lai::http
