#include "workspace/unified_diff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace lai::workspace {
namespace {

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    end = end == std::string_view::npos ? text.size() : end + 1;
    lines.emplace_back(text.substr(begin, end - begin));
    begin = end;
  }
  return lines;
}

// Applies a unified diff produced by UnifiedDiff to `before` (strict: context must match).
std::string Patch(std::string_view before, std::string_view diff) {
  std::vector<std::string> a = Lines(before);
  std::vector<std::string> d = Lines(diff);
  std::string out;
  size_t next = 0;  // Next line of a not yet copied.
  size_t i = 2;     // Skip the two header lines.
  while (i < d.size()) {
    const std::string& header = d[i++];
    EXPECT_EQ(header.rfind("@@ -", 0), 0u) << header;
    int old_start = 0, old_count = 0;
    EXPECT_EQ(sscanf(header.c_str(), "@@ -%d,%d", &old_start, &old_count), 2);
    size_t first = old_count == 0 ? static_cast<size_t>(old_start) : old_start - 1;
    for (; next < first; ++next) out += a[next];
    while (i < d.size() && d[i].rfind("@@", 0) != 0) {
      std::string line = d[i++];
      bool no_newline = i < d.size() && d[i] == "\\ No newline at end of file\n";
      if (no_newline) ++i;
      std::string body = line.substr(1);
      if (no_newline) body.pop_back();
      if (line[0] == ' ' || line[0] == '-') {
        EXPECT_LT(next, a.size());
        if (next < a.size()) {
          EXPECT_EQ(a[next], body);
        }
        ++next;
      }
      if (line[0] == ' ' || line[0] == '+') out += body;
    }
  }
  for (; next < a.size(); ++next) out += a[next];
  return out;
}

TEST(UnifiedDiffTest, EqualTextsGiveNothing) { EXPECT_EQ(UnifiedDiff("f", "a\n", "a\n"), ""); }

TEST(UnifiedDiffTest, OneChangeWithThreeLinesOfContext) {
  const std::string before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
  const std::string after = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
  EXPECT_EQ(UnifiedDiff("src/x.txt", before, after),
            "--- a/src/x.txt\n+++ b/src/x.txt\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n"
            " 8\n");
}

TEST(UnifiedDiffTest, DistantChangesMakeTwoHunks) {
  std::string before;
  for (int i = 1; i <= 20; ++i) before += std::to_string(i) + "\n";
  std::string after = before;
  after.replace(after.find("2\n"), 2, "two\n");
  after.replace(after.find("18\n"), 3, "eighteen\n");
  const std::string diff = UnifiedDiff("f", before, after);
  EXPECT_EQ(diff,
            "--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
            "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n");
}

TEST(UnifiedDiffTest, MissingFinalNewlineIsMarked) {
  EXPECT_EQ(UnifiedDiff("f", "a\nb", "a\nc"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n"
            "\\ No newline at end of file\n");
  EXPECT_EQ(UnifiedDiff("f", "a", "a\n"),
            "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n-a\n\\ No newline at end of file\n+a\n");
}

TEST(UnifiedDiffTest, InsertIntoEmptyAndDeleteAll) {
  EXPECT_EQ(UnifiedDiff("f", "", "x\n"), "--- a/f\n+++ b/f\n@@ -0,0 +1,1 @@\n+x\n");
  EXPECT_EQ(UnifiedDiff("f", "x\ny\n", ""), "--- a/f\n+++ b/f\n@@ -1,2 +0,0 @@\n-x\n-y\n");
}

TEST(UnifiedDiffTest, RandomEditsRoundTrip) {
  std::mt19937 rng(99);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> lines;
    const int count = static_cast<int>(rng() % 40);
    for (int i = 0; i < count; ++i) lines.push_back(std::string(1, char('a' + rng() % 5)) + "\n");
    std::vector<std::string> edited = lines;
    const int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t at = edited.empty() ? 0 : rng() % (edited.size() + 1);
      if (rng() % 2 == 0 || edited.empty()) {
        edited.insert(edited.begin() + static_cast<long>(at),
                      std::string(1, char('f' + rng() % 3)) + "\n");
      } else {
        edited.erase(edited.begin() + static_cast<long>(std::min(at, edited.size() - 1)));
      }
    }
    std::string before, after;
    for (auto& l : lines) before += l;
    for (auto& l : edited) after += l;
    if (rng() % 4 == 0 && !after.empty()) after.pop_back();  // Drop the final newline.
    const std::string diff = UnifiedDiff("f", before, after, static_cast<int>(rng() % 4));
    if (before == after) {
      EXPECT_EQ(diff, "");
      continue;
    }
    ASSERT_EQ(Patch(before, diff), after) << diff;
  }
}

TEST(UnifiedDiffTest, MinimalScriptForLargeFileWithFewChanges) {
  std::string before;
  for (int i = 0; i < 10000; ++i) before += "line " + std::to_string(i) + "\n";
  std::string after = before;
  after.replace(after.find("line 5000\n"), 10, "changed\n");
  const std::string diff = UnifiedDiff("f", before, after);
  EXPECT_NE(diff.find("-line 5000\n+changed\n"), std::string::npos);
  EXPECT_EQ(std::count(diff.begin(), diff.end(), '\n'), 2 + 1 + 6 + 2);
}

}  // namespace
}  // namespace lai::workspace
