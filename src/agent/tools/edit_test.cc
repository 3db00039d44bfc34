// What the editing tools do around their approval question.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "agent/tools/tool.h"
#include "workspace/test_support.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

// Approves everything, running `during` while the question is open (as the user would act).
class ActingHost : public ToolHost {
 public:
  ApprovalReply Ask(const ApprovalRequest&) override {
    if (during) during();
    return {true, ""};
  }
  std::function<void()> during;
};

std::string Contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class EditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "conc.txt") << "alpha\nbeta\ngamma\n";
    auto ws = workspace::Workspace::Open(tree_.root());
    ASSERT_TRUE(ws.ok()) << ws.error().ToString();
    workspace_ = *ws;
  }
  ToolResult Run(const char* tool, const std::string& args) {
    ToolContext context{*workspace_, settings_, host_, nullptr};
    return FindWorkspaceTool(tool)->Run(args, context);
  }

  workspace::testing::TempTree tree_;
  const fs::path dir_ = tree_.root();
  std::shared_ptr<const workspace::Workspace> workspace_;
  ToolSettings settings_;
  ActingHost host_;
};

// A change made to the file while its edit awaits approval is not overwritten: the edit is
// refused and the model told to redo it on the file as it is now (it was silently undone).
TEST_F(EditTest, AChangeMadeWhileTheQuestionIsOpenIsNotOverwritten) {
  host_.during = [&] { std::ofstream(dir_ / "conc.txt", std::ios::app) << "USER-ADDED\n"; };
  ToolResult result = Run("search_and_replace", R"({"path": "conc.txt", "search": "beta",
                                                    "replace": "BETA"})");
  EXPECT_TRUE(result.is_error);
  EXPECT_NE(result.text.find("'conc.txt' changed after it was read for this edit"),
            std::string::npos)
      << result.text;
  EXPECT_EQ(Contents(dir_ / "conc.txt"), "alpha\nbeta\ngamma\nUSER-ADDED\n");

  // A file created meanwhile is not replaced either.
  host_.during = [&] { std::ofstream(dir_ / "new.txt") << "theirs\n"; };
  result = Run("write_to_file", R"({"path": "new.txt", "content": "ours\n", "line_count": 1})");
  EXPECT_TRUE(result.is_error);
  EXPECT_EQ(Contents(dir_ / "new.txt"), "theirs\n");

  // Without a change, the edit is written.
  host_.during = nullptr;
  result =
      Run("search_and_replace", R"({"path": "conc.txt", "search": "beta", "replace": "BETA"})");
  EXPECT_FALSE(result.is_error) << result.text;
  EXPECT_EQ(Contents(dir_ / "conc.txt"), "alpha\nBETA\ngamma\nUSER-ADDED\n");
}

// In a CRLF file, a search and replacement written with CRLF (or a regex with \r\n) work on
// its lines as they are: the replacement put "\r\r\n" in the file, and the regex never matched.
TEST_F(EditTest, SearchAndReplaceKeepsCrlfLines) {
  std::ofstream(dir_ / "crlf.txt") << "a\r\nb\r\nc\r\n";
  ToolResult result =
      Run("search_and_replace", R"({"path": "crlf.txt", "search": "a\r\nb", "replace": "A\r\nB"})");
  EXPECT_FALSE(result.is_error) << result.text;
  EXPECT_EQ(Contents(dir_ / "crlf.txt"), "A\r\nB\r\nc\r\n");
  result = Run("search_and_replace", R"({"path": "crlf.txt", "search": "B\\r\\nc",
                                         "replace": "b-c", "use_regex": true})");
  EXPECT_FALSE(result.is_error) << result.text;
  EXPECT_EQ(Contents(dir_ / "crlf.txt"), "A\r\nb-c\r\n");
}

// A path ending in '/' names a directory: refused, not written as a file of that name.
TEST_F(EditTest, APathEndingInASlashIsNotAFile) {
  ToolResult result =
      Run("write_to_file", R"({"path": "docs/", "content": "x\n", "line_count": 1})");
  EXPECT_TRUE(result.is_error);
  EXPECT_NE(result.text.find("'docs/' names a directory; give the path of a file in it"),
            std::string::npos)
      << result.text;
  EXPECT_FALSE(fs::exists(dir_ / "docs"));
}

}  // namespace
}  // namespace lai::agent
