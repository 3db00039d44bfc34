// Rules: every source present, in the documented order; filtering; legacy fallbacks.
#include "agent/rules.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "workspace/test_support.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

using workspace::testing::TempTree;

// The rules of the workspace at `tree`'s root.
std::string LoadRules(const TempTree& tree, std::string_view mode, std::string_view global) {
  Result<std::shared_ptr<const workspace::Workspace>> opened =
      workspace::Workspace::Open(tree.root());
  EXPECT_TRUE(opened.ok()) << opened.error().ToString();
  return agent::LoadRules(opened.ok() ? opened->get() : nullptr, mode, global);
}

// Positions of `needles` in `text`, asserting each is present and they appear in this order.
void ExpectInOrder(const std::string& text, const std::vector<std::string>& needles) {
  size_t previous = 0;
  for (const std::string& needle : needles) {
    size_t at = text.find(needle);
    ASSERT_NE(at, std::string::npos) << "missing: " << needle << "\nin:\n" << text;
    EXPECT_GE(at, previous) << needle << " is out of order in:\n" << text;
    previous = at;
  }
}

TEST(RulesTest, EverySourceInDocumentedOrder) {
  TempTree home;
  home.File("rules/b.md", "global b\n");
  home.File("rules/A.md", "global a\n");
  home.File("rules-code/mode.md", "global code mode\n");
  home.File("rules-ask/mode.md", "global ask mode\n");
  TempTree tree;
  tree.File(".kilocode/rules/02-style.md", "project style\n");
  tree.File(".kilocode/rules/01-intro.md", "  project intro  \n\n");
  tree.File(".kilocode/rules/nested/deep.txt", "nested rule\n");
  tree.File(".kilocode/rules-code/code.md", "project code mode\n");
  tree.File(".kilocoderules", "legacy generic (directory wins)\n");
  tree.File(".kilocoderules-code", "legacy code (directory wins)\n");
  tree.File(".kilocodeignore", "secrets/\n");
  tree.File("AGENTS.md", "agents file\n");
  tree.File("AGENT.md", "agent file (AGENTS.md wins)\n");

  std::string rules = LoadRules(tree, "code", home.Path("rules/"));
  ExpectInOrder(rules,
                {
                    "# Rules from " + home.Path("rules") + "/A.md:\nglobal a",
                    "# Rules from " + home.Path("rules") + "/b.md:\nglobal b",
                    "# Rules from " + home.Path("rules-code") + "/mode.md:\nglobal code mode",
                    "# Rules from .kilocode/rules/01-intro.md:\nproject intro\n\n",
                    "# Rules from .kilocode/rules/02-style.md:\nproject style",
                    "# Rules from .kilocode/rules/nested/deep.txt:\nnested rule",
                    "# Rules from .kilocode/rules-code/code.md:\nproject code mode",
                    "# .kilocodeignore\n",
                    "secrets/\n.kilocodeignore",
                    "# Rules from AGENTS.md:\nagents file",
                });
  EXPECT_EQ(rules.find("global ask mode"), std::string::npos);
  EXPECT_EQ(rules.find("directory wins"), std::string::npos);
  EXPECT_EQ(rules.find("AGENTS.md wins"), std::string::npos);
  EXPECT_FALSE(rules.ends_with("\n"));
}

TEST(RulesTest, LegacyFilesWhenDirectoriesAreAbsent) {
  TempTree tree;
  tree.File(".roorules", "roo generic\n");
  tree.File(".clinerules", "cline generic (roorules wins)\n");
  tree.File(".clinerules-debug", "cline debug\n");
  tree.File("AGENT.md", "agent file\n");
  std::string rules = LoadRules(tree, "debug", "");
  EXPECT_EQ(rules,
            "# Rules from .roorules:\nroo generic\n\n"
            "# Rules from .clinerules-debug:\ncline debug\n\n"
            "# Rules from AGENT.md:\nagent file");
}

TEST(RulesTest, SkipsBinaryNoiseEmptyAndHugeFiles) {
  TempTree tree;
  tree.File(".kilocode/rules/keep.md", "keep me\n");
  tree.File(".kilocode/rules/image.png", std::string("\x89PNG\r\n\x1a\n\0\0\0", 11));
  tree.File(".kilocode/rules/.DS_Store", "junk\n");
  tree.File(".kilocode/rules/notes.md~", "backup\n");
  tree.File(".kilocode/rules/build.log", "log\n");
  tree.File(".kilocode/rules/empty.md", "  \n");
  tree.File(".kilocode/rules/huge.md", std::string(300 * 1024, 'x'));
  EXPECT_EQ(LoadRules(tree, "code", ""), "# Rules from .kilocode/rules/keep.md:\nkeep me");
}

TEST(RulesTest, SortsCaseInsensitively) {
  TempTree tree;
  tree.File(".kilocode/rules/b.md", "b\n");
  tree.File(".kilocode/rules/C.md", "c\n");
  tree.File(".kilocode/rules/a.md", "a\n");
  EXPECT_EQ(LoadRules(tree, "", ""),
            "# Rules from .kilocode/rules/a.md:\na\n\n# Rules from .kilocode/rules/b.md:\nb\n\n"
            "# Rules from .kilocode/rules/C.md:\nc");
}

// Linked rules are followed, but a link back up the tree (to .kilocode/) pulls in neither another
// mode's rules nor the same file twice.
TEST(RulesTest, SymlinksAreFollowedButNotBackIntoTheirOwnTree) {
  TempTree tree;
  tree.File(".kilocode/rules/a.md", "rule a\n");
  tree.File(".kilocode/rules-ask/x.md", "ask only\n");
  tree.File("shared/team.md", "team rule\n");
  ASSERT_EQ(::symlink("..", tree.Path(".kilocode/rules/loop").c_str()), 0);
  ASSERT_EQ(::symlink(".", tree.Path(".kilocode/rules/self").c_str()), 0);
  ASSERT_EQ(::symlink(tree.Path("shared").c_str(), tree.Path(".kilocode/rules/team").c_str()), 0);
  ASSERT_EQ(::symlink("a.md", tree.Path(".kilocode/rules/again.md").c_str()), 0);
  std::string rules = LoadRules(tree, "code", "");
  EXPECT_EQ(rules,
            "# Rules from .kilocode/rules/a.md:\nrule a\n\n"
            "# Rules from .kilocode/rules/team/team.md:\nteam rule");
}

// A cloned repository's rules must not carry what no tool may read into the prompt: a link to a
// file outside the workspace (a key), or to one .kilocodeignore blocks, directly or through a
// linked directory, is left out; so is a legacy rule file or AGENTS.md that is such a link.
TEST(RulesTest, LinksOutOfTheWorkspaceOrToBlockedFilesAreLeftOut) {
  TempTree outside;
  outside.File("id_rsa", "PRIVATE KEY\n");
  outside.File("dir/more.md", "outside dir\n");
  TempTree tree;
  tree.File(".kilocodeignore", "secrets/\n.env\n");
  tree.File(".env", "IGNORED SECRET\n");
  tree.File("secrets/s.md", "ignored dir\n");
  tree.File(".kilocode/rules/ok.md", "kept\n");
  tree.Symlink(outside.Path("id_rsa"), ".kilocode/rules/style.md");
  tree.Symlink(outside.Path("dir"), ".kilocode/rules/ext");
  tree.Symlink("../../secrets", ".kilocode/rules/sec");
  tree.Symlink("../../.env", ".kilocode/rules/env.md");
  tree.Symlink(".env", "AGENTS.md");
  tree.Symlink(outside.Path("id_rsa"), ".kilocoderules-code");
  std::string rules = LoadRules(tree, "code", "");
  EXPECT_EQ(rules.find("PRIVATE KEY"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("outside dir"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("IGNORED SECRET"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("ignored dir"), std::string::npos) << rules;
  EXPECT_NE(rules.find("# Rules from .kilocode/rules/ok.md:\nkept"), std::string::npos) << rules;
  // A rule file the ignore file matches by itself (not through a link) is still a rule.
  TempTree plain;
  plain.File(".kilocodeignore", "*.md\n");
  plain.File("AGENTS.md", "agents rule\n");
  plain.File(".kilocode/rules/style.md", "style rule\n");
  std::string plain_rules = LoadRules(plain, "code", "");
  EXPECT_NE(plain_rules.find("agents rule"), std::string::npos) << plain_rules;
  EXPECT_NE(plain_rules.find("style rule"), std::string::npos) << plain_rules;
  // The user's own global rules may be linked from anywhere.
  TempTree home;
  home.Dir("rules");
  home.Symlink(outside.Path("dir/more.md"), "rules/shared.md");
  EXPECT_NE(LoadRules(tree, "code", home.Path("rules")).find("outside dir"), std::string::npos);
}

// AGENT.md stands in for a missing AGENTS.md, not for one left out (a stale AGENT.md took the
// place of an AGENTS.md linking out of the workspace); an empty .kilocode/rules/ does not hide
// the rules of .roo/rules/.
TEST(RulesTest, FallbacksAreForWhatIsMissing) {
  TempTree outside;
  outside.File("AGENTS.md", "outside agents\n");
  TempTree tree;
  tree.Symlink(outside.Path("AGENTS.md"), "AGENTS.md");
  tree.File("AGENT.md", "stale agent file\n");
  tree.Dir(".kilocode/rules");
  tree.File(".roo/rules/r.md", "roo rule\n");
  tree.File(".kilocoderules", "legacy rule\n");
  std::string rules = LoadRules(tree, "code", "");
  EXPECT_EQ(rules, "# Rules from .roo/rules/r.md:\nroo rule") << rules;
}

TEST(RulesTest, NothingGivesEmptyText) {
  TempTree tree;
  EXPECT_EQ(LoadRules(tree, "code", tree.Path("no-such-dir")), "");
}

}  // namespace
}  // namespace lai::agent
