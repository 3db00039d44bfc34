#include "agent/thinking.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lai::agent {
namespace {

using Pieces = std::vector<ThinkingSplitter::Piece>;

// "T:" for thought, "S:" for said, one per piece.
std::vector<std::string> Describe(const Pieces& pieces) {
  std::vector<std::string> out;
  for (const ThinkingSplitter::Piece& piece : pieces) {
    out.push_back((piece.is_thought ? "T:" : "S:") + piece.text);
  }
  return out;
}

// Feeds `chunks`, then finishes; merges adjacent pieces of one kind across calls.
std::vector<std::string> Split(const std::vector<std::string>& chunks) {
  ThinkingSplitter splitter;
  Pieces all;
  for (const std::string& chunk : chunks) {
    Pieces pieces;
    splitter.Feed(chunk, pieces);
    for (ThinkingSplitter::Piece& piece : pieces) {
      EXPECT_FALSE(piece.text.empty());
      if (!all.empty() && all.back().is_thought == piece.is_thought) {
        all.back().text += piece.text;
      } else {
        all.push_back(std::move(piece));
      }
    }
  }
  Pieces rest;
  splitter.Finish(rest);
  for (ThinkingSplitter::Piece& piece : rest) {
    if (!all.empty() && all.back().is_thought == piece.is_thought) {
      all.back().text += piece.text;
    } else {
      all.push_back(std::move(piece));
    }
  }
  return Describe(all);
}

TEST(ThinkingSplitterTest, ThoughtBetweenTheTagsTheRestSaid) {
  EXPECT_EQ(Split({"<thinking>Read the file first.</thinking>I will read it."}),
            (std::vector<std::string>{"T:Read the file first.", "S:I will read it."}));
  EXPECT_EQ(Split({"plain text"}), (std::vector<std::string>{"S:plain text"}));
  EXPECT_EQ(Split({"a<thinking>b</thinking>c<thinking>d</thinking>"}),
            (std::vector<std::string>{"S:a", "T:b", "S:c", "T:d"}));
  // Other tags, <think> after the start, and text that only looks like the start of a tag, are
  // said.
  EXPECT_EQ(Split({"x < y and <think> and <thinkin"}),
            (std::vector<std::string>{"S:x < y and <think> and <thinkin"}));
  // A reasoning model's <think> where the reply starts is thought; its </think> alone ends it.
  EXPECT_EQ(Split({"\n<think>\nThe user wants X.</thinking> still\n</think>\n\nHere."}),
            (std::vector<std::string>{"S:\n", "T:\nThe user wants X.</thinking> still\n",
                                      "S:\n\nHere."}));
  EXPECT_EQ(Split({"<think>a</think>b<think>c</think>"}),
            (std::vector<std::string>{"T:a", "S:b<think>c</think>"}));
  // An unclosed thought stays thought; a stray closing tag is said.
  EXPECT_EQ(Split({"<thinking>still going"}), (std::vector<std::string>{"T:still going"}));
  EXPECT_EQ(Split({"done</thinking>"}), (std::vector<std::string>{"S:done</thinking>"}));
}

TEST(ThinkingSplitterTest, EverySplitPointGivesTheSameResult) {
  const std::string text = "Hi <thinking>plan: a < b</thinking> then <thinking>more</thinking>!";
  const std::vector<std::string> whole = Split({text});
  ASSERT_EQ(whole,
            (std::vector<std::string>{"S:Hi ", "T:plan: a < b", "S: then ", "T:more", "S:!"}));
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      EXPECT_EQ(Split({text.substr(0, i), text.substr(i, j - i), text.substr(j)}), whole)
          << "split at " << i << " and " << j;
    }
  }
  // One byte at a time.
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(Split(bytes), whole);
  // And a reasoning model's <think>, byte by byte.
  bytes.clear();
  for (char c : std::string(" <think>a < b</think>said")) bytes.emplace_back(1, c);
  EXPECT_EQ(Split(bytes), (std::vector<std::string>{"S: ", "T:a < b", "S:said"}));
}

}  // namespace
}  // namespace lai::agent
