#include "workspace/search.h"

#include <gtest/gtest.h>

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

TEST(SearchFilesTest, BlockedGitignoredAndExcludedFilesAreHidden) {
  TempTree tree;
  tree.File(".kilocodeignore", "secrets/\n");
  tree.File(".gitignore", "*.log\n");
  tree.File("secrets/key.txt", "needle\n");
  tree.File("debug.log", "needle\n");
  tree.File("node_modules/pkg/index.js", "needle\n");
  tree.File("visible.txt", "needle\n");
  auto found = Search(tree, ".", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].path, "visible.txt");
}

TEST(SearchFilesTest, LongLinesAreTruncated) {
  TempTree tree;
  tree.File("long.txt", "needle" + std::string(1000, 'x') + "\n");
  auto found = Search(tree, ".", Regex("needle"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->files.size(), 1u);
  EXPECT_EQ(found->files[0].lines[0].text, "needle" + std::string(494, 'x') + " [truncated...]");
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
