#include "workspace/search.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "workspace/test_support.h"

namespace lai::workspace {
namespace {

using testing::TempTree;

Result<SearchResult> Search(const TempTree& tree, const std::string& dir, SearchOptions options) {
  auto workspace = Workspace::Open(tree.root());
  if (!workspace.ok()) return std::move(workspace).error();
  ASSIGN_OR_RETURN(ResolvedPath resolved, (*workspace)->Resolve(dir));
  return SearchFiles(**workspace, resolved, options);
}

SearchOptions Regex(std::string regex) {
  SearchOptions options;
  options.regex = std::move(regex);
  return options;
}

TEST(SearchFilesTest, GroupsByFileWithContext) {
  TempTree tree;
  tree.File("src/a.ts", "one\ntwo TODO\nthree\nfour\nfive\nsix TODO\n");
  tree.File("src/b.ts", "nothing here\n");
  auto found = Search(tree, ".", Regex("TODO"));
  ASSERT_TRUE(found.ok()) << found.error().ToString();
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->match_count, 2u);
  EXPECT_FALSE(found->truncated);
  const SearchFileResult& file = found->files[0];
  EXPECT_EQ(file.path, "src/a.ts");
  ASSERT_EQ(file.lines.size(), 5u);
  EXPECT_EQ(file.lines[0].number, 1);
  EXPECT_FALSE(file.lines[0].is_match);
  EXPECT_EQ(file.lines[1].text, "two TODO");
  EXPECT_TRUE(file.lines[1].is_match);
  EXPECT_EQ(file.lines[2].number, 3);
  EXPECT_EQ(file.lines[3].number, 5);
  EXPECT_EQ(file.lines[4].number, 6);
  EXPECT_TRUE(file.lines[4].is_match);
}

TEST(SearchFilesTest, SubdirectoryResultsAreRelativeToTheRoot) {
  TempTree tree;
  tree.File("src/deep/x.py", "needle\n");
  tree.File("other.py", "needle\n");
  auto found = Search(tree, "src", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].path, "src/deep/x.py");
}

TEST(SearchFilesTest, GlobFiltersFiles) {
  TempTree tree;
  tree.File("a.ts", "needle\n");
  tree.File("b.js", "needle\n");
  SearchOptions options = Regex("needle");
  options.file_glob = "*.ts";
  auto found = Search(tree, ".", options);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].path, "a.ts");
}

TEST(SearchFilesTest, CapsResults) {
  TempTree tree;
  std::string many;
  for (int i = 0; i < 50; ++i) many += "hit\n";
  tree.File("many.txt", many);
  SearchOptions options = Regex("hit");
  options.max_results = 10;
  options.context_lines = 0;
  auto found = Search(tree, ".", options);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->match_count, 10u);
  EXPECT_TRUE(found->truncated);
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].lines.size(), 10u);
}

TEST(SearchFilesTest, BadRegexIsInvalidArgument) {
  TempTree tree;
  tree.File("a.txt", "x\n");
  auto found = Search(tree, ".", Regex("(unclosed"));
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(found.error().message().find("regex"), std::string::npos);
  EXPECT_EQ(Search(tree, ".", Regex("")).status().code(), ErrorCode::kInvalidArgument);
}

// Blocked and git-ignored files are not searched; directories a listing does not enter are
// (a Go project's pkg/, a package's dist/ hold code), unless .gitignore names them.
TEST(SearchFilesTest, BlockedAndGitignoredFilesAreHidden) {
  TempTree tree;
  tree.File(".kilocodeignore", "secrets/\n");
  tree.File(".gitignore", "*.log\nnode_modules/\n");
  tree.File("secrets/key.txt", "needle\n");
  tree.File("debug.log", "needle\n");
  tree.File("node_modules/pkg/index.js", "needle\n");
  tree.File("pkg/server/server.go", "needle\n");
  tree.File("visible.txt", "needle\n");
  auto found = Search(tree, ".", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 2u);
  EXPECT_EQ(found->files[0].path, "pkg/server/server.go");
  EXPECT_EQ(found->files[1].path, "visible.txt");
}

// A folder that holds the workspace (searched with the user's approval): the workspace's
// blocked files stay hidden in it.
TEST(SearchFilesTest, BlockedFilesStayHiddenFromAFolderAboveTheWorkspace) {
  TempTree tree;
  tree.File("ws/.kilocodeignore", "secret/\n*.pem\n");
  tree.File("ws/secret/keys.txt", "needle\n");
  tree.File("ws/k.pem", "needle\n");
  tree.File("ws/ok.txt", "needle\n");
  tree.File("other.txt", "needle\n");
  auto workspace = Workspace::Open(tree.root() + "/ws");
  ASSERT_TRUE(workspace.ok());
  auto above = (*workspace)->Resolve("..", /*allow_outside=*/true);
  ASSERT_TRUE(above.ok() && above->is_outside);
  auto found = SearchFiles(**workspace, *above, Regex("needle"));
  ASSERT_TRUE(found.ok()) << found.error().ToString();
  std::vector<std::string> paths;
  for (const SearchFileResult& file : found->files) paths.push_back(file.path);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{above->absolute + "/other.txt",
                                             above->absolute + "/ws/ok.txt"}));
}

TEST(SearchFilesTest, LongLinesAreTruncated) {
  TempTree tree;
  tree.File("long.txt", "needle" + std::string(1000, 'x') + "\n");
  auto found = Search(tree, ".", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].lines[0].text, "needle" + std::string(494, 'x') + " [truncated...]");
}

// A match past the cut (minified code) is shown with what comes before it; characters are
// never split (the tool cut again at 500 bytes, inside a character).
TEST(SearchFilesTest, AMatchPastTheCutIsShown) {
  TempTree tree;
  std::string e_acute = "\xc3\xa9";
  std::string before;
  for (int i = 0; i < 600; ++i) before += e_acute;
  tree.File("min.js", "a" + before + "ODDMATCH" + std::string(1000, 'y') + "\n");
  auto found = Search(tree, ".", Regex("ODDMATCH"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  const std::string& text = found->files[0].lines[0].text;
  std::string expected = "[...] ";
  for (int i = 0; i < 100; ++i) expected += e_acute;
  expected += "ODDMATCH" + std::string(400 - 8, 'y') + " [truncated...]";
  EXPECT_EQ(text, expected);
}

// ripgrep waited forever on a named pipe it was given.
TEST(SearchFilesTest, APipeIsRefusedNotWaitedOn) {
  TempTree tree;
  ASSERT_EQ(::mkfifo((tree.root() + "/pipe").c_str(), 0600), 0);
  auto found = Search(tree, "pipe", Regex("x"));
  ASSERT_FALSE(found.ok());
  EXPECT_NE(found.error().message().find("not a directory or a regular file"), std::string::npos)
      << found.error().message();
}

// ripgrep's advice names its own flags, which the model cannot pass.
TEST(SearchFilesTest, UnsupportedRegexSaysWhatToDoInstead) {
  TempTree tree;
  tree.File("a.txt", "ab\n");
  auto found = Search(tree, ".", Regex("(?<=a)b"));
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().message().find("--pcre2"), std::string::npos) << found.error().message();
  EXPECT_NE(found.error().message().find("Look-around and backreferences are not supported"),
            std::string::npos)
      << found.error().message();
  found = Search(tree, ".", Regex("a\nb"));
  ASSERT_FALSE(found.ok());
  EXPECT_NE(found.error().message().find("within one line"), std::string::npos)
      << found.error().message();
}

TEST(SearchFilesTest, OddFileNamesAndMissingDirectory) {
  TempTree tree;
  tree.File("sp ace/latin\xe9.txt", "needle\n");
  auto found = Search(tree, ".", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].path, "sp ace/latin\xe9.txt");
  EXPECT_EQ(Search(tree, "missing", Regex("x")).status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace lai::workspace
