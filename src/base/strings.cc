#include "base/strings.h"

#include <cstdint>
#include <cstdio>

namespace lai {
namespace {

bool IsControlAt(std::string_view text, size_t i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  if (c < 0x20) return c != '\n' && c != '\t';
  if (c == 0x7f) return true;
  return c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
         static_cast<unsigned char>(text[i + 1]) <= 0x9f;
}

}  // namespace

std::string Visible(std::string_view text) {
  size_t first = 0;
  while (first < text.size() && !IsControlAt(text, first)) ++first;
  std::string out(text.substr(0, first));
  for (size_t i = first; i < text.size(); ++i) {
    if (!IsControlAt(text, i)) {
      out += text[i];
    } else if (static_cast<unsigned char>(text[i]) == 0xc2) {
      char escape[8];
      std::snprintf(escape, sizeof(escape), "\\u%04x", static_cast<unsigned char>(text[++i]));
      out += escape;
    } else {
      out += '^';
      out += static_cast<char>(text[i] ^ 0x40);
    }
  }
  return out;
}

size_t Utf8CutPosition(std::string_view text, size_t at) {
  if (at >= text.size()) return text.size();
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      out += static_cast<char>(lead);
      ++i;
      continue;
    }
    // Sequence length, the smallest code point it may encode, and the lead byte's bits.
    size_t length = 0;
    uint32_t min = 0;
    uint32_t code = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2, min = 0x80, code = lead & 0x1Fu;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, min = 0x800, code = lead & 0x0Fu;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, min = 0x10000, code = lead & 0x07u;
    }
    bool valid = length != 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3Fu);
    }
    valid = valid && code >= min && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF);
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD, for this byte; the next is looked at afresh.
      ++i;
    }
  }
  return out;
}

}  // namespace lai
