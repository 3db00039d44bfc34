#include "workspace/diff.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lai::workspace {
namespace {

// ---------------------------------------------------------------------------------------------
// Small text helpers with JavaScript's semantics where Kilo Code's behaviour depends on them.

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// String.prototype.trim() for the whitespace that occurs in source text.
std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

// text.split("\n"): always at least one piece.
std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t begin = 0;
  while (true) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(begin));
      return lines;
    }
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
}

std::string JoinViews(const std::vector<std::string_view>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += lines[i];
  }
  return out;
}

std::string_view LeadingIndent(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return line.substr(0, n);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// /^\s*\d+\s+\|(?!\|)\s?(.*)$/ (or, aggressive, /^\s*(?:\d+\s)?\|\s(.*)$/): the text after a
// read_file line-number prefix, or nullopt when the line has none.
std::optional<std::string_view> AfterLineNumber(std::string_view line, bool aggressive) {
  size_t i = 0;
  while (i < line.size() && IsAsciiSpace(line[i])) ++i;
  if (!aggressive) {
    size_t digits = i;
    while (i < line.size() && IsDigit(line[i])) ++i;
    if (i == digits) return std::nullopt;
    size_t spaces = i;
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    if (i == spaces || i >= line.size() || line[i] != '|') return std::nullopt;
    ++i;
    if (i < line.size() && line[i] == '|') return std::nullopt;
    if (i < line.size() && IsAsciiSpace(line[i])) ++i;
    return line.substr(i);
  }
  // Aggressive: optional "<digits><one space>", then "|", then one whitespace character. The
  // leading \s* may also swallow nothing while the digits are tried; try both readings.
  size_t j = i;
  while (j < line.size() && IsDigit(line[j])) ++j;
  if (j > i && j < line.size() && IsAsciiSpace(line[j]) && j + 1 < line.size() &&
      line[j + 1] == '|' && j + 2 < line.size() && IsAsciiSpace(line[j + 2])) {
    return line.substr(j + 3);
  }
  if (i < line.size() && line[i] == '|' && i + 1 < line.size() && IsAsciiSpace(line[i + 1])) {
    return line.substr(i + 2);
  }
  return std::nullopt;
}

// everyLineHasLineNumbers: every line of `content` carries a "N | " prefix.
bool EveryLineHasLineNumbers(std::string_view content) {
  for (std::string_view line : SplitLines(content)) {
    if (!AfterLineNumber(line, /*aggressive=*/false)) return false;
  }
  return true;
}

std::string StripLineNumbers(std::string_view content, bool aggressive) {
  std::string out;
  bool first = true;
  for (std::string_view line : SplitLines(content)) {
    if (!first) out += '\n';
    first = false;
    std::optional<std::string_view> rest = AfterLineNumber(line, aggressive);
    out += rest ? *rest : line;
  }
  return out;
}

// addLineNumbers(content, start): "%*d | line\n" per line, width of the largest number.
std::string AddLineNumbers(std::string_view content, int start_line) {
  if (content.empty()) {
    return start_line == 1 ? std::string() : std::to_string(start_line) + " | \n";
  }
  std::vector<std::string_view> lines = SplitLines(content);
  if (lines.back().empty()) lines.pop_back();
  const size_t width = std::to_string(start_line + static_cast<int>(lines.size()) - 1).size();
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    std::string number = std::to_string(start_line + static_cast<int>(i));
    out.append(width - std::min(width, number.size()), ' ');
    out += number;
    out += " | ";
    out += lines[i];
  }
  out += '\n';
  return out;
}

// Unescapes a leading backslash before a marker line: "\=======" is content, not a separator.
std::string UnescapeMarkers(std::string_view content) {
  static constexpr std::array<std::string_view, 6> kEscaped = {
      "\\<<<<<<<", "\\=======", "\\>>>>>>>", "\\-------", "\\:end_line:", "\\:start_line:"};
  std::string out;
  bool first = true;
  for (std::string_view line : SplitLines(content)) {
    if (!first) out += '\n';
    first = false;
    for (std::string_view escaped : kEscaped) {
      if (line.starts_with(escaped)) {
        line.remove_prefix(1);
        break;
      }
    }
    out += line;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation (Kilo Code's normalizeString with its default options).

// Length of the UTF-8 sequence at `s[i]` when it is a character JavaScript's \s matches
// (beyond ASCII): NBSP, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF.
size_t UnicodeSpaceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) -> unsigned char {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  unsigned char b0 = byte(0);
  if (b0 == 0xC2 && byte(1) == 0xA0) return 2;
  if (b0 == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) return 3;
  if (b0 == 0xE2 && byte(1) == 0x80) {
    unsigned char b2 = byte(2);
    if ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF) return 3;
  }
  if (b0 == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;
  if (b0 == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;
  if (b0 == 0xEF && byte(1) == 0xBB && byte(2) == 0xBF) return 3;
  return 0;
}

bool IsPlainAscii(char c) { return static_cast<unsigned char>(c) < 0x80 && !IsAsciiSpace(c); }

void AppendNormalized(std::string_view text, std::string& out) {
  const size_t base = out.size();
  bool pending_space = false;
  auto emit = [&](std::string_view piece) {
    if (pending_space && out.size() > base) out += ' ';
    pending_space = false;
    out += piece;
  };
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (IsPlainAscii(c)) {
      size_t run = i + 1;
      while (run < text.size() && IsPlainAscii(text[run])) ++run;
      emit(text.substr(i, run - i));
      i = run;
      continue;
    }
    if (IsAsciiSpace(c)) {
      pending_space = true;
      ++i;
      continue;
    }
    if (size_t n = UnicodeSpaceLength(text, i)) {
      pending_space = true;
      i += n;
      continue;
    }
    if (static_cast<unsigned char>(c) == 0xE2 && i + 2 < text.size() &&
        static_cast<unsigned char>(text[i + 1]) == 0x80) {
      switch (static_cast<unsigned char>(text[i + 2])) {
        case 0x9C:
        case 0x9D:
          emit("\"");
          i += 3;
          continue;
        case 0x98:
        case 0x99:
          emit("'");
          i += 3;
          continue;
        case 0xA6:
          emit("...");
          i += 3;
          continue;
        case 0x93:
        case 0x94:
          emit("-");
          i += 3;
          continue;
        default:
          break;
      }
    }
    emit(text.substr(i, 1));
    ++i;
  }
}

// When normalising `line` only trims it (no whitespace runs, tabs or special characters
// inside), the normalised text is a substring of the line: returned without copying.
std::optional<std::string_view> NormalizedInPlace(std::string_view line) {
  std::string_view trimmed = Trim(line);
  bool previous_space = false;
  for (char c : trimmed) {
    if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
    if (c == ' ') {
      if (previous_space) return std::nullopt;
      previous_space = true;
    } else if (IsAsciiSpace(c)) {
      return std::nullopt;
    } else {
      previous_space = false;
    }
  }
  return trimmed;
}

// ---------------------------------------------------------------------------------------------
// Bit-parallel edit distance (Myers 1999, block-based; Hyyro's formulation for the global
// distance): the pattern is the column, each text byte advances all 64-bit blocks at once.

class PatternMasks {
 public:
  explicit PatternMasks(std::string_view pattern)
      : length_(static_cast<int>(pattern.size())), words_((length_ + 63) / 64) {
    peq_.assign(static_cast<size_t>(256) * std::max(words_, 1), 0);
    for (int i = 0; i < length_; ++i) {
      unsigned char c = static_cast<unsigned char>(pattern[i]);
      peq_[c * words_ + i / 64] |= uint64_t{1} << (i % 64);
    }
  }

  int length() const { return length_; }

  // levenshtein(pattern, text) when <= max_distance, else max_distance + 1.
  int Distance(std::string_view text, int max_distance) const {
    const int m = length_;
    const int n = static_cast<int>(text.size());
    if (max_distance < 0) return max_distance + 1;
    if (std::abs(n - m) > max_distance) return max_distance + 1;
    if (m == 0) return n;
    if (words_ == 1) return DistanceOneWord(text, max_distance);
    constexpr int kStackWords = 32;
    uint64_t stack_pv[kStackWords];
    uint64_t stack_mv[kStackWords];
    std::vector<uint64_t> heap;
    uint64_t* pv = stack_pv;
    uint64_t* mv = stack_mv;
    if (words_ > kStackWords) {
      heap.resize(static_cast<size_t>(words_) * 2);
      pv = heap.data();
      mv = heap.data() + words_;
    }
    for (int w = 0; w < words_; ++w) {
      pv[w] = ~uint64_t{0};
      mv[w] = 0;
    }
    const uint64_t last_bit = uint64_t{1} << ((m - 1) % 64);
    constexpr uint64_t kHighBit = uint64_t{1} << 63;
    int score = m;
    for (int j = 0; j < n; ++j) {
      const uint64_t* eq_row = &peq_[static_cast<unsigned char>(text[j]) * words_];
      int carry = 1;  // D[0][j] = j: the top row always grows by one.
      for (int w = 0; w < words_; ++w) {
        uint64_t p = pv[w];
        uint64_t mm = mv[w];
        uint64_t eq = eq_row[w];
        const uint64_t xv = eq | mm;
        if (carry < 0) eq |= 1;
        const uint64_t xh = (((eq & p) + p) ^ p) | eq;
        uint64_t ph = mm | ~(xh | p);
        uint64_t mh = p & xh;
        const uint64_t high = w == words_ - 1 ? last_bit : kHighBit;
        const int out = (ph & high) ? 1 : ((mh & high) ? -1 : 0);
        ph <<= 1;
        mh <<= 1;
        if (carry < 0) {
          mh |= 1;
        } else if (carry > 0) {
          ph |= 1;
        }
        pv[w] = mh | ~(xv | ph);
        mv[w] = ph & xv;
        carry = out;
      }
      score += carry;
      // Each remaining text byte can lower the bottom row by at most one.
      if (score - (n - 1 - j) > max_distance) return max_distance + 1;
    }
    return score <= max_distance ? score : max_distance + 1;
  }

 private:
  int DistanceOneWord(std::string_view text, int max_distance) const {
    const int n = static_cast<int>(text.size());
    const uint64_t last_bit = uint64_t{1} << (length_ - 1);
    uint64_t pv = ~uint64_t{0};
    uint64_t mv = 0;
    int score = length_;
    for (int j = 0; j < n; ++j) {
      const uint64_t eq = peq_[static_cast<unsigned char>(text[j])];
      const uint64_t xv = eq | mv;
      const uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
      uint64_t ph = mv | ~(xh | pv);
      uint64_t mh = pv & xh;
      if (ph & last_bit) {
        ++score;
      } else if (mh & last_bit) {
        --score;
      }
      ph = (ph << 1) | 1;
      mh <<= 1;
      pv = mh | ~(xv | ph);
      mv = ph & xv;
      if (score - (n - 1 - j) > max_distance) return max_distance + 1;
    }
    return score <= max_distance ? score : max_distance + 1;
  }

  int length_;
  int words_;
  std::vector<uint64_t> peq_;  // [byte][word]: bit i set where pattern[i] == byte.
};

// ---------------------------------------------------------------------------------------------
// Marker validation (Kilo Code's validateMarkerSequencing) and block extraction.

constexpr std::string_view kSearch = "<<<<<<< SEARCH";
constexpr std::string_view kSeparator = "=======";
constexpr std::string_view kReplace = ">>>>>>> REPLACE";
constexpr std::string_view kSearchPrefix = "<<<<<<<";
constexpr std::string_view kReplacePrefix = ">>>>>>>";

bool IsSearchMarker(std::string_view trimmed) {
  return trimmed == kSearch || trimmed == "<<<<<<< SEARCH>";
}

std::string MergeConflictError(std::string_view found, int line) {
  std::string f(found);
  return "ERROR: Special marker '" + f + "' found in your diff content at line " +
         std::to_string(line) +
         ":\n\n"
         "When removing merge conflict markers like '" +
         f +
         "' from files, you MUST escape them\n"
         "in your SEARCH section by prepending a backslash (\\) at the beginning of the line:\n"
         "\n"
         "CORRECT FORMAT:\n\n"
         "<<<<<<< SEARCH\n"
         "content before\n"
         "\\" +
         f +
         "    <-- Note the backslash here in this example\n"
         "content after\n"
         "=======\n"
         "replacement content\n"
         ">>>>>>> REPLACE\n"
         "\n"
         "Without escaping, the system confuses your content with diff syntax markers.\n"
         "You may use multiple diff blocks in a single diff request, but ANY of ONLY the "
         "following separators that occur within SEARCH or REPLACE content must be escaped, as "
         "follows:\n"
         "\\<<<<<<< SEARCH\n"
         "\\=======\n"
         "\\>>>>>>> REPLACE\n";
}

std::string InvalidDiffError(std::string_view found, std::string_view expected, int line) {
  return "ERROR: Diff block is malformed: marker '" + std::string(found) +
         "' found in your diff content at line " + std::to_string(line) +
         ". Expected: " + std::string(expected) +
         "\n\n"
         "CORRECT FORMAT:\n\n" +
         std::string(kSearchReplaceBlockFormat);
}

std::string LineMarkerInReplaceError(std::string_view marker, int line) {
  return "ERROR: Invalid line marker '" + std::string(marker) +
         "' found in REPLACE section at line " + std::to_string(line) +
         "\n\n"
         "Line markers (:start_line: and :end_line:) are only allowed in SEARCH sections.\n"
         "\n"
         "CORRECT FORMAT:\n"
         "<<<<<<< SEARCH\n"
         ":start_line:5\n"
         "content to find\n"
         "=======\n"
         "replacement content\n"
         ">>>>>>> REPLACE\n"
         "\n"
         "INCORRECT FORMAT:\n"
         "<<<<<<< SEARCH\n"
         "content to find\n"
         "=======\n"
         ":start_line:5    <-- Invalid location\n"
         "replacement content\n"
         ">>>>>>> REPLACE\n";
}

Status ValidateMarkerSequencing(const std::vector<std::string_view>& lines) {
  enum class State { kStart, kAfterSearch, kAfterSeparator };
  int search_count = 0;
  int separator_count = 0;
  int replace_count = 0;
  for (std::string_view line : lines) {
    std::string_view t = Trim(line);
    if (IsSearchMarker(t)) ++search_count;
    if (t == kSeparator) ++separator_count;
    if (t == kReplace) ++replace_count;
  }
  const bool likely_bad_structure = search_count != replace_count || separator_count < search_count;
  auto fail = [](std::string message) {
    return Status(Error(ErrorCode::kInvalidArgument, std::move(message)));
  };

  State state = State::kStart;
  int line_number = 0;
  for (std::string_view line : lines) {
    ++line_number;
    std::string_view marker = Trim(line);
    if (state == State::kAfterSeparator) {
      if (marker.starts_with(":start_line:")) {
        return fail(LineMarkerInReplaceError(":start_line:", line_number));
      }
      if (marker.starts_with(":end_line:")) {
        return fail(LineMarkerInReplaceError(":end_line:", line_number));
      }
    }
    switch (state) {
      case State::kStart:
        if (marker == kSeparator) {
          return fail(likely_bad_structure ? InvalidDiffError(kSeparator, kSearch, line_number)
                                           : MergeConflictError(kSeparator, line_number));
        }
        if (marker == kReplace) return fail(InvalidDiffError(kReplace, kSearch, line_number));
        if (marker.starts_with(kReplacePrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        if (IsSearchMarker(marker)) {
          state = State::kAfterSearch;
        } else if (marker.starts_with(kSearchPrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        break;
      case State::kAfterSearch:
        if (IsSearchMarker(marker)) {
          return fail(InvalidDiffError(kSearch, kSeparator, line_number));
        }
        if (marker.starts_with(kSearchPrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        if (marker == kReplace) return fail(InvalidDiffError(kReplace, kSeparator, line_number));
        if (marker.starts_with(kReplacePrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        if (marker == kSeparator) state = State::kAfterSeparator;
        break;
      case State::kAfterSeparator:
        if (IsSearchMarker(marker)) {
          return fail(InvalidDiffError(kSearch, kReplace, line_number));
        }
        if (marker.starts_with(kSearchPrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        if (marker == kSeparator) {
          return fail(likely_bad_structure ? InvalidDiffError(kSeparator, kReplace, line_number)
                                           : MergeConflictError(kSeparator, line_number));
        }
        if (marker == kReplace) {
          state = State::kStart;
        } else if (marker.starts_with(kReplacePrefix)) {
          return fail(MergeConflictError(marker, line_number));
        }
        break;
    }
  }
  if (state == State::kStart) return OkStatus();
  return fail(std::string("ERROR: Unexpected end of sequence: Expected '") +
              std::string(state == State::kAfterSearch ? kSeparator : kReplace) +
              "' was not found.");
}

// ":start_line: 12" -> 12 (the regex /:start_line:\s*(\d+)\s*/ on a whole line).
std::optional<int> ParseLineMarker(std::string_view line, std::string_view name) {
  if (!line.starts_with(name)) return std::nullopt;
  std::string_view rest = Trim(line.substr(name.size()));
  if (rest.empty() || rest.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : rest) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

struct Block {
  int index = 0;       // 1-based, in diff order.
  int start_line = 0;  // 0 = no hint.
  std::string search;
  std::string replace;
};

std::vector<Block> ExtractBlocks(const std::vector<std::string_view>& lines) {
  std::vector<Block> blocks;
  size_t i = 0;
  const size_t n = lines.size();
  while (i < n) {
    if (!IsSearchMarker(Trim(lines[i])) || lines[i].starts_with('\\')) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    Block block;
    if (j < n) {
      if (std::optional<int> start = ParseLineMarker(lines[j], ":start_line:")) {
        block.start_line = *start;
        ++j;
      }
    }
    if (j < n && ParseLineMarker(lines[j], ":end_line:")) ++j;
    if (j < n && lines[j].starts_with("-------") && Trim(lines[j]) == "-------") ++j;
    std::vector<std::string_view> search;
    while (j < n && Trim(lines[j]) != kSeparator) search.push_back(lines[j++]);
    if (j >= n) break;
    ++j;
    std::vector<std::string_view> replace;
    while (j < n && Trim(lines[j]) != kReplace) replace.push_back(lines[j++]);
    if (j >= n) break;
    block.index = static_cast<int>(blocks.size()) + 1;
    block.search = JoinViews(search);
    block.replace = JoinViews(replace);
    blocks.push_back(std::move(block));
    i = j + 1;
  }
  return blocks;
}

// ---------------------------------------------------------------------------------------------
// The file being edited: its lines and, computed on first use, each line's normalised text.

class Document {
 public:
  // `text` must outlive the document: unchanged lines are views into it.
  explicit Document(std::string_view text) : lines_(SplitLines(text)) {
    normalized_.resize(lines_.size());
    is_normalized_.assign(lines_.size(), 0);
  }

  int size() const { return static_cast<int>(lines_.size()); }
  std::string_view line(int i) const { return lines_[i]; }
  const std::vector<std::string_view>& lines() const { return lines_; }

  std::string_view Normalized(int i) {
    if (!is_normalized_[i]) {
      if (std::optional<std::string_view> in_place = NormalizedInPlace(lines_[i])) {
        normalized_[i] = *in_place;
      } else {
        std::string& stored = arena_.emplace_back();
        AppendNormalized(lines_[i], stored);
        normalized_[i] = stored;
      }
      is_normalized_[i] = 1;
    }
    return normalized_[i];
  }

  // Replaces lines [index, index + count) (clamped to the end) with `replacement`.
  void Splice(int index, int count, std::vector<std::string> replacement) {
    const int end = std::min(size(), index + count);
    std::vector<std::string_view> added;
    added.reserve(replacement.size());
    for (std::string& line : replacement) added.push_back(arena_.emplace_back(std::move(line)));
    lines_.erase(lines_.begin() + index, lines_.begin() + end);
    lines_.insert(lines_.begin() + index, added.begin(), added.end());
    normalized_.erase(normalized_.begin() + index, normalized_.begin() + end);
    normalized_.insert(normalized_.begin() + index, added.size(), std::string_view());
    is_normalized_.erase(is_normalized_.begin() + index, is_normalized_.begin() + end);
    is_normalized_.insert(is_normalized_.begin() + index, added.size(), 0);
  }

  std::string Text() const {
    size_t total = lines_.size();
    for (std::string_view line : lines_) total += line.size();
    std::string out;
    out.reserve(total);
    for (size_t i = 0; i < lines_.size(); ++i) {
      if (i > 0) out += '\n';
      out += lines_[i];
    }
    return out;
  }

  std::string Join(int begin, int end) const {
    std::string out;
    for (int i = begin; i < end; ++i) {
      if (i > begin) out += '\n';
      out += lines_[i];
    }
    return out;
  }

 private:
  std::vector<std::string_view> lines_;
  std::vector<std::string_view> normalized_;  // Valid where is_normalized_.
  std::vector<uint8_t> is_normalized_;
  std::deque<std::string> arena_;  // Replacement lines and copied normalisations (stable).
};

// The normalised text of lines [first, last) laid out once, so that the normalised text of any
// window of lines inside it is a substring: normalize(join(lines, "\n")) equals the non-empty
// normalised lines joined by single spaces.
class NormalizedRegion {
 public:
  NormalizedRegion(Document& document, int first, int last) : first_(first), last_(last) {
    const int count = std::max(0, last - first);
    begin_.resize(count);
    end_.resize(count);
    next_non_empty_.resize(count + 1);
    prev_non_empty_.resize(count);
    size_t total = 0;
    for (int k = 0; k < count; ++k) total += document.Normalized(first + k).size() + 1;
    text_.reserve(total);
    int previous = -1;
    for (int k = 0; k < count; ++k) {
      const std::string_view normalized = document.Normalized(first + k);
      if (!normalized.empty()) {
        if (!text_.empty()) text_ += ' ';
        begin_[k] = static_cast<int>(text_.size());
        text_ += normalized;
        previous = k;
      } else {
        begin_[k] = static_cast<int>(text_.size());
      }
      end_[k] = static_cast<int>(text_.size());
      prev_non_empty_[k] = previous;
    }
    next_non_empty_[count] = count;
    for (int k = count - 1; k >= 0; --k) {
      next_non_empty_[k] = end_[k] > begin_[k] ? k : next_non_empty_[k + 1];
    }
  }

  // Byte range in text() of the normalised window of lines [line, line + count) clamped to the
  // region; an empty range (begin == end) when every line in it is blank.
  std::pair<int, int> Window(int line, int count) const {
    const int a = next_non_empty_[line - first_];
    const int b = prev_non_empty_[std::min(last_, line + count) - 1 - first_];
    if (a > b || b < 0) return {begin_[line - first_], begin_[line - first_]};
    return {begin_[a], end_[b]};
  }

  std::string_view WindowText(int line, int count) const {
    auto [b, e] = Window(line, count);
    return std::string_view(text_).substr(b, e - b);
  }

  const std::string& text() const { return text_; }

 private:
  int first_;
  int last_;
  std::string text_;
  std::vector<int> begin_;
  std::vector<int> end_;
  std::vector<int> next_non_empty_;
  std::vector<int> prev_non_empty_;
};

// Kilo Code's middle-out visiting order over start indices [start, end]: the midpoint, then
// alternately one step left and one step right (right only while a whole window fits).
template <typename Visit>
void MiddleOut(int start, int end, int window_lines, Visit&& visit) {
  const int mid = (start + end) / 2;  // start, end >= 0.
  int left = mid;
  int right = mid + 1;
  while (left >= start || right <= end - window_lines) {
    if (left >= start) {
      if (!visit(left)) return;
      --left;
    }
    if (right <= end - window_lines) {
      if (!visit(right)) return;
      ++right;
    }
  }
}

// 1 - d / max(|a|, |b|) exactly as Kilo computes it (the double division).
double SimilarityFromDistance(int distance, size_t a, size_t b) {
  const size_t max_length = std::max(a, b);
  if (max_length == 0) return 1.0;
  return 1.0 - static_cast<double>(distance) / static_cast<double>(max_length);
}

// The largest distance that can still give a similarity >= `floor_similarity` (one ulp of
// slack; candidates are then checked with the exact double expression).
int DistanceBudget(double floor_similarity, size_t max_length) {
  const double budget = (1.0 - floor_similarity) * static_cast<double>(max_length) + 1e-7;
  if (budget < 0) return -1;
  return static_cast<int>(std::floor(budget));
}

struct Match {
  int index = -1;  // First line, 0-based; -1 = none.
  double similarity = 0;
};

// Finds a block's search text in a document. One instance per block attempt.
class Matcher {
 public:
  Matcher(Document& document, std::string_view search_chunk, int search_lines, uint64_t work_limit)
      : work_left_(work_limit),
        document_(document),
        search_lines_(search_lines),
        normalized_search_(NormalizeForMatch(search_chunk)),
        masks_(normalized_search_) {}

  bool ran_out() const { return ran_out_; }

  // Kilo's getSimilarity for the window starting at `index`.
  double SimilarityAt(int index) {
    std::string window;
    const int end = std::min(document_.size(), index + search_lines_);
    for (int i = index; i < end; ++i) {
      const std::string_view normalized = document_.Normalized(i);
      if (normalized.empty()) continue;
      if (!window.empty()) window += ' ';
      window += normalized;
    }
    if (window == normalized_search_) return 1.0;
    const int max_length = static_cast<int>(std::max(window.size(), normalized_search_.size()));
    return SimilarityFromDistance(masks_.Distance(window, max_length), window.size(),
                                  normalized_search_.size());
  }

  // The region FindExact and FindBest over [start, end] need.
  NormalizedRegion Region(int start, int end) {
    return NormalizedRegion(document_, std::min(start, document_.size()),
                            std::max(std::min(start, document_.size()), RegionEnd(end)));
  }

  // First window (middle-out over [start, end]) whose normalised text equals the search's.
  Match FindExact(const NormalizedRegion& region, int start, int end) {
    Match match;
    if (start > end || start >= document_.size()) return match;
    MiddleOut(start, end, search_lines_, [&](int i) {
      if (i >= document_.size()) return true;
      if (region.WindowText(i, search_lines_) == normalized_search_) {
        match = {i, 1.0};
        return false;
      }
      return true;
    });
    return match;
  }

  // The first `most` exact windows in the document, in order.
  std::vector<int> ExactMatches(size_t most) {
    std::vector<int> found;
    const int n = document_.size();
    NormalizedRegion region(document_, 0, n);
    for (int i = 0; i < n && found.size() < most; ++i) {
      if (region.WindowText(i, search_lines_) == normalized_search_) found.push_back(i);
    }
    return found;
  }

  // The exact window in [start, end] nearest to `near`; `tie` gets another as near (or -1).
  Match FindExactNearestIn(const NormalizedRegion& region, int start, int end, int near, int& tie) {
    Match match;
    tie = -1;
    int best_gap = -1;
    for (int i = start; i <= end && i < document_.size(); ++i) {
      if (region.WindowText(i, search_lines_) != normalized_search_) continue;
      const int gap = std::abs(i - near);
      if (best_gap < 0 || gap < best_gap) {
        best_gap = gap;
        match = {i, 1.0};
        tie = -1;
      } else if (gap == best_gap) {
        tie = i;
      }
    }
    return match;
  }

  // The exact window nearest to `near` anywhere in the document (ties: the earlier one).
  Match FindExactNearest(int near) {
    Match match;
    const int n = document_.size();
    if (n == 0) return match;
    NormalizedRegion region(document_, 0, n);
    int best_gap = -1;
    for (int i = 0; i < n; ++i) {
      if (region.WindowText(i, search_lines_) != normalized_search_) continue;
      const int gap = std::abs(i - near);
      if (best_gap < 0 || gap < best_gap) {
        best_gap = gap;
        match = {i, 1.0};
      }
    }
    return match;
  }

  // Middle-out search over start indices [start, end] for the first window with the highest
  // similarity (strictly greater wins, as in Kilo). When `threshold` is given, only windows
  // reaching it count, which lets the distance computation stop early. The distances computed
  // are bounded (DiffOptions::fuzzy_work): over a large file without a :start_line: the search
  // stops at the bound, with the best found so far (ran_out() then says so).
  Match FindBest(const NormalizedRegion& region, int start, int end,
                 std::optional<double> threshold) {
    Match best;
    if (start > end || start >= document_.size()) return best;
    const int n = document_.size();
    const int last_start = std::min(end, n - 1);
    const int count = last_start - start + 1;
    if (count <= 0) return best;

    // Character-histogram lower bound of every candidate's distance, sliding over the
    // candidates in index order (both ends of the window's text only move forward).
    std::vector<int> lower_bound(count);
    {
      std::array<int, 256> difference{};
      int surplus = 0;  // Sum of positive differences (bytes the window has extra).
      int deficit = static_cast<int>(normalized_search_.size());
      for (unsigned char c : normalized_search_) --difference[c];
      const std::string& text = region.text();
      int lo = 0;
      int hi = 0;
      for (int k = 0; k < count; ++k) {
        auto [b, e] = region.Window(start + k, search_lines_);
        e = std::max(b, e);
        // Branch-free: adding a byte raises the surplus when the window already has at least
        // as many as the search, else lowers the deficit; removing is the mirror image.
        while (hi < e) {
          const unsigned char c = static_cast<unsigned char>(text[hi++]);
          const int grows = difference[c] >= 0;
          surplus += grows;
          deficit -= 1 - grows;
          ++difference[c];
        }
        while (lo < b) {
          const unsigned char c = static_cast<unsigned char>(text[lo++]);
          const int shrinks = difference[c] > 0;
          surplus -= shrinks;
          deficit += 1 - shrinks;
          --difference[c];
        }
        lower_bound[k] = std::max(surplus, deficit);
      }
    }

    const size_t search_size = normalized_search_.size();
    MiddleOut(start, end, search_lines_, [&](int i) {
      if (i > last_start) return true;
      std::string_view window = region.WindowText(i, search_lines_);
      const size_t max_length = std::max(window.size(), search_size);
      const double floor_similarity =
          threshold ? std::max(*threshold, best.similarity) : best.similarity;
      const int budget = DistanceBudget(floor_similarity, max_length);
      if (budget < 0 || lower_bound[i - start] > budget) return true;
      const uint64_t work = window.size() * (search_size / 64 + 1);
      if (work > work_left_) {
        ran_out_ = true;
        return false;
      }
      work_left_ -= work;
      const int distance = masks_.Distance(window, budget);
      if (distance > budget) return true;
      const double similarity = SimilarityFromDistance(distance, window.size(), search_size);
      if (similarity > best.similarity && (!threshold || similarity >= *threshold)) {
        best = {i, similarity};
        if (similarity >= 1.0) return false;  // Nothing can beat an exact hit.
      }
      return true;
    });
    return best;
  }

 private:
  int RegionEnd(int end) const {
    return std::min(document_.size(), std::max(end, 0) + search_lines_);
  }

  uint64_t work_left_;
  bool ran_out_ = false;
  Document& document_;
  int search_lines_;
  std::string normalized_search_;
  PatternMasks masks_;
};

std::string Percent(double value) {
  return std::to_string(static_cast<int>(std::floor(value * 100)));
}

// When the matched lines are indented with tabs alone and the search with spaces alone: how
// many of the search's spaces make one of the file's tabs (from two lines of different depth,
// else from the first line, else 4). 0 otherwise: indents are then carried over as written.
int SpacesPerTab(const Document& document, int match_index, int matched_count,
                 const std::vector<std::string_view>& search_lines,
                 std::string_view search_base_indent) {
  auto only = [](std::string_view indent, char c) {
    return indent.find_first_not_of(c) == std::string_view::npos;
  };
  if (!only(LeadingIndent(document.line(match_index)), '\t') || !only(search_base_indent, ' ')) {
    return 0;
  }
  int first_tabs = -1;
  int first_spaces = 0;
  bool has_tabs = false;
  for (int k = 0; k < matched_count && k < static_cast<int>(search_lines.size()); ++k) {
    if (Trim(search_lines[static_cast<size_t>(k)]).empty()) continue;
    std::string_view tabs = LeadingIndent(document.line(match_index + k));
    std::string_view spaces = LeadingIndent(search_lines[static_cast<size_t>(k)]);
    if (!only(spaces, ' ')) return 0;
    if (!only(tabs, '\t')) continue;  // A tab and spaces: aligned, not a level.
    has_tabs = has_tabs || !tabs.empty();
    const int tab_count = static_cast<int>(tabs.size());
    const int space_count = static_cast<int>(spaces.size());
    if (first_tabs < 0) {
      first_tabs = tab_count;
      first_spaces = space_count;
    } else if (tab_count != first_tabs &&
               (space_count - first_spaces) % (tab_count - first_tabs) == 0) {
      const int unit = (space_count - first_spaces) / (tab_count - first_tabs);
      if (unit > 0) return unit;
    }
  }
  if (!has_tabs) return 0;
  if (first_tabs > 0 && first_spaces > 0 && first_spaces % first_tabs == 0) {
    return first_spaces / first_tabs;
  }
  return 4;
}

// One block's attempt with a given search text.
struct Attempt {
  Match match;
  bool accepted = false;
  int tie = -1;  // Another exact match as near the hint as `match` (then none is taken).
};

Attempt Locate(Document& document, std::string_view search_chunk, int search_lines, int start_line,
               const DiffOptions& options, int window_start, int window_end) {
  Matcher matcher(document, search_chunk, search_lines, options.fuzzy_work);
  Attempt attempt;
  const double threshold = options.fuzzy_threshold;
  if (start_line > 0 && start_line - 1 < document.size()) {
    const double similarity = matcher.SimilarityAt(start_line - 1);
    if (similarity >= threshold) {
      attempt.match = {start_line - 1, similarity};
      attempt.accepted = true;
      return attempt;
    }
  }
  const NormalizedRegion region = matcher.Region(window_start, window_end);
  // With a hint, the exact copy nearest to it (a hint a line off must not pick another copy
  // further away); two as near are for the caller to refuse.
  attempt.match = start_line > 0 ? matcher.FindExactNearestIn(region, window_start, window_end,
                                                              start_line - 1, attempt.tie)
                                 : matcher.FindExact(region, window_start, window_end);
  if (attempt.tie >= 0) return attempt;
  if (attempt.match.index < 0 && threshold < 1.0) {
    attempt.match = matcher.FindBest(region, window_start, window_end, threshold);
  }
  if (attempt.match.index < 0 && start_line > 0) {
    // Beyond Kilo Code: an exact copy outside the hint's window is still the block's target.
    attempt.match = matcher.FindExactNearest(start_line - 1);
  }
  attempt.accepted = attempt.match.index >= 0;
  return attempt;
}

}  // namespace

std::string NormalizeForMatch(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendNormalized(text, out);
  return out;
}

int BoundedLevenshteinDistance(std::string_view a, std::string_view b, int max_distance) {
  if (max_distance < 0) return max_distance + 1;
  if (a.size() < b.size()) std::swap(a, b);  // The shorter one is the pattern: fewer words.
  PatternMasks masks(b);
  return masks.Distance(a, max_distance);
}

int LevenshteinDistance(std::string_view a, std::string_view b) {
  return BoundedLevenshteinDistance(a, b, static_cast<int>(std::max(a.size(), b.size())));
}

double Similarity(std::string_view a, std::string_view b) {
  if (a == b) return 1.0;
  return SimilarityFromDistance(LevenshteinDistance(a, b), a.size(), b.size());
}

Result<DiffOutcome> ApplyMultiSearchReplace(std::string_view original, std::string_view diff,
                                            const DiffOptions& options) {
  std::string diff_text;
  if (diff.find('\r') != std::string_view::npos) {
    diff_text.reserve(diff.size());
    for (size_t i = 0; i < diff.size(); ++i) {
      if (diff[i] == '\r' && i + 1 < diff.size() && diff[i + 1] == '\n') continue;
      diff_text += diff[i];
    }
    diff = diff_text;
  }
  const std::vector<std::string_view> diff_lines = SplitLines(diff);
  RETURN_IF_ERROR(ValidateMarkerSequencing(diff_lines));
  std::vector<Block> blocks = ExtractBlocks(diff_lines);
  if (blocks.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "Invalid diff format - missing required sections\n\n"
                 "Debug Info:\n"
                 "- Expected Format: <<<<<<< SEARCH\\n:start_line: start line\\n-------\\n"
                 "[search content]\\n=======\\n[replace content]\\n>>>>>>> REPLACE\n"
                 "- Tip: Make sure to include start_line/SEARCH/=======/REPLACE sections with "
                 "correct markers on new lines");
  }
  std::stable_sort(blocks.begin(), blocks.end(),
                   [](const Block& a, const Block& b) { return a.start_line < b.start_line; });

  const double threshold = options.fuzzy_threshold;
  const int buffer = std::max(0, options.buffer_lines);
  Document document(original);
  DiffOutcome outcome;
  outcome.total_blocks = static_cast<int>(blocks.size());
  int delta = 0;

  for (Block& block : blocks) {
    auto fail = [&](std::string message, Match best = {}, int lines = 0) {
      DiffBlockFailure failure;
      failure.block = block.index;
      failure.start_line_hint = block.start_line;
      failure.best_similarity = best.similarity;
      if (best.index >= 0) {
        failure.best_start_line = best.index + 1;
        failure.best_end_line = std::min(document.size(), best.index + lines);
      }
      failure.message = std::move(message);
      outcome.failures.push_back(std::move(failure));
    };

    int start_line = block.start_line == 0 ? 0 : block.start_line + delta;
    std::string search = UnescapeMarkers(block.search);
    std::string replace = UnescapeMarkers(block.replace);

    const bool search_numbered = EveryLineHasLineNumbers(search);
    const bool has_all_line_numbers =
        search_numbered && (EveryLineHasLineNumbers(replace) || Trim(replace).empty());
    if (has_all_line_numbers && start_line == 0) {
      std::string_view first = SplitLines(search)[0];
      start_line = std::atoi(std::string(first.substr(0, first.find('|'))).c_str());
    }
    if (has_all_line_numbers) {
      search = StripLineNumbers(search, false);
      replace = StripLineNumbers(replace, false);
    }

    if (search == replace) {
      fail(
          "Search and replace content are identical - no changes would be made\n\n"
          "Debug Info:\n"
          "- Search and replace must be different to make changes\n"
          "- Use read_file to verify the content you want to change");
      continue;
    }
    if (search.empty()) {
      fail(
          "Empty search content is not allowed\n\n"
          "Debug Info:\n"
          "- Search content cannot be empty\n"
          "- For insertions, provide a specific line using :start_line: and include content to "
          "search for\n"
          "- For example, match a single line to insert before/after it");
      continue;
    }

    std::vector<std::string_view> search_lines = SplitLines(search);
    std::vector<std::string_view> replace_lines;
    if (!replace.empty()) replace_lines = SplitLines(replace);
    const int search_count = static_cast<int>(search_lines.size());
    const int n = document.size();

    int window_start = 0;
    int window_end = n;
    if (start_line > 0) {
      window_start = std::max(0, start_line - (buffer + 1));
      window_end = std::min(n, start_line + search_count + buffer);
    }
    Attempt attempt =
        Locate(document, search, search_count, start_line, options, window_start, window_end);
    if (attempt.tie >= 0) {
      fail("The SEARCH content matches at lines " + std::to_string(attempt.match.index + 1) +
               " and " + std::to_string(attempt.tie + 1) +
               ", as near to :start_line:" + std::to_string(start_line) +
               " as each other, so which one to change is not clear; nothing was changed for "
               "this block.\n\nDebug Info:\n- Give the :start_line: where the one to change "
               "starts, or include more of its surrounding lines in SEARCH",
           attempt.match, search_count);
      continue;
    }
    if (!attempt.accepted) {
      std::string aggressive_search = StripLineNumbers(search, true);
      if (aggressive_search != search && !aggressive_search.empty()) {
        std::vector<std::string_view> aggressive_lines = SplitLines(aggressive_search);
        Attempt retry =
            Locate(document, aggressive_search, static_cast<int>(aggressive_lines.size()), 0,
                   options, window_start, window_end);
        if (retry.accepted) {
          attempt = retry;
          search = std::move(aggressive_search);
          replace = StripLineNumbers(replace, true);
          search_lines = SplitLines(search);
          replace_lines.clear();
          if (!replace.empty()) replace_lines = SplitLines(replace);
        }
      }
    }

    if (!attempt.accepted) {
      // The closest candidate, for the report (Kilo: the best score over the same window).
      Matcher matcher(document, search, search_count, options.fuzzy_work);
      Match best = matcher.FindBest(matcher.Region(window_start, window_end), window_start,
                                    window_end, std::nullopt);
      std::string best_section =
          matcher.ran_out()
              ? "\n\nBest Match Found (the file is too large to search whole without a "
                ":start_line:; this is the closest among the lines searched):\n"
              : "\n\nBest Match Found:\n";
      if (best.index >= 0) {
        best_section += AddLineNumbers(
            document.Join(best.index, std::min(n, best.index + search_count)), best.index + 1);
      } else {
        best_section += "(no match)";
      }
      int context_first = 0;  // 0-based, inclusive.
      int context_last = 0;   // Exclusive.
      if (start_line > 0) {
        context_first = std::max(0, start_line - 1 - buffer);
        context_last = std::min(n, start_line - 1 + search_count + buffer);
      } else if (best.index >= 0) {
        context_first = std::max(0, best.index - buffer);
        context_last = std::min(n, best.index + search_count + buffer);
      } else {
        context_last = std::min(n, search_count - 1 + buffer);
      }
      context_first = std::min(context_first, context_last);
      const std::string original_section =
          "\n\nOriginal Content:\n" +
          AddLineNumbers(document.Join(context_first, context_last), context_first + 1);
      const std::string line_range =
          start_line > 0 ? " at line: " + std::to_string(start_line) : "";
      // The split's last piece is not a line when the text ends with '\n'.
      const int last_line = n > 1 && document.line(n - 1).empty() ? n - 1 : n;
      std::string message =
          "No sufficiently similar match found" + line_range + " (" + Percent(best.similarity) +
          "% similar, needs " + Percent(threshold) +
          "%)\n\nDebug Info:\n- Similarity Score: " + Percent(best.similarity) +
          "%\n- Required Threshold: " + Percent(threshold) + "%\n- Search Range: " +
          (start_line > 0
               ? "starting at line " + std::to_string(start_line) + " (lines " +
                     std::to_string(window_start + 1) + "-" +
                     std::to_string(std::max(window_start + 1, std::min(window_end, last_line))) +
                     " searched)"
               : std::string("start to end")) +
          "\n- Tried both standard and aggressive line number stripping\n"
          "- Tip: Use the read_file tool to get the latest content of the file before "
          "attempting to use the apply_diff tool again, as the file content may have changed\n"
          "- Tip: SEARCH must match the file's current lines including whitespace and "
          "indentation; keep it short and unique, and give the right :start_line:\n\n"
          "Search Content:\n" +
          JoinViews(search_lines) + best_section + original_section;
      fail(std::move(message), best, search_count);
      continue;
    }

    // Without a :start_line:, a SEARCH found in several places names none of them: changing the
    // one the search met first (it changed the middle one of five) is a guess the model is not
    // told about.
    if (start_line == 0 && attempt.match.similarity >= 1.0) {
      Matcher matcher(document, search, search_count, options.fuzzy_work);
      std::vector<int> places = matcher.ExactMatches(6);
      if (places.size() > 1) {
        std::string lines;
        for (size_t k = 0; k < std::min<size_t>(places.size(), 5); ++k) {
          lines += (k == 0 ? "" : ", ") + std::to_string(places[k] + 1);
        }
        fail("The SEARCH content matches " +
                 (places.size() > 5 ? std::string("more than 5") : std::to_string(places.size())) +
                 " places (starting at lines " + lines + (places.size() > 5 ? ", …" : "") +
                 "), so which one to change is not clear; nothing was changed for this block.\n\n"
                 "Debug Info:\n- Add :start_line: with the line where the one to change starts, "
                 "or include more of its surrounding lines in SEARCH so that it is unique",
             attempt.match, search_count);
        continue;
      }
    }

    // Re-base the replacement's indentation on the matched lines' (Kilo's rule: each replace
    // line keeps its indent relative to the search's first line, applied to the match's first).
    const int match_index = attempt.match.index;
    const int matched_count = std::min(static_cast<int>(search_lines.size()), n - match_index);
    const std::string_view matched_indent = LeadingIndent(document.line(match_index));
    const std::string_view search_base_indent = LeadingIndent(search_lines[0]);
    // A file indented with tabs, searched with spaces (as models write): levels of spaces
    // become tabs (appending spaces to a tab indent mixed them: Python's TabError).
    const int space_unit =
        SpacesPerTab(document, match_index, matched_count, search_lines, search_base_indent);
    std::vector<std::string> new_lines;
    new_lines.reserve(replace_lines.size());
    for (std::string_view line : replace_lines) {
      const std::string_view current_indent = LeadingIndent(line);
      const int relative =
          static_cast<int>(current_indent.size()) - static_cast<int>(search_base_indent.size());
      std::string out;
      if (space_unit > 0 && current_indent.find('\t') == std::string_view::npos) {
        const int tabs =
            std::max(0, static_cast<int>(matched_indent.size()) + relative / space_unit);
        out.assign(static_cast<size_t>(tabs), '\t');
        if (relative > 0) out.append(static_cast<size_t>(relative % space_unit), ' ');
      } else if (relative < 0) {
        out = std::string(matched_indent.substr(
            0,
            static_cast<size_t>(std::max(0, static_cast<int>(matched_indent.size()) + relative))));
      } else {
        out = std::string(matched_indent);
        out += current_indent.substr(search_base_indent.size());
      }
      out += Trim(line);
      new_lines.push_back(std::move(out));
    }
    delta = delta - matched_count + static_cast<int>(replace_lines.size());
    document.Splice(match_index, static_cast<int>(search_lines.size()), std::move(new_lines));
    ++outcome.applied_blocks;
  }

  std::sort(outcome.failures.begin(), outcome.failures.end(),
            [](const DiffBlockFailure& a, const DiffBlockFailure& b) { return a.block < b.block; });
  outcome.content = document.Text();
  return outcome;
}

}  // namespace lai::workspace
