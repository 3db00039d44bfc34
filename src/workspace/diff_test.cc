#include "workspace/diff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace lai::workspace {
namespace {

int NaiveLevenshtein(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string RandomString(std::mt19937& rng, int max_length, std::string_view alphabet) {
  std::uniform_int_distribution<int> length(0, max_length);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string s(length(rng), ' ');
  for (char& c : s) c = alphabet[pick(rng)];
  return s;
}

// A copy of `s` with `edits` random single-byte edits.
std::string Mutate(std::mt19937& rng, std::string s, int edits, std::string_view alphabet) {
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  for (int e = 0; e < edits; ++e) {
    int kind = static_cast<int>(rng() % 3);
    size_t at = s.empty() ? 0 : rng() % s.size();
    if (kind == 0 || s.empty()) {
      s.insert(s.begin() + static_cast<long>(at), alphabet[pick(rng)]);
    } else if (kind == 1) {
      s.erase(at, 1);
    } else {
      s[at] = alphabet[pick(rng)];
    }
  }
  return s;
}

TEST(LevenshteinTest, MatchesNaiveDpOnRandomStrings) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 60; ++round) {
    // Short and multi-word (> 64 and > 128 bytes) patterns, small and large alphabets.
    const int max_length = round % 4 == 0 ? 10 : (round % 4 == 1 ? 70 : 200);
    std::string_view alphabet = round % 2 == 0 ? "ab" : "abcdefghijklmnopqrstuvwxyz \n";
    std::string a = RandomString(rng, max_length, alphabet);
    std::string b = round % 3 == 0 ? RandomString(rng, max_length, alphabet)
                                   : Mutate(rng, a, static_cast<int>(rng() % 12), alphabet);
    const int expected = NaiveLevenshtein(a, b);
    ASSERT_EQ(LevenshteinDistance(a, b), expected) << "a=" << a << " b=" << b;
    ASSERT_EQ(LevenshteinDistance(b, a), expected);
  }
}

TEST(LevenshteinTest, CutOffReportsExactDistanceOrBudgetPlusOne) {
  std::mt19937 rng(777);
  for (int round = 0; round < 50; ++round) {
    std::string_view alphabet = "abcdxyz";
    std::string a = RandomString(rng, round % 2 == 0 ? 60 : 200, alphabet);
    std::string b = Mutate(rng, a, static_cast<int>(rng() % 20), alphabet);
    const int expected = NaiveLevenshtein(a, b);
    for (int budget : {0, 1, expected - 1, expected, expected + 1, 5, 50}) {
      if (budget < 0) continue;
      const int got = BoundedLevenshteinDistance(a, b, budget);
      if (expected <= budget) {
        ASSERT_EQ(got, expected) << "budget " << budget;
      } else {
        ASSERT_EQ(got, budget + 1) << "budget " << budget;
      }
    }
  }
}

TEST(LevenshteinTest, EdgeCases) {
  EXPECT_EQ(LevenshteinDistance("", ""), 0);
  EXPECT_EQ(LevenshteinDistance("", "abc"), 3);
  EXPECT_EQ(LevenshteinDistance("abc", ""), 3);
  EXPECT_EQ(LevenshteinDistance("kitten", "sitting"), 3);
  std::string long_a(1000, 'x');
  std::string long_b = long_a;
  long_b[500] = 'y';
  EXPECT_EQ(LevenshteinDistance(long_a, long_b), 1);
  EXPECT_EQ(BoundedLevenshteinDistance(long_a, std::string(10, 'x'), 5), 6);
}

TEST(SimilarityTest, IsOneMinusNormalisedDistance) {
  EXPECT_DOUBLE_EQ(Similarity("", ""), 1.0);
  EXPECT_DOUBLE_EQ(Similarity("abc", "abc"), 1.0);
  EXPECT_DOUBLE_EQ(Similarity("abcd", "abce"), 0.75);
  EXPECT_DOUBLE_EQ(Similarity("", "ab"), 0.0);
  EXPECT_DOUBLE_EQ(Similarity("kitten", "sitting"), 1.0 - 3.0 / 7.0);
}

TEST(NormalizeTest, KiloNormalisation) {
  EXPECT_EQ(NormalizeForMatch("  a \t b\n\n c  "), "a b c");
  EXPECT_EQ(NormalizeForMatch("\xE2\x80\x9Cq\xE2\x80\x9D \xE2\x80\x98s\xE2\x80\x99"), "\"q\" 's'");
  EXPECT_EQ(NormalizeForMatch("wait\xE2\x80\xA6"), "wait...");
  EXPECT_EQ(NormalizeForMatch("a\xE2\x80\x94"
                              "b\xE2\x80\x93"
                              "c"),
            "a-b-c");
  EXPECT_EQ(NormalizeForMatch("a\xC2\xA0\xC2\xA0"
                              "b"),
            "a b");
  EXPECT_EQ(NormalizeForMatch("caf\xC3\xA9"), "caf\xC3\xA9");
}

DiffOutcome Apply(std::string_view original, std::string_view diff, double threshold = 1.0,
                  int buffer = 40) {
  Result<DiffOutcome> outcome = ApplyMultiSearchReplace(original, diff, {threshold, buffer});
  EXPECT_TRUE(outcome.ok()) << outcome.error().message();
  return outcome.ok() ? *outcome : DiffOutcome{};
}

std::string ErrorOf(std::string_view diff) {
  Result<DiffOutcome> outcome = ApplyMultiSearchReplace("a\n", diff, {});
  EXPECT_FALSE(outcome.ok());
  if (outcome.ok()) return {};
  EXPECT_EQ(outcome.error().code(), ErrorCode::kInvalidArgument);
  return outcome.error().message();
}

TEST(ApplyDiffTest, ExactReplacement) {
  DiffOutcome out =
      Apply("one\ntwo\nthree\n",
            "<<<<<<< SEARCH\n:start_line:2\n-------\ntwo\n=======\nTWO\n>>>>>>> REPLACE");
  EXPECT_EQ(out.content, "one\nTWO\nthree\n");
  EXPECT_EQ(out.applied_blocks, 1);
  EXPECT_TRUE(out.failures.empty());
}

TEST(ApplyDiffTest, BlocksApplyInStartLineOrderWithRunningDelta) {
  const std::string original = "a\nb\nc\nd\ne\n";
  const std::string diff =
      "<<<<<<< SEARCH\n:start_line:4\n-------\nd\n=======\nD\n>>>>>>> REPLACE\n"
      "<<<<<<< SEARCH\n:start_line:1\n-------\na\n=======\na1\na2\na3\n>>>>>>> REPLACE";
  DiffOutcome out = Apply(original, diff);
  EXPECT_EQ(out.content, "a1\na2\na3\nb\nc\nD\ne\n");
  EXPECT_EQ(out.applied_blocks, 2);
}

TEST(ApplyDiffTest, FuzzyMatchAboveThresholdKeepsFileIndentation) {
  const std::string original = "def f():\n    x = compute(1)\n    return x\n";
  const std::string diff =
      "<<<<<<< SEARCH\nx = compute(l)\nreturn x\n=======\nx = compute(2)\nreturn x + 1\n"
      ">>>>>>> REPLACE";
  DiffOutcome exact = Apply(original, diff, 1.0);
  EXPECT_EQ(exact.applied_blocks, 0);
  ASSERT_EQ(exact.failures.size(), 1u);
  EXPECT_NE(exact.failures[0].message.find("No sufficiently similar match found"),
            std::string::npos);
  EXPECT_EQ(exact.failures[0].best_start_line, 2);
  DiffOutcome fuzzy = Apply(original, diff, 0.9);
  EXPECT_EQ(fuzzy.content, "def f():\n    x = compute(2)\n    return x + 1\n");
}

TEST(ApplyDiffTest, EscapedMarkersAreContent) {
  const std::string original = "x\n=======\ny\n";
  const std::string diff = "<<<<<<< SEARCH\nx\n\\=======\ny\n=======\nx\ny\n>>>>>>> REPLACE";
  EXPECT_EQ(Apply(original, diff).content, "x\ny\n");
}

TEST(ApplyDiffTest, LineNumberPrefixesAreStripped) {
  const std::string original = "a\nb\nc\n";
  const std::string diff = "<<<<<<< SEARCH\n2 | b\n3 | c\n=======\n2 | B\n3 | C\n>>>>>>> REPLACE";
  EXPECT_EQ(Apply(original, diff).content, "a\nB\nC\n");
}

TEST(ApplyDiffTest, IdenticalAndEmptySearchAreBlockFailures) {
  DiffOutcome identical = Apply("a\n", "<<<<<<< SEARCH\na\n=======\na\n>>>>>>> REPLACE");
  ASSERT_EQ(identical.failures.size(), 1u);
  EXPECT_NE(identical.failures[0].message.find("Search and replace content are identical"),
            std::string::npos);
  DiffOutcome empty =
      Apply("a\n", "<<<<<<< SEARCH\n:start_line:1\n-------\n=======\nb\n>>>>>>> REPLACE");
  ASSERT_EQ(empty.failures.size(), 1u);
  EXPECT_NE(empty.failures[0].message.find("Empty search content is not allowed"),
            std::string::npos);
}

TEST(ApplyDiffTest, HintBeyondWindowStillFindsExactCopy) {
  std::string original;
  for (int i = 1; i <= 200; ++i) original += "line " + std::to_string(i) + "\n";
  DiffOutcome out = Apply(original,
                          "<<<<<<< SEARCH\n:start_line:10\n-------\nline 150\n=======\nLINE\n"
                          ">>>>>>> REPLACE",
                          1.0, 5);
  EXPECT_EQ(out.applied_blocks, 1);
  EXPECT_NE(out.content.find("line 149\nLINE\nline 151\n"), std::string::npos);
}

TEST(ApplyDiffTest, MiddleOutPicksFirstBestAsKiloDoes) {
  // Two equally good fuzzy candidates (lines 1 and 3 of 4): the search starts at the midpoint
  // index 2 (line 3), so line 3 is visited first and a tie does not replace it.
  const std::string original = "alpha beta 1\nfiller\nalpha beta 2\n";
  DiffOutcome out =
      Apply(original, "<<<<<<< SEARCH\nalpha beta 3\n=======\nX\n>>>>>>> REPLACE", 0.8);
  EXPECT_EQ(out.content, "alpha beta 1\nfiller\nX\n");
}

// Kilo Code's algorithm, literally (a string per window, naive DP), for one block.
std::optional<std::string> KiloReference(const std::string& original,
                                         const std::vector<std::string>& search,
                                         const std::vector<std::string>& replace, int hint,
                                         double threshold, int buffer) {
  std::vector<std::string> lines;
  for (size_t begin = 0;;) {
    size_t end = original.find('\n', begin);
    lines.push_back(original.substr(begin, end == std::string::npos ? end : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  const int n = static_cast<int>(lines.size());
  const int length = static_cast<int>(search.size());
  auto join = [](const std::vector<std::string>& v, int begin, int end) {
    std::string out;
    for (int i = begin; i < std::min(end, static_cast<int>(v.size())); ++i) {
      if (i > begin) out += '\n';
      out += v[i];
    }
    return out;
  };
  const std::string chunk = NormalizeForMatch(join(search, 0, length));
  auto similarity = [&](int index) {
    const std::string window = NormalizeForMatch(join(lines, index, index + length));
    if (window == chunk) return 1.0;
    return 1.0 - static_cast<double>(NaiveLevenshtein(window, chunk)) /
                     static_cast<double>(std::max(window.size(), chunk.size()));
  };
  int match = -1;
  int start = 0;
  int end = n;
  if (hint > 0) {
    if (hint - 1 < n && similarity(hint - 1) >= threshold) {
      match = hint - 1;
    } else {
      start = std::max(0, hint - (buffer + 1));
      end = std::min(n, hint + length + buffer);
    }
  }
  if (match < 0) {
    double best = 0;
    const int mid = (start + end) / 2;
    for (int left = mid, right = mid + 1; left >= start || right <= end - length;) {
      for (int i : {left >= start ? left-- : -1, right <= end - length ? right++ : -1}) {
        if (i < 0 || i >= n) continue;
        const double s = similarity(i);
        if (s > best) {
          best = s;
          match = i;
        }
      }
    }
    if (best < threshold) return std::nullopt;
  }
  auto indent = [](const std::string& line) {
    return line.substr(0, line.find_first_not_of(" \t") == std::string::npos
                              ? line.size()
                              : line.find_first_not_of(" \t"));
  };
  const std::string matched = indent(lines[match]);
  const std::string base = indent(search[0]);
  std::vector<std::string> out;
  for (const std::string& line : replace) {
    const std::string current = indent(line);
    const int relative = static_cast<int>(current.size()) - static_cast<int>(base.size());
    std::string text = relative < 0 ? matched.substr(0, std::max<int>(0, matched.size() + relative))
                                    : matched + current.substr(base.size());
    size_t b = line.find_first_not_of(" \t");
    size_t e = line.find_last_not_of(" \t");
    if (b != std::string::npos) text += line.substr(b, e - b + 1);
    out.push_back(text);
  }
  lines.erase(lines.begin() + match, lines.begin() + std::min(n, match + length));
  lines.insert(lines.begin() + match, out.begin(), out.end());
  return join(lines, 0, static_cast<int>(lines.size()));
}

// Random single-block edits: wherever Kilo's algorithm finds a match the engine makes the same
// edit; where Kilo finds none, the engine either fails too or used an exact copy of the search
// text outside the hint's window.
TEST(ApplyDiffTest, AgreesWithKiloAlgorithmOnRandomEdits) {
  std::mt19937 rng(2024);
  const std::vector<std::string> vocabulary = {
      "int x = 1;", "  x += 2;",     "    return x;",  "\tfoo(bar);", "",         "}",
      "if (a) {",   "  call(a, b);", "    y = x * 2;", "// note",     "  x += 3;"};
  int compared = 0;
  for (int round = 0; round < 80; ++round) {
    std::vector<std::string> file(3 + rng() % 30);
    for (std::string& line : file) line = vocabulary[rng() % vocabulary.size()];
    std::string original;
    for (size_t i = 0; i < file.size(); ++i) original += file[i] + "\n";
    const int length = 1 + static_cast<int>(rng() % 3);
    const int at = static_cast<int>(rng() % (file.size() - length + 1));
    std::vector<std::string> search(file.begin() + at, file.begin() + at + length);
    if (rng() % 2 == 0) {  // A typo in one line.
      std::string& line = search[rng() % search.size()];
      if (!line.empty()) line[rng() % line.size()] = 'q';
    }
    bool has_text = false;
    for (const std::string& line : search) has_text |= !NormalizeForMatch(line).empty();
    if (!has_text) continue;
    std::vector<std::string> replace = {"  changed(" + std::to_string(round) + ");"};
    const int hint = rng() % 3 == 0 ? 0 : std::max(1, at + 1 + static_cast<int>(rng() % 21) - 10);
    const double thresholds[] = {1.0, 0.9, 0.8, 0.6};
    const double threshold = thresholds[rng() % 4];
    const int buffer = rng() % 2 == 0 ? 3 : 40;
    std::string diff = "<<<<<<< SEARCH\n";
    if (hint > 0) diff += ":start_line:" + std::to_string(hint) + "\n";
    diff += "-------\n";
    for (const std::string& line : search) diff += line + "\n";
    diff += "=======\n" + replace[0] + "\n>>>>>>> REPLACE";
    Result<DiffOutcome> outcome = ApplyMultiSearchReplace(original, diff, {threshold, buffer});
    ASSERT_TRUE(outcome.ok()) << outcome.error().message();
    // Beyond Kilo Code: without a hint, an exact SEARCH found in several places is refused;
    // with one, the copy nearest to it is taken (Kilo's takes the one nearest the middle of the
    // hint's window), and two as near are refused.
    auto normalized = [](auto begin, auto end) {
      std::string out;
      for (auto it = begin; it != end; ++it) {
        std::string line = NormalizeForMatch(*it);
        if (line.empty()) continue;
        if (!out.empty()) out += ' ';
        out += line;
      }
      return out;
    };
    const std::string wanted = normalized(search.begin(), search.end());
    int copies = 0;
    for (size_t i = 0; i + search.size() <= file.size(); ++i) {
      auto from = file.begin() + static_cast<long>(i);
      copies += normalized(from, from + static_cast<long>(search.size())) == wanted;
    }
    if (copies > 1) continue;
    if (hint == 0 && outcome->applied_blocks == 0 && !outcome->failures.empty() &&
        outcome->failures[0].message.find("places (starting at lines") != std::string::npos) {
      int exact = 0;
      for (size_t i = 0; i + search.size() <= file.size(); ++i) {
        exact += std::equal(search.begin(), search.end(), file.begin() + static_cast<long>(i));
      }
      EXPECT_GE(exact, 1) << diff;
      continue;
    }
    std::optional<std::string> expected =
        KiloReference(original, search, replace, hint, threshold, buffer);
    if (expected) {
      ASSERT_EQ(outcome->applied_blocks, 1) << diff;
      ASSERT_EQ(outcome->content, *expected) << diff << "\n---\n" << original;
      ++compared;
    } else if (outcome->applied_blocks == 1) {
      ASSERT_NE(hint, 0) << "without a hint the whole file is the window: " << diff;
    }
  }
  EXPECT_GT(compared, 25);
}

// Without :start_line:, a SEARCH found in several places is refused, naming them (the middle
// one of five was changed, and the model was not told); with the hint, the one there changes.
TEST(ApplyDiffTest, ASearchFoundInSeveralPlacesNeedsTheLine) {
  const std::string file = "def f1():\n    x = 1\ndef f2():\n    x = 1\ndef f3():\n    x = 1\n";
  Result<DiffOutcome> outcome = ApplyMultiSearchReplace(
      file, "<<<<<<< SEARCH\n    x = 1\n=======\n    x = 2\n>>>>>>> REPLACE", {1.0, 40});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->applied_blocks, 0);
  ASSERT_EQ(outcome->failures.size(), 1u);
  EXPECT_NE(outcome->failures[0].message.find("matches 3 places (starting at lines 2, 4, 6)"),
            std::string::npos)
      << outcome->failures[0].message;
  EXPECT_EQ(outcome->content, file);
  outcome = ApplyMultiSearchReplace(
      file,
      "<<<<<<< SEARCH\n:start_line:4\n-------\n    x = 1\n=======\n    x = 2\n>>>>>>> REPLACE",
      {1.0, 40});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->content, "def f1():\n    x = 1\ndef f2():\n    x = 2\ndef f3():\n    x = 1\n");
  // A hint a line off takes the nearest copy (it took one further away); two as near: refused.
  outcome = ApplyMultiSearchReplace(
      file,
      "<<<<<<< SEARCH\n:start_line:1\n-------\n    x = 1\n=======\n    x = 2\n>>>>>>> REPLACE",
      {1.0, 40});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->content, "def f1():\n    x = 2\ndef f2():\n    x = 1\ndef f3():\n    x = 1\n");
  outcome = ApplyMultiSearchReplace(
      file,
      "<<<<<<< SEARCH\n:start_line:3\n-------\n    x = 1\n=======\n    x = 2\n>>>>>>> REPLACE",
      {1.0, 40});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->applied_blocks, 0);
  ASSERT_EQ(outcome->failures.size(), 1u);
  EXPECT_NE(outcome->failures[0].message.find("matches at lines 2 and 4, as near"),
            std::string::npos)
      << outcome->failures[0].message;
}

// A tab-indented file edited with a space-indented SEARCH gets tabs, not tabs and spaces.
TEST(ApplyDiffTest, SpacesBecomeTheFilesTabs) {
  const std::string file = "def f(x):\n\tif x:\n\t\ta = 1\n\t\treturn a\n\treturn 0\n";
  Result<DiffOutcome> outcome = ApplyMultiSearchReplace(
      file,
      "<<<<<<< SEARCH\n    if x:\n        a = 1\n=======\n    if x:\n        a = 2\n"
      "        b = [1,\n          2]\n>>>>>>> REPLACE",
      {1.0, 40});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->content,
            "def f(x):\n\tif x:\n\t\ta = 2\n\t\tb = [1,\n\t\t  2]\n\t\treturn a\n\treturn 0\n");
}

TEST(ApplyDiffParseTest, MarkerErrors) {
  EXPECT_NE(ErrorOf("<<<<<<< SEARCH\na\n>>>>>>> REPLACE")
                .find("ERROR: Diff block is malformed: marker '>>>>>>> REPLACE' found in your diff "
                      "content at line 3. Expected: ======="),
            std::string::npos);
  EXPECT_NE(
      ErrorOf("<<<<<<< SEARCH\na\n=======\nb")
          .find("ERROR: Unexpected end of sequence: Expected '>>>>>>> REPLACE' was not found."),
      std::string::npos);
  EXPECT_NE(ErrorOf("<<<<<<< SEARCH\na").find("Expected '=======' was not found."),
            std::string::npos);
  EXPECT_NE(ErrorOf("<<<<<<< SEARCH\na\n=======\nb\n=======\nc\n>>>>>>> REPLACE")
                .find("Special marker '=======' found in your diff content at line 5"),
            std::string::npos);
  EXPECT_NE(ErrorOf("<<<<<<< SEARCH\na\n=======\n:start_line:3\nb\n>>>>>>> REPLACE")
                .find("ERROR: Invalid line marker ':start_line:' found in REPLACE section at "
                      "line 4"),
            std::string::npos);
  EXPECT_NE(ErrorOf("<<<<<<< HEAD\na\n").find("Special marker '<<<<<<< HEAD'"), std::string::npos);
  EXPECT_NE(ErrorOf("just text").find("Invalid diff format - missing required sections"),
            std::string::npos);
  EXPECT_NE(ErrorOf("").find("Invalid diff format"), std::string::npos);
}

TEST(ApplyDiffTest, CrlfDiffIsAccepted) {
  EXPECT_EQ(Apply("a\nb\n", "<<<<<<< SEARCH\r\na\r\n=======\r\nA\r\n>>>>>>> REPLACE\r\n").content,
            "A\nb\n");
}

TEST(ApplyDiffTest, LargeFileFuzzyWithoutHint) {
  std::string original;
  for (int i = 0; i < 3000; ++i) {
    original += "    value_" + std::to_string(i) + " = compute(" + std::to_string(i * 7) + ");\n";
  }
  DiffOutcome out = Apply(original,
                          "<<<<<<< SEARCH\nvalue_1500 = compute(10499);\nvalue_1501 = "
                          "compute(10507);\n=======\nvalue_1500 = 0;\nvalue_1501 = 0;\n"
                          ">>>>>>> REPLACE",
                          0.9);
  EXPECT_EQ(out.applied_blocks, 1);
  EXPECT_NE(out.content.find("    value_1500 = 0;\n    value_1501 = 0;\n    value_1502"),
            std::string::npos);
}

// Without :start_line:, the closest match in a large file is looked for within a bound: the
// search stops there (it took minutes over 700,000 lines, and Ctrl-C could not stop it), the
// block fails as it would, and the report says the match shown is the closest of those searched.
TEST(ApplyDiffTest, TheClosestMatchSearchIsBounded) {
  std::string original;
  for (int i = 0; i < 2000; ++i) original += "line " + std::to_string(i) + " of the file\n";
  const std::string diff =
      "<<<<<<< SEARCH\nnothing like this\nnor this\n=======\nnew\n>>>>>>> REPLACE\n";
  DiffOptions bounded;
  bounded.fuzzy_work = 20'000;  // A few hundred windows of the 2000.
  Result<DiffOutcome> cut = ApplyMultiSearchReplace(original, diff, bounded);
  ASSERT_TRUE(cut.ok());
  ASSERT_EQ(cut->failures.size(), 1u);
  EXPECT_EQ(cut->content, original);
  EXPECT_NE(cut->failures[0].message.find("too large to search whole without a :start_line:"),
            std::string::npos)
      << cut->failures[0].message;
  Result<DiffOutcome> whole = ApplyMultiSearchReplace(original, diff, {});
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(whole->failures.size(), 1u);
  EXPECT_EQ(whole->failures[0].message.find("too large"), std::string::npos);
}

}  // namespace
}  // namespace lai::workspace
