#include "workspace/internal/sort.h"

#include <cstdint>

namespace lai::workspace::internal {
namespace {

// ICU's root collation puts punctuation and symbols in this order, before digits and letters.
constexpr std::string_view kPunctuationOrder = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Primary weight of one byte: punctuation < digits < letters (case folded) < other bytes.
uint32_t Weight(unsigned char c) {
  if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
  if (c >= 'a' && c <= 'z') return 0x300 + c;
  if (c >= 0x80) return 0x400 + c;
  size_t position = kPunctuationOrder.find(static_cast<char>(c));
  if (position != std::string_view::npos) return 0x100 + static_cast<uint32_t>(position);
  if (IsDigit(static_cast<char>(c))) return 0x200 + c;
  return 0x80 + c;  // Control bytes, and anything else, first.
}

}  // namespace

int CollateSegments(std::string_view a, std::string_view b) {
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (IsDigit(a[i]) && IsDigit(b[j])) {
      size_t a_end = i;
      size_t b_end = j;
      while (a_end < a.size() && IsDigit(a[a_end])) ++a_end;
      while (b_end < b.size() && IsDigit(b[b_end])) ++b_end;
      size_t a_start = i;
      size_t b_start = j;
      while (a_start + 1 < a_end && a[a_start] == '0') ++a_start;
      while (b_start + 1 < b_end && b[b_start] == '0') ++b_start;
      size_t a_length = a_end - a_start;
      size_t b_length = b_end - b_start;
      if (a_length != b_length) return a_length < b_length ? -1 : 1;
      int compared = a.substr(a_start, a_length).compare(b.substr(b_start, b_length));
      if (compared != 0) return compared < 0 ? -1 : 1;
      i = a_end;
      j = b_end;
      continue;
    }
    uint32_t a_weight = Weight(static_cast<unsigned char>(a[i]));
    uint32_t b_weight = Weight(static_cast<unsigned char>(b[j]));
    if (a_weight != b_weight) return a_weight < b_weight ? -1 : 1;
    ++i;
    ++j;
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}

int CompareListedPaths(std::string_view a, std::string_view b) {
  size_t a_pos = 0;
  size_t b_pos = 0;
  while (true) {
    size_t a_end = a.find('/', a_pos);
    size_t b_end = b.find('/', b_pos);
    bool a_is_last = a_end == std::string_view::npos;
    bool b_is_last = b_end == std::string_view::npos;
    std::string_view a_segment =
        a.substr(a_pos, a_is_last ? std::string_view::npos : a_end - a_pos);
    std::string_view b_segment =
        b.substr(b_pos, b_is_last ? std::string_view::npos : b_end - b_pos);
    if (a_segment != b_segment) {
      if (a_is_last && !b_is_last) return -1;
      if (b_is_last && !a_is_last) return 1;
      int collated = CollateSegments(a_segment, b_segment);
      if (collated != 0) return collated;
      return a_segment < b_segment ? -1 : 1;
    }
    if (a_is_last || b_is_last) {
      if (a_is_last == b_is_last) return 0;
      return a_is_last ? -1 : 1;  // The shorter path first.
    }
    a_pos = a_end + 1;
    b_pos = b_end + 1;
  }
}

}  // namespace lai::workspace::internal
