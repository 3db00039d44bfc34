#include "base/strings.h"

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

}  // namespace lai
