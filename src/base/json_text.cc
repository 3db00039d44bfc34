#include "base/json_text.h"

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lai {
namespace {

// Which bytes of a little-endian 8-byte word must be escaped in a JSON string (control bytes,
// '"', '\\'): the lowest set 0x80 bit marks the first such byte exactly (higher marks may be
// false); zero when there is none. Eight bytes per step where the text needs no escape.
uint64_t EscapeMarks(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  auto zero_bytes = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  return ((word - kOnes * 0x20) & ~word & kHighs) | zero_bytes(word ^ (kOnes * '"')) |
         zero_bytes(word ^ (kOnes * '\\'));
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const char* at = text.data();
  const char* const end = at + text.size();
  const char* run = at;
  while (at < end) {
    if (std::endian::native == std::endian::little && end - at >= 8) {
      uint64_t word;
      std::memcpy(&word, at, sizeof word);
      uint64_t marks = EscapeMarks(word);
      if (marks == 0) {
        at += 8;
        continue;
      }
      at += std::countr_zero(marks) / 8;
    }
    unsigned char c = static_cast<unsigned char>(*at);
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++at;
      continue;
    }
    out.append(run, static_cast<size_t>(at - run));
    run = ++at;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(run, static_cast<size_t>(end - run));
  out += '"';
}

double RoundForJson(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.12g", value);
  return std::strtod(text, nullptr);
}

}  // namespace lai
