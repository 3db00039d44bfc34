#include "agent/tools/args.h"

#include <gtest/gtest.h>

#include "agent/tools/responses.h"

namespace lai::agent {
namespace {

TEST(ToolArgsTest, RejectsInvalidJsonAndNonObjects) {
  Result<ToolArgs> bad = ToolArgs::Parse("{\"path\": ");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not valid JSON"), std::string::npos);
  Result<ToolArgs> array = ToolArgs::Parse("[1]");
  ASSERT_FALSE(array.ok());
  EXPECT_NE(array.error().message().find("must be a JSON object"), std::string::npos);
  EXPECT_TRUE(ToolArgs::Parse("").ok());  // No arguments at all reads as {}.
}

TEST(ToolArgsTest, MissingRequiredUsesKiloWording) {
  Result<ToolArgs> args = ToolArgs::Parse(R"({"other": 1, "path": null})");
  ASSERT_TRUE(args.ok());
  Result<std::string> path = args->RequiredString("path");
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(path.error().message().starts_with(
      "Missing value for required parameter 'path'. Please retry with complete response."));
}

TEST(ToolArgsTest, AcceptsWhatModelsSend) {
  Result<ToolArgs> args = ToolArgs::Parse(
      R"({"line": "12", "n": 7, "f": 3.0, "yes": "TRUE", "no": false, "one": 1, "empty": "",
          "s": 5})");
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(*args->RequiredInteger("line"), 12);
  EXPECT_EQ(*args->RequiredInteger("n"), 7);
  EXPECT_EQ(*args->RequiredInteger("f"), 3);
  EXPECT_TRUE(*args->OptionalBool("yes", false));
  EXPECT_FALSE(*args->OptionalBool("no", true));
  EXPECT_TRUE(*args->OptionalBool("one", false));
  EXPECT_TRUE(*args->OptionalBool("absent", true));
  EXPECT_FALSE(args->OptionalInteger("empty")->has_value());
  EXPECT_EQ(*args->RequiredString("s"), "5");
}

TEST(ToolArgsTest, WrongTypesNameTheParameterAndTheExpectation) {
  Result<ToolArgs> args = ToolArgs::Parse(R"({"line": "twelve", "flag": "maybe", "s": [1]})");
  ASSERT_TRUE(args.ok());
  Result<int64_t> line = args->RequiredInteger("line");
  ASSERT_FALSE(line.ok());
  EXPECT_NE(line.error().message().find("parameter 'line': expected an integer"),
            std::string::npos);
  EXPECT_NE(line.error().message().find("\"twelve\""), std::string::npos);
  Result<bool> flag = args->OptionalBool("flag", false);
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.error().message().find("expected a boolean"), std::string::npos);
  EXPECT_FALSE(args->RequiredString("s").ok());
}

TEST(ToolArgsTest, LineRangesInEveryShape) {
  Result<ToolArgs> args = ToolArgs::Parse(
      R"({"a": ["1-5", "10-20"], "b": [[3, 4]], "c": [{"start": 2, "end": "9"}], "d": "7-8",
          "bad": ["5-1"], "worse": ["x"]})");
  ASSERT_TRUE(args.ok());
  auto a = *args->LineRanges("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].start, 10);
  EXPECT_EQ(a[1].end, 20);
  EXPECT_EQ((*args->LineRanges("b"))[0].end, 4);
  EXPECT_EQ((*args->LineRanges("c"))[0].end, 9);
  EXPECT_EQ((*args->LineRanges("d"))[0].start, 7);
  EXPECT_TRUE(args->LineRanges("absent")->empty());
  EXPECT_FALSE(args->LineRanges("bad").ok());
  EXPECT_FALSE(args->LineRanges("worse").ok());
}

TEST(ToolArgsTest, ObjectArrayAcceptsDoubleEncodedArrays) {
  Result<ToolArgs> args = ToolArgs::Parse(R"({"files": "[{\"path\": \"a.txt\"}]"})");
  ASSERT_TRUE(args.ok());
  Result<std::vector<ToolArgs>> files = args->ObjectArray("files");
  ASSERT_TRUE(files.ok()) << files.error().message();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ(*(*files)[0].RequiredString("path"), "a.txt");
}

TEST(ResponsesTest, NumberedLinesAreRightAligned) {
  std::string out;
  AppendNumberedLines(out, "a\nb\n\nd", 8, 1);
  EXPECT_EQ(out, " 8 | a\n 9 | b\n10 | \n11 | d\n");
}

TEST(ResponsesTest, TruncationKeepsHeadAndTail) {
  std::string text;
  for (int i = 1; i <= 100; ++i) text += "line " + std::to_string(i) + "\n";
  std::string out = TruncateOutputLines(text, 10);
  EXPECT_EQ(out,
            "line 1\nline 2\n\n[...90 lines omitted...]\n\nline 93\nline 94\nline 95\n"
            "line 96\nline 97\nline 98\nline 99\nline 100\n");
  EXPECT_EQ(TruncateOutputLines("a\nb\n", 10), "a\nb\n");
}

}  // namespace
}  // namespace lai::agent
