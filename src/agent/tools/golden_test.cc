// Data-driven golden tests for every workspace tool: tests/testdata/tools/<tool>/<case>/ (format
// in tests/testdata/tools/README.md). One parameterised test per case directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "agent/approval_policy.h"
#include "agent/tools/tool.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

const fs::path kToolsDir = fs::path(LAI_TESTDATA_DIR) / "tools";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "dot-gitignore" is checked in for ".gitignore" (a real one would apply to the repository).
std::string CheckedInName(const std::string& name) {
  return name.starts_with("dot-") ? "." + name.substr(4) : name;
}

// Copies `from` into `to`, renaming dot- files.
void CopyTree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  if (!fs::exists(from)) return;
  for (const fs::directory_entry& entry : fs::directory_iterator(from)) {
    fs::path target = to / CheckedInName(entry.path().filename().string());
    if (entry.is_directory()) {
      CopyTree(entry.path(), target);
    } else {
      fs::copy_file(entry.path(), target);
    }
  }
}

// Relative path -> content ("<dir>" for directories) of every entry under `root`.
std::map<std::string, std::string> Snapshot(const fs::path& root, bool rename_dot_files) {
  std::map<std::string, std::string> files;
  if (!fs::exists(root)) return files;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_symlink()) continue;  // Made by case.json "symlinks", not part of the tree.
    std::string relative;
    for (const fs::path& part : fs::relative(it->path(), root)) {
      if (!relative.empty()) relative += '/';
      relative += rename_dot_files ? CheckedInName(part.string()) : part.string();
    }
    files[relative] = it->is_directory() ? "<dir>" : ReadAll(it->path());
  }
  return files;
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class ScriptedHost : public ToolHost {
 public:
  ScriptedHost(bool approve, std::string feedback, bool approve_reads)
      : approve_(approve), approve_reads_(approve_reads), feedback_(std::move(feedback)) {}
  ApprovalReply Ask(const ApprovalRequest& request) override {
    asks_.push_back(std::string(ApprovalKindName(request.kind)) + ":" + request.target);
    if (!details_.empty()) details_ += "\n---\n";
    details_ += ApprovalText(request);
    bool approved = request.kind == ApprovalKind::kRead ? approve_reads_ : approve_;
    return {approved, feedback_};
  }
  const std::vector<std::string>& asks() const { return asks_; }
  const std::string& details() const { return details_; }

 private:
  bool approve_;
  bool approve_reads_;
  std::string feedback_;
  std::vector<std::string> asks_;
  std::string details_;  // What each request showed the user, separated by "\n---\n".
};

// Tools whose cases start processes (ripgrep, the shell): run by the integration binary
// (built with LAI_GOLDEN_PROCESS_TOOLS), the rest by the unit one.
bool StartsProcesses(const std::string& tool) {
  return tool == "search_files" || tool == "execute_command";
}

std::vector<std::string> CaseNames() {
#ifdef LAI_GOLDEN_PROCESS_TOOLS
  constexpr bool kWantProcessTools = true;
#else
  constexpr bool kWantProcessTools = false;
#endif
  std::vector<std::string> names;
  if (!fs::exists(kToolsDir)) return names;
  for (const fs::directory_entry& tool : fs::directory_iterator(kToolsDir)) {
    if (!tool.is_directory()) continue;
    if (StartsProcesses(tool.path().filename().string()) != kWantProcessTools) continue;
    for (const fs::directory_entry& test_case : fs::directory_iterator(tool.path())) {
      if (fs::exists(test_case.path() / "args.json")) {
        names.push_back(tool.path().filename().string() + "/" +
                        test_case.path().filename().string());
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ToolGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lai-tool-golden-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    scratch_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(scratch_, error);
  }
  fs::path scratch_;
};

TEST_P(ToolGoldenTest, MatchesExpected) {
  const std::string& name = GetParam();
  fs::path dir = kToolsDir / name;
  std::string tool_name = name.substr(0, name.find('/'));
  nlohmann::json options = nlohmann::json::object();
  if (fs::exists(dir / "case.json")) options = nlohmann::json::parse(ReadAll(dir / "case.json"));
  if (options.contains("tool")) tool_name = options["tool"].get<std::string>();
  const Tool* tool = FindWorkspaceTool(tool_name);
  if (tool == nullptr) GTEST_SKIP() << "tool " << tool_name << " is not built";

  fs::path before = dir / options.value("tree", std::string("before"));
  fs::path root = scratch_ / "workspace";
  CopyTree(before, root);
  const nlohmann::json symlinks = options.value("symlinks", nlohmann::json::object());
  for (auto it = symlinks.begin(); it != symlinks.end(); ++it) {
    fs::create_symlink(it.value().get<std::string>(), root / it.key());
  }
  Result<std::shared_ptr<const workspace::Workspace>> ws =
      workspace::Workspace::Open(root.string());
  ASSERT_TRUE(ws.ok()) << ws.error().ToString();

  ToolSettings settings;
  nlohmann::json overrides = options.value("settings", nlohmann::json::object());
  settings.read_line_limit = overrides.value("read_line_limit", settings.read_line_limit);
  settings.read_byte_limit = overrides.value("read_byte_limit", settings.read_byte_limit);
  settings.diff_fuzzy_threshold =
      overrides.value("diff_fuzzy_threshold", settings.diff_fuzzy_threshold);
  settings.diff_buffer_lines = overrides.value("diff_buffer_lines", settings.diff_buffer_lines);
  settings.list_files_limit = overrides.value("list_files_limit", settings.list_files_limit);
  settings.search_max_results = overrides.value("search_max_results", settings.search_max_results);
  settings.command_timeout_seconds =
      overrides.value("command_timeout_seconds", settings.command_timeout_seconds);
  settings.command_output_line_limit =
      overrides.value("command_output_line_limit", settings.command_output_line_limit);
  ScriptedHost host(options.value("approve", true), options.value("feedback", std::string()),
                    options.value("approve_reads", true));
  ToolContext context{**ws, settings, host};

  std::string args = ReplaceAll(ReadAll(dir / "args.json"), "{root}", (*ws)->root());
  args = ReplaceAll(args, "{parent}", fs::path((*ws)->root()).parent_path().string());
  ToolResult result = tool->Run(args, context);

  if (std::getenv("LAI_GOLDEN_UPDATE") != nullptr) {
    // Regenerates expected.txt (review the diff before committing it).
    std::string text = ReplaceAll(result.text, (*ws)->root(), "{root}");
    text = ReplaceAll(text, fs::path((*ws)->root()).parent_path().string(), "{parent}");
    std::ofstream(dir / "expected.txt", std::ios::binary)
        << text << (text.ends_with('\n') ? "" : "\n");
  }
  std::string expected = ReplaceAll(ReadAll(dir / "expected.txt"), "{root}", (*ws)->root());
  expected = ReplaceAll(expected, "{parent}", fs::path((*ws)->root()).parent_path().string());
  // A trailing newline in expected.txt is an editor's, not the tool's.
  if (expected.ends_with('\n') && !result.text.ends_with('\n')) expected.pop_back();
  EXPECT_EQ(result.text, expected) << "case " << name;
  EXPECT_EQ(result.is_error, options.value("is_error", false)) << result.text;
  if (options.contains("asks")) {
    std::vector<std::string> asks;
    for (const std::string& ask : options["asks"].get<std::vector<std::string>>()) {
      asks.push_back(ReplaceAll(ReplaceAll(ask, "{root}", (*ws)->root()), "{parent}",
                                fs::path((*ws)->root()).parent_path().string()));
    }
    EXPECT_EQ(host.asks(), asks);
  }
  if (fs::exists(dir / "approval.txt")) {
    std::string shown = ReplaceAll(ReadAll(dir / "approval.txt"), "{root}", (*ws)->root());
    EXPECT_EQ(host.details(), shown) << "approval detail shown to the user";
  }
  fs::path after = fs::exists(dir / "after") ? dir / "after" : before;
  EXPECT_EQ(Snapshot(root, false), Snapshot(after, true)) << "workspace after " << name;
}

INSTANTIATE_TEST_SUITE_P(Tools, ToolGoldenTest, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string id = param_info.param;
                           for (char& c : id) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return id;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ToolGoldenTest);

}  // namespace
}  // namespace lai::agent
