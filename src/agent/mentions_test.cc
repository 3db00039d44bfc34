// Mentions: files, folders, ignored, missing, outside, binary, limits and the mention grammar.
#include "agent/mentions.h"

#include <gtest/gtest.h>

#include "workspace/test_support.h"

namespace lai::agent {
namespace {

using workspace::testing::TempTree;

class MentionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.File("src/main.cc", "int main() {\n  return 0;\n}\n");
    tree_.File("src/util.h", "#pragma once\n");
    tree_.File("secret.txt", "password\n");
    tree_.File(".kilocodeignore", "secret.txt\n");
    tree_.File("logo.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\0", 12));
    tree_.File("my file.txt", "spaced\n");
  }
  std::string Expand(std::string_view text) {
    Result<std::shared_ptr<const workspace::Workspace>> ws =
        workspace::Workspace::Open(tree_.root());
    EXPECT_TRUE(ws.ok());
    return ExpandMentions(text, **ws, settings_);
  }

  TempTree tree_;
  ToolSettings settings_;
};

TEST_F(MentionsTest, FileMentionAppendsNumberedContent) {
  EXPECT_EQ(Expand("Fix @/src/main.cc please"),
            "Fix 'src/main.cc' (see below for file content) please\n\n"
            "<file_content path=\"src/main.cc\">\n"
            "1 | int main() {\n2 |   return 0;\n3 | }\n"
            "</file_content>");
}

// A folder: its top-level listing, then its own text files (binary ones left out), as Kilo Code.
TEST_F(MentionsTest, FolderMentionListsTopLevelAndGivesItsFiles) {
  tree_.File("src/icon.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\0", 12));
  tree_.File("src/sub/deep.cc", "deep\n");
  EXPECT_EQ(Expand("Look at @/src/."),
            "Look at 'src/' (see below for folder content).\n\n"
            "<folder_content path=\"src/\">\n"
            "├── icon.png\n├── main.cc\n├── util.h\n└── sub/\n"
            "</folder_content>\n\n"
            "<file_content path=\"src/main.cc\">\n"
            "1 | int main() {\n2 |   return 0;\n3 | }\n"
            "</file_content>\n\n"
            "<file_content path=\"src/util.h\">\n1 | #pragma once\n</file_content>");
  // A file mentioned on its own as well is given once.
  std::string out = Expand("@/src/util.h and @/src");
  EXPECT_EQ(out.find("<file_content path=\"src/util.h\">"),
            out.rfind("<file_content path=\"src/util.h\">"))
      << out;
  // One folder named three ways is listed once.
  out = Expand("@/src and @/src/ and @/./src");
  EXPECT_NE(out.find("<folder_content"), std::string::npos) << out;
  EXPECT_EQ(out.find("<folder_content"), out.rfind("<folder_content")) << out;
}

// Parentheses around a mention are the sentence's ("src/(group)/page.tsx" keeps its own).
TEST_F(MentionsTest, ParenthesesAroundAMention) {
  tree_.File("src/(group)/page.tsx", "page\n");
  std::string out = Expand("fix it (see @/src/util.h). And (@/src/(group)/page.tsx)");
  EXPECT_NE(out.find("fix it (see 'src/util.h' (see below for file content)). And ('src/(group)/"
                     "page.tsx' (see below for file content))"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("<file_content path=\"src/(group)/page.tsx\">\n1 | page\n"), std::string::npos)
      << out;
}

TEST_F(MentionsTest, IgnoredFileIsNotShown) {
  std::string out = Expand("@/secret.txt");
  EXPECT_EQ(out,
            "'secret.txt' (see below for file content)\n\n"
            "<file_content path=\"secret.txt\">\n"
            "(Not included: 'secret.txt' is blocked by the .kilocodeignore file settings.)\n"
            "</file_content>");
  EXPECT_EQ(out.find("password"), std::string::npos);
}

TEST_F(MentionsTest, MissingAndOutsideGiveNotes) {
  std::string missing = Expand("see @/nope.txt");
  EXPECT_NE(missing.find("<file_content path=\"nope.txt\">\n(Not included: 'nope.txt' does not "
                         "exist in the workspace.)\n</file_content>"),
            std::string::npos)
      << missing;
  std::string outside = Expand("see @/../etc/passwd");
  EXPECT_NE(outside.find("(Not included: '../etc/passwd' is outside the workspace;"),
            std::string::npos)
      << outside;
}

TEST_F(MentionsTest, BinaryFileIsDescribedNotShown) {
  EXPECT_EQ(Expand("@/logo.png"),
            "'logo.png' (see below for file content)\n\n<file_content path=\"logo.png\">\n"
            "(Binary file 'logo.png', 12 bytes: content not shown.)\n</file_content>");
}

TEST_F(MentionsTest, LineLimitCutsLongFiles) {
  settings_.read_line_limit = 2;
  EXPECT_EQ(Expand("@/src/main.cc"),
            "'src/main.cc' (see below for file content)\n\n<file_content path=\"src/main.cc\">\n"
            "1 | int main() {\n2 |   return 0;\n"
            "[Showing only 2 of 3 total lines. Use read_file with line_ranges to read more.]\n"
            "</file_content>");
}

// A file over the mention's 8 MiB shows its first lines, as read_file does (nothing of it was
// shown).
TEST_F(MentionsTest, AVeryLargeFileShowsItsFirstLines) {
  std::string big;
  for (int i = 0; big.size() <= (8u << 20); ++i) big += "line " + std::to_string(i) + "\n";
  tree_.File("big.log", big);
  settings_.read_line_limit = 2;
  std::string expanded = Expand("@/big.log");
  EXPECT_NE(expanded.find("1 | line 0\n2 | line 1\n[Showing only the first 2 lines of a " +
                          std::to_string(big.size()) + "-byte file."),
            std::string::npos)
      << expanded.substr(0, 300);
}

// Mentioned files share read_file's byte limit: a long one-line file is cut with a note, and
// what comes after the budget is spent is cut to nothing but the note.
TEST_F(MentionsTest, ByteLimitCutsMentionedFilesTogether) {
  tree_.File("min.js", std::string(5000, 'x') + "\n");
  settings_.read_byte_limit = 1000;
  std::string out = Expand("@/min.js and @/src/main.cc");
  EXPECT_NE(out.find("<file_content path=\"min.js\">\n1 | " + std::string(996, 'x') +
                     "\n[Cut at 1000 of 5005 bytes to fit the model's context."),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("<file_content path=\"src/main.cc\">\n(Not included: the files mentioned "
                     "before it already fill"),
            std::string::npos)
      << out;
  EXPECT_LT(out.size(), 1600u);
}

TEST_F(MentionsTest, GrammarAndDuplicates) {
  // Not mentions: inside a word (e-mail), escaped, unsupported kinds, a lone '@'.
  EXPECT_EQ(Expand("mail a@b.c \\@/src/main.cc @terminal @problems @ x"),
            "mail a@b.c \\@/src/main.cc @terminal @problems @ x");
  // Escaped spaces; a repeated mention is replaced each time but its block appears once.
  std::string out = Expand("@/my\\ file.txt and @/my\\ file.txt");
  EXPECT_EQ(out,
            "'my file.txt' (see below for file content) and 'my file.txt' (see below for file "
            "content)\n\n<file_content path=\"my file.txt\">\n1 | spaced\n</file_content>");
}

}  // namespace
}  // namespace lai::agent
