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

// Makes the tree a repository with everything in it committed.
bool CommitAll(const TempTree& tree) {
  std::string setup = "cd '" + tree.root() +
                      "' && git init -q && git -c user.name=t -c user.email=t@t add -A && "
                      "git -c user.name=t -c user.email=t@t commit -q -m init";
  return std::system(setup.c_str()) == 0;
}

TEST(MentionsGitTest, WorkingStateOfARepository) {
  TempTree tree;
  tree.File("a.txt", "one\n");
  ASSERT_TRUE(CommitAll(tree));
  EXPECT_EQ(Expand(tree, "@git-changes"),
            "Working directory changes (see below for details)\n\n<git_working_state>\n"
            "No changes in the working directory.\n</git_working_state>");

  tree.File("a.txt", "one\ntwo\n");
  tree.File("new.txt", "new\n");
  std::string out = Expand(tree, "What changed? @git-changes");
  EXPECT_NE(out.find("What changed? Working directory changes (see below for details)\n\n"
                     "<git_working_state>\nWorking directory changes:\n\n M a.txt\n?? new.txt\n\n"
                     "Diff:\ndiff --git a/a.txt b/a.txt\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\n one\n+two\n</git_working_state>"), std::string::npos) << out;
}

// A workspace that is a subdirectory of a repository sees its own changes, named from its root;
// a changed file .kilocodeignore blocks is named but its diff is left out; a long diff is cut.
TEST(MentionsGitTest, TheWorkspacesOwnChangesWithoutBlockedContents) {
  TempTree tree;
  tree.File("outside.txt", "o\n");
  tree.File("ws/.kilocodeignore", "secret.env\n");
  tree.File("ws/secret.env", "KEY=1\n");
  tree.File("ws/it's.txt", "x\n");
  tree.File("ws/zlong.txt", "x\n");
  tree.File("ws/sec*", "glob\n");
  tree.File("ws/say \"hi\"\tnow.txt", "q\n");
  ASSERT_TRUE(CommitAll(tree));
  tree.File("outside.txt", "changed outside\n");
  tree.File("ws/secret.env", "KEY=leaked-value\n");
  std::string long_text;
  for (int i = 0; i < 600; ++i) long_text += "line " + std::to_string(i) + "\n";
  tree.File("ws/it's.txt", "changed\n");
  tree.File("ws/zlong.txt", long_text);  // Last in the diff: the cut leaves the others whole.
  tree.File("ws/sec*", "glob changed\n");
  tree.File("ws/say \"hi\"\tnow.txt", "quoted changed\n");
  Result<std::shared_ptr<const workspace::Workspace>> ws =
      workspace::Workspace::Open(tree.Path("ws"));
  ASSERT_TRUE(ws.ok());
  std::string out = ExpandMentions("@git-changes", **ws, ToolSettings{});
  EXPECT_EQ(out.find("outside"), std::string::npos) << out;
  EXPECT_EQ(out.find("leaked-value"), std::string::npos) << out;
  EXPECT_NE(out.find(" M secret.env\n"), std::string::npos) << out;
  EXPECT_NE(out.find("diff --git a/it's.txt b/it's.txt"), std::string::npos) << out;
  // Names taken literally ('sec*' is no glob for secret.env) and as they are.
  EXPECT_NE(out.find("+glob changed"), std::string::npos) << out;
  EXPECT_NE(out.find("+quoted changed"), std::string::npos) << out;
  EXPECT_NE(out.find("[Diff cut at 500 lines"), std::string::npos) << out;
  EXPECT_NE(out.find("1 changed file(s) left out of the diff"), std::string::npos) << out;
}

TEST(MentionsGitTest, NotARepositoryIsANote) {
  TempTree tree;
  std::string out = Expand(tree, "@git-changes");
  EXPECT_NE(out.find("<git_working_state>\n(Not available: git status failed"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace lai::agent
