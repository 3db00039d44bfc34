#include "workspace/ignore.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "workspace/test_support.h"
#include "workspace/walker.h"
#include "workspace/workspace.h"

namespace lai::workspace {
namespace {

TEST(GlobMatchTest, StarAndQuestionMarkStayInsideOneSegment) {
  EXPECT_TRUE(GlobMatch("*.log", "debug.log"));
  EXPECT_TRUE(GlobMatch("*.log", ".log"));
  EXPECT_FALSE(GlobMatch("*.log", "a/debug.log"));
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_FALSE(GlobMatch("a?c", "a/c"));
  EXPECT_TRUE(GlobMatch("a*", "a"));
  EXPECT_FALSE(GlobMatch("a*", "a/b"));
}

TEST(GlobMatchTest, BracketClasses) {
  EXPECT_TRUE(GlobMatch("file[0-9].txt", "file7.txt"));
  EXPECT_FALSE(GlobMatch("file[0-9].txt", "fileA.txt"));
  EXPECT_TRUE(GlobMatch("file[!0-9].txt", "fileA.txt"));
  EXPECT_TRUE(GlobMatch("file[^0-9].txt", "fileA.txt"));
  EXPECT_TRUE(GlobMatch("[]x]", "]"));
  EXPECT_TRUE(GlobMatch("a[", "a["));  // An unclosed class is literal.
  EXPECT_FALSE(GlobMatch("a[/]b", "a/b"));
}

TEST(GlobMatchTest, DoubleStar) {
  EXPECT_TRUE(GlobMatch("**/foo", "foo"));
  EXPECT_TRUE(GlobMatch("**/foo", "a/b/foo"));
  EXPECT_TRUE(GlobMatch("abc/**", "abc/x"));
  EXPECT_TRUE(GlobMatch("abc/**", "abc/x/y"));
  EXPECT_FALSE(GlobMatch("abc/**", "abc"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/b"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/x/y/b"));
  EXPECT_FALSE(GlobMatch("a/**/b", "a/x/y/c"));
  EXPECT_TRUE(GlobMatch("a**b", "axxb"));  // Not a whole segment: acts as '*'.
  EXPECT_FALSE(GlobMatch("a**b", "a/b"));
}

TEST(GlobMatchTest, EscapesAreLiteral) {
  EXPECT_TRUE(GlobMatch("\\*", "*"));
  EXPECT_FALSE(GlobMatch("\\*", "a"));
  EXPECT_TRUE(GlobMatch("a\\?", "a?"));
}

TEST(IgnoreRulesTest, CommentsBlankLinesAndEscapes) {
  IgnoreRules rules;
  rules.AddPatterns("# comment\n\n\\#hash\n\\!bang\ntrail   \nspace\\ \r\n");
  EXPECT_FALSE(rules.IsIgnored("# comment", false));
  EXPECT_TRUE(rules.IsIgnored("#hash", false));
  EXPECT_TRUE(rules.IsIgnored("!bang", false));
  EXPECT_TRUE(rules.IsIgnored("trail", false));
  EXPECT_TRUE(rules.IsIgnored("space ", false));
  EXPECT_FALSE(rules.IsIgnored("space", false));
}

TEST(IgnoreRulesTest, LastMatchingRuleWins) {
  IgnoreRules rules;
  rules.AddPatterns("*.log\n!keep.log\n");
  EXPECT_TRUE(rules.IsIgnored("a.log", false));
  EXPECT_FALSE(rules.IsIgnored("keep.log", false));
  EXPECT_FALSE(rules.IsIgnored("sub/keep.log", false));
  IgnoreRules reversed;
  reversed.AddPatterns("!keep.log\n*.log\n");
  EXPECT_TRUE(reversed.IsIgnored("keep.log", false));
}

TEST(IgnoreRulesTest, DirectoryOnlyAndAnchoring) {
  IgnoreRules rules;
  rules.AddPatterns("build/\n/top.txt\ndoc/*.md\n");
  EXPECT_TRUE(rules.IsIgnored("build", true));
  EXPECT_FALSE(rules.IsIgnored("build", false));  // A file named build stays.
  EXPECT_TRUE(rules.IsIgnored("a/build", true));
  EXPECT_TRUE(rules.IsIgnored("a/build/x.c", false));  // Via its parent directory.
  EXPECT_TRUE(rules.IsIgnored("top.txt", false));
  EXPECT_FALSE(rules.IsIgnored("a/top.txt", false));
  EXPECT_TRUE(rules.IsIgnored("doc/a.md", false));
  EXPECT_FALSE(rules.IsIgnored("x/doc/a.md", false));  // A middle '/' anchors too.
  EXPECT_FALSE(rules.IsIgnored("doc/sub/a.md", false));
}

TEST(IgnoreRulesTest, NoReincludeBelowAnExcludedDirectory) {
  IgnoreRules rules;
  rules.AddPatterns("logs/\n!logs/important.txt\n");
  EXPECT_TRUE(rules.IsIgnored("logs/important.txt", false));
  IgnoreRules contents;
  contents.AddPatterns("logs/*\n!logs/important.txt\n");
  EXPECT_FALSE(contents.IsIgnored("logs/important.txt", false));
  EXPECT_TRUE(contents.IsIgnored("logs/other.txt", false));
}

TEST(IgnoreRulesTest, BaseDirectoryScopesRules) {
  IgnoreRules rules;
  rules.AddPatterns("*.tmp\n/local\n", "sub");
  EXPECT_TRUE(rules.IsIgnored("sub/a.tmp", false));
  EXPECT_TRUE(rules.IsIgnored("sub/deep/a.tmp", false));
  EXPECT_FALSE(rules.IsIgnored("a.tmp", false));
  EXPECT_TRUE(rules.IsIgnored("sub/local", false));
  EXPECT_FALSE(rules.IsIgnored("sub/deep/local", false));
}

// Builds a real tree with nested .gitignore files and compares the recursive listing with
// tests/testdata/tools/ignore/nested.expected.
TEST(IgnoreTreeTest, NestedGitignoreGolden) {
  testing::TempTree tree;
  tree.File(".gitignore", "*.log\n!important.log\nbuild-output/\n/root-only.txt\n**/cache/**\n");
  tree.File("a.log");
  tree.File("important.log");
  tree.File("root-only.txt");
  tree.File("keep.txt");
  tree.File("build-output/x.o");
  tree.File("src/root-only.txt");
  tree.File("src/main.c");
  tree.File("src/cache/blob");
  tree.File("src/.gitignore", "generated/\n!debug.log\n*.c\n!main.c\n");
  tree.File("src/debug.log");
  tree.File("src/util.c");
  tree.File("src/generated/out.c");
  tree.File("src/lib/deep.log");
  tree.File("src/lib/ok.h");
  tree.File("docs/guide/intro.md");
  tree.File("docs/.gitignore", "/guide/*\n!/guide/intro.md\n");
  tree.File("docs/guide/draft.md");
  auto workspace = Workspace::Open(tree.root());
  ASSERT_TRUE(workspace.ok()) << workspace.error().ToString();
  auto root = (*workspace)->Resolve(".");
  ASSERT_TRUE(root.ok());
  auto listed = ListFiles(**workspace, *root, ListOptions{.recursive = true, .limit = 1000});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  std::string actual;
  for (const std::string& entry : listed->entries) actual += entry + "\n";
  std::string expected =
      testing::ReadAll(std::string(LAI_TESTDATA_DIR) + "/tools/ignore/nested.expected");
  EXPECT_EQ(actual, expected);
  EXPECT_FALSE(listed->truncated);
}

}  // namespace
}  // namespace lai::workspace
