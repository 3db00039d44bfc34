#include "workspace/walker.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "workspace/internal/sort.h"
#include "workspace/test_support.h"

namespace lai::workspace {
namespace {

using testing::TempTree;

Result<ListResult> List(const TempTree& tree, const std::string& dir, bool recursive,
                        size_t limit = 200) {
  auto workspace = Workspace::Open(tree.root());
  if (!workspace.ok()) return std::move(workspace).error();
  ASSIGN_OR_RETURN(ResolvedPath resolved, (*workspace)->Resolve(dir));
  return ListFiles(**workspace, resolved, ListOptions{.recursive = recursive, .limit = limit});
}

std::vector<std::string> Entries(const Result<ListResult>& result) {
  EXPECT_TRUE(result.ok()) << result.error().ToString();
  return result.ok() ? result->entries : std::vector<std::string>{};
}

TEST(CompareListedPathsTest, MatchesKiloCodesFormatFilesListOrder) {
  std::vector<std::string> paths = {"src/b/",     "zed.txt",    "src/",       "src/a.ts",
                                    "README.md",  "src/b/c.ts", "file10.txt", "file2.txt",
                                    ".gitignore", "Alpha.md",   "src/B.ts",   "_private/"};
  std::sort(paths.begin(), paths.end(), [](const std::string& a, const std::string& b) {
    return internal::CompareListedPaths(a, b) < 0;
  });
  // Files of a level come before its directories; a directory comes right before its contents;
  // names compare case-insensitively with digit runs by value.
  std::vector<std::string> expected = {".gitignore", "Alpha.md", "file2.txt", "file10.txt",
                                       "README.md",  "zed.txt",  "_private/", "src/",
                                       "src/a.ts",   "src/B.ts", "src/b/",    "src/b/c.ts"};
  EXPECT_EQ(paths, expected);
}

TEST(CompareListedPathsTest, CollationIsCaseInsensitiveAndNumeric) {
  EXPECT_LT(internal::CollateSegments("a", "B"), 0);
  EXPECT_LT(internal::CollateSegments("v9", "v10"), 0);
  EXPECT_EQ(internal::CollateSegments("ABC", "abc"), 0);
  EXPECT_LT(internal::CollateSegments("_x", "1"), 0);
  EXPECT_LT(internal::CollateSegments("1", "a"), 0);
}

TEST(ListFilesTest, NonRecursiveListsOneLevelWithDirectoriesMarked) {
  TempTree tree;
  tree.File("b.txt");
  tree.File("a/inner.txt");
  tree.File(".env.example");
  tree.Dir(".github");
  tree.Dir("node_modules/x");
  tree.Dir(".git");
  // node_modules is shown (it exists; its contents are not listed), .git is not.
  EXPECT_EQ(Entries(List(tree, ".", false)),
            (std::vector<std::string>{".env.example", "b.txt", ".github/", "a/", "node_modules/"}));
}

// A workspace inside a git repository: the repository's .gitignore files above it and
// .git/info/exclude apply, as git (and search_files) apply them.
TEST(ListFilesTest, TheRepositorysIgnoreFilesAboveTheWorkspaceApply) {
  TempTree tree;
  tree.File(".git/info/exclude", "local_excluded.txt\n");
  tree.File(".gitignore", "*.gen\nsub/ws/build_out/\n");
  tree.File("sub/.gitignore", "from_sub.txt\n");
  tree.File("sub/ws/keep.c");
  tree.File("sub/ws/a.gen");
  tree.File("sub/ws/local_excluded.txt");
  tree.File("sub/ws/from_sub.txt");
  tree.File("sub/ws/build_out/x.txt");
  tree.File("sub/ws/src/deeper.gen");
  // The workspace's own .gitignore applies as well (it was read as the parent's).
  tree.File("sub/ws/.gitignore", "own_ignored.txt\n");
  tree.File("sub/ws/own_ignored.txt");
  auto workspace = Workspace::Open(tree.root() + "/sub/ws");
  ASSERT_TRUE(workspace.ok());
  for (const char* listed : {".", "src"}) {
    Result<ResolvedPath> resolved = (*workspace)->Resolve(listed);
    ASSERT_TRUE(resolved.ok());
    Result<ListResult> result =
        ListFiles(**workspace, *resolved, ListOptions{.recursive = true, .limit = 200});
    std::vector<std::string> expected;
    if (std::string_view(listed) == ".") expected = {".gitignore", "keep.c", "src/"};
    EXPECT_EQ(Entries(result), expected) << listed;
  }
}

// A worktree's .git is a file naming its git directory, whose commondir holds info/exclude.
TEST(ListFilesTest, AWorktreeUsesItsRepositorysExcludes) {
  TempTree tree;
  tree.File("repo/.git/info/exclude", "secret_excluded.txt\n");
  tree.File("repo/.git/worktrees/wt/commondir", "../..\n");
  tree.File("wt/.git", "gitdir: " + tree.root() + "/repo/.git/worktrees/wt\n");
  tree.File("wt/secret_excluded.txt");
  tree.File("wt/keep.txt");
  auto workspace = Workspace::Open(tree.root() + "/wt");
  ASSERT_TRUE(workspace.ok());
  Result<ResolvedPath> resolved = (*workspace)->Resolve(".");
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(Entries(ListFiles(**workspace, *resolved, ListOptions{.recursive = true})),
            std::vector<std::string>{"keep.txt"});
}

// A directory of many files still shows its subdirectories within the limit (they were cut,
// and the notice told the model to list subdirectories it had not been shown).
TEST(ListFilesTest, DirectoriesAreKeptWhenALimitCutsTheListing) {
  TempTree tree;
  for (int i = 0; i < 30; ++i) tree.File("file" + std::to_string(i) + ".c");
  tree.File("asrc/a.c");
  tree.File("zsrc/z.c");
  Result<ListResult> listed = List(tree, ".", true, 10);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->truncated);
  ASSERT_EQ(listed->entries.size(), 10u);
  const std::vector<std::string>& entries = listed->entries;
  EXPECT_NE(std::find(entries.begin(), entries.end(), "asrc/"), entries.end());
  EXPECT_NE(std::find(entries.begin(), entries.end(), "zsrc/"), entries.end());
}

TEST(ListFilesTest, RecursiveSkipsDefaultExcludesAndHiddenDirectoryContents) {
  TempTree tree;
  tree.File("src/main.ts");
  tree.File("node_modules/lib/index.js");
  tree.File("src/node_modules/lib/index.js");
  tree.File("dist/bundle.js");
  tree.File("__pycache__/a.pyc");
  tree.File(".git/HEAD");
  tree.File(".github/workflows/ci.yml");
  tree.File(".hidden-file");
  // Excluded and hidden directories are shown, their contents not; version control's are not.
  EXPECT_EQ(
      Entries(List(tree, ".", true)),
      (std::vector<std::string>{".hidden-file", "__pycache__/", ".github/", "dist/",
                                "node_modules/", "src/", "src/main.ts", "src/node_modules/"}));
  // Listing a hidden or excluded directory itself shows its contents.
  EXPECT_EQ(Entries(List(tree, ".github", true)),
            (std::vector<std::string>{"workflows/", "workflows/ci.yml"}));
  EXPECT_EQ(Entries(List(tree, "node_modules", true)),
            (std::vector<std::string>{"lib/", "lib/index.js"}));
  EXPECT_TRUE(IsDefaultExcludedDirectory("node_modules"));
  EXPECT_TRUE(IsDefaultExcludedDirectory(".venv"));
  EXPECT_FALSE(IsDefaultExcludedDirectory("src"));
}

TEST(ListFilesTest, LimitKeepsTheShallowestEntries) {
  TempTree tree;
  for (int i = 0; i < 5; ++i) tree.File("top" + std::to_string(i) + ".txt");
  for (int i = 0; i < 5; ++i) tree.File("deep/level/f" + std::to_string(i) + ".txt");
  auto limited = List(tree, ".", true, 7);
  ASSERT_TRUE(limited.ok());
  EXPECT_TRUE(limited->truncated);
  EXPECT_EQ(limited->entries,
            (std::vector<std::string>{"top0.txt", "top1.txt", "top2.txt", "top3.txt", "top4.txt",
                                      "deep/", "deep/level/"}));
  auto exact = List(tree, ".", true, 12);
  ASSERT_TRUE(exact.ok());
  EXPECT_FALSE(exact->truncated);
  EXPECT_EQ(exact->entries.size(), 12u);
  auto flat = List(tree, ".", false, 3);
  ASSERT_TRUE(flat.ok());
  EXPECT_TRUE(flat->truncated);
  EXPECT_EQ(flat->entries.size(), 3u);
  EXPECT_TRUE(List(tree, ".", true, 0)->entries.empty());
}

TEST(ListFilesTest, SubdirectoryHonoursRootGitignoreAndBlockingRules) {
  TempTree tree;
  tree.File(".gitignore", "*.tmp\n/src/gen/\n");
  tree.File(".kilocodeignore", "src/secret.txt\n");
  tree.File("src/a.ts");
  tree.File("src/b.tmp");
  tree.File("src/gen/x.ts");
  tree.File("src/secret.txt");
  EXPECT_EQ(Entries(List(tree, "src", true)), (std::vector<std::string>{"a.ts"}));
  EXPECT_EQ(Entries(List(tree, ".", false)),
            (std::vector<std::string>{".gitignore", "src/"}));  // .kilocodeignore is blocked.
  // With include_blocked they are listed for the caller to mark.
  auto workspace = Workspace::Open(tree.root());
  ASSERT_TRUE(workspace.ok());
  auto listed = ListFiles(**workspace, *(*workspace)->Resolve("src"),
                          ListOptions{.recursive = true, .include_blocked = true});
  EXPECT_EQ(Entries(listed), (std::vector<std::string>{"a.ts", "secret.txt"}));
}

// A listed folder that holds the workspace (with the user's approval): the workspace's blocked
// entries are left out of it too, and a blocked directory is not entered.
TEST(ListFilesTest, BlockedEntriesStayHiddenFromAFolderAboveTheWorkspace) {
  TempTree tree;
  tree.File("ws/.kilocodeignore", "secret/\n*.pem\n");
  tree.File("ws/secret/keys.txt");
  tree.File("ws/k.pem");
  tree.File("ws/ok.txt");
  tree.File("other.txt");
  auto workspace = Workspace::Open(tree.root() + "/ws");
  ASSERT_TRUE(workspace.ok());
  auto above = (*workspace)->Resolve("..", /*allow_outside=*/true);
  ASSERT_TRUE(above.ok() && above->is_outside);
  auto listed = ListFiles(**workspace, *above, ListOptions{.recursive = true});
  EXPECT_EQ(Entries(listed), (std::vector<std::string>{"other.txt", "ws/", "ws/ok.txt"}));
}

TEST(ListFilesTest, NeverReadsContentsFifosAndUnreadableEntriesAreHarmless) {
  TempTree tree;
  ASSERT_EQ(::mkfifo(tree.Path("pipe").c_str(), 0600), 0);
  tree.File("locked.txt");
  ASSERT_EQ(::chmod(tree.Path("locked.txt").c_str(), 0), 0);
  tree.File("closed/inside.txt");
  ASSERT_EQ(::chmod(tree.Path("closed").c_str(), 0), 0);
  tree.File("ok.txt");
  auto entries = Entries(List(tree, ".", true));
  EXPECT_NE(std::find(entries.begin(), entries.end(), "pipe"), entries.end());
  EXPECT_NE(std::find(entries.begin(), entries.end(), "locked.txt"), entries.end());
  EXPECT_NE(std::find(entries.begin(), entries.end(), "closed/"), entries.end());
  EXPECT_NE(std::find(entries.begin(), entries.end(), "ok.txt"), entries.end());
}

TEST(ListFilesTest, SymlinkLoopsDoNotHang) {
  TempTree tree;
  tree.File("a/file.txt");
  tree.Symlink("..", "a/up");
  tree.Symlink(tree.root(), "a/root");
  tree.Symlink("missing", "broken");
  auto entries = Entries(List(tree, ".", true, 1000));
  EXPECT_EQ(entries, (std::vector<std::string>{"broken", "a/", "a/file.txt", "a/root/", "a/up/"}));
}

TEST(ListFilesTest, OutputIsInFormatFilesListOrder) {
  TempTree tree;
  for (const char* path : {"b/Z.txt", "b/a10.txt", "b/a9.txt", "B2/x", "a.txt", "_u/y", "c/d/e/f",
                           "c/d/g", "c/A", ".h/i", "c/d/e/.j", "Readme", "readme2"}) {
    tree.File(path);
  }
  auto entries = Entries(List(tree, ".", true, 1000));
  EXPECT_EQ(entries.size(), 19u);  // 12 files, 7 directories (.h/ is not entered).
  EXPECT_TRUE(std::is_sorted(entries.begin(), entries.end(),
                             [](const std::string& a, const std::string& b) {
                               return internal::CompareListedPaths(a, b) < 0;
                             }));
  EXPECT_EQ(entries.front(), "a.txt");
}

TEST(ListFilesTest, OddFileNames) {
  TempTree tree;
  tree.File("with space.txt");
  tree.File("new\nline.txt");
  tree.File("latin\xe9.txt");
  tree.File("-dash.txt");
  auto entries = Entries(List(tree, ".", true));
  EXPECT_EQ(entries.size(), 4u);
  EXPECT_NE(std::find(entries.begin(), entries.end(), "new\nline.txt"), entries.end());
  EXPECT_NE(std::find(entries.begin(), entries.end(), "latin\xe9.txt"), entries.end());
}

TEST(ListFilesTest, Errors) {
  TempTree tree;
  tree.File("file.txt");
  EXPECT_EQ(List(tree, "missing", true).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(List(tree, "file.txt", true).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace lai::workspace
