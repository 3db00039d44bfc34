// @git-changes runs git in the workspace (child processes): labelled integration.
#include <gtest/gtest.h>

#include <cstdlib>

#include "agent/mentions.h"
#include "workspace/test_support.h"

namespace lai::agent {
namespace {

using workspace::testing::TempTree;

std::string Expand(const TempTree& tree, std::string_view text) {
  Result<std::shared_ptr<const workspace::Workspace>> ws = workspace::Workspace::Open(tree.root());
  EXPECT_TRUE(ws.ok());
  return ExpandMentions(text, **ws, ToolSettings{});
}

TEST(MentionsGitTest, WorkingStateOfARepository) {
  TempTree tree;
  tree.File("a.txt", "one\n");
  std::string setup = "cd '" + tree.root() +
                      "' && git init -q && git -c user.name=t -c user.email=t@t add a.txt && "
                      "git -c user.name=t -c user.email=t@t commit -q -m init";
  ASSERT_EQ(std::system(setup.c_str()), 0);
  EXPECT_EQ(Expand(tree, "@git-changes"),
            "Working directory changes (see below for details)\n\n<git_working_state>\n"
            "No changes in the working directory.\n</git_working_state>");

  tree.File("a.txt", "one\ntwo\n");
  tree.File("new.txt", "new\n");
  std::string out = Expand(tree, "What changed? @git-changes");
  EXPECT_NE(out.find("What changed? Working directory changes (see below for details)\n\n"
                     "<git_working_state>\nWorking directory changes:\n\n M a.txt\n?? new.txt\n\n"
                     "Diff summary:\n a.txt | 1 +\n"),
            std::string::npos)
      << out;
}

TEST(MentionsGitTest, NotARepositoryIsANote) {
  TempTree tree;
  std::string out = Expand(tree, "@git-changes");
  EXPECT_NE(out.find("<git_working_state>\n(Not available: git status failed"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace lai::agent
