#include "base/strings.h"

#include <cstdint>
#include <cstdio>

namespace lai {
namespace {

// The length of the control character at text[i] (0 when there is none): C0 controls but
// newline and tab, DEL, the C1 controls (U+0080 to U+009F), and the bidirectional embedding,
// override and isolate controls (U+202A to U+202E, U+2066 to U+2069), which reorder what
// follows them on the screen ("Trojan source").
size_t ControlLengthAt(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) {
    return k < text.size() ? static_cast<unsigned char>(text[k]) : 0;
  };
  unsigned char c = byte(i);
  if (c < 0x20) return c != '\n' && c != '\t' ? 1 : 0;
  if (c == 0x7f) return 1;
  if (c == 0xc2 && byte(i + 1) >= 0x80 && byte(i + 1) <= 0x9f) return 2;
  if (c == 0xe2 && ((byte(i + 1) == 0x80 && byte(i + 2) >= 0xaa && byte(i + 2) <= 0xae) ||
                    (byte(i + 1) == 0x81 && byte(i + 2) >= 0xa6 && byte(i + 2) <= 0xa9))) {
    return 3;
  }
  return 0;
}

}  // namespace

std::string Visible(std::string_view text) {
  size_t first = 0;
  while (first < text.size() && ControlLengthAt(text, first) == 0) ++first;
  std::string out(text.substr(0, first));
  for (size_t i = first; i < text.size(); ++i) {
    size_t length = ControlLengthAt(text, i);
    if (length == 0) {
      out += text[i];
    } else if (length == 1) {
      out += '^';
      out += static_cast<char>(text[i] ^ 0x40);
    } else {
      size_t at = i;
      char32_t code = 0;
      for (size_t k = 0; k < length; ++k, ++at) {
        unsigned char b = static_cast<unsigned char>(text[at]);
        code = k == 0 ? (b & (0x7f >> length)) : (code << 6) | (b & 0x3f);
      }
      char escape[8];
      std::snprintf(escape, sizeof(escape), "\\u%04x", static_cast<unsigned>(code));
      out += escape;
      i += length - 1;
    }
  }
  return out;
}

size_t Utf8CutPosition(std::string_view text, size_t at) {
  if (at >= text.size()) return text.size();
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

namespace {

// The code point at `text[*at]`, moving *at past it; a bad byte is itself, one byte long.
char32_t NextCodePoint(std::string_view text, size_t* at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(*at);
  size_t length = first < 0x80         ? 1
                  : (first >> 5) == 6  ? 2
                  : (first >> 4) == 14 ? 3
                  : (first >> 3) == 30 ? 4
                                       : 0;
  if (length == 0 || *at + length > text.size()) {
    ++*at;
    return first;
  }
  char32_t code = length == 1 ? first : first & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(*at + i) & 0xC0) != 0x80) {
      ++*at;
      return first;
    }
    code = (code << 6) | (byte(*at + i) & 0x3f);
  }
  *at += length;
  return code;
}

size_t CodePointWidth(char32_t c) {
  if ((c >= 0x0300 && c <= 0x036f) || (c >= 0x200b && c <= 0x200f) ||
      (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe00 && c <= 0xfe0f)) {
    return 0;  // Combining marks, zero-width spaces and joiners, variation selectors.
  }
  if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
      (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
      (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
      (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
      (c >= 0x1f680 && c <= 0x1f6ff) || (c >= 0x1f7e0 && c <= 0x1f7eb) ||
      (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x1fa70 && c <= 0x1faff) ||
      (c >= 0x20000 && c <= 0x3fffd)) {
    return 2;  // East Asian wide and fullwidth forms, and emoji.
  }
  // The emoji below U+10000 that terminals draw two columns wide (East Asian Width W).
  static constexpr char32_t kWideBmpEmoji[][2] = {
      {0x231a, 0x231b}, {0x23e9, 0x23ec}, {0x23f0, 0x23f0}, {0x23f3, 0x23f3}, {0x25fd, 0x25fe},
      {0x2614, 0x2615}, {0x2648, 0x2653}, {0x267f, 0x267f}, {0x2693, 0x2693}, {0x26a1, 0x26a1},
      {0x26aa, 0x26ab}, {0x26bd, 0x26be}, {0x26c4, 0x26c5}, {0x26ce, 0x26ce}, {0x26d4, 0x26d4},
      {0x26ea, 0x26ea}, {0x26f2, 0x26f3}, {0x26f5, 0x26f5}, {0x26fa, 0x26fa}, {0x26fd, 0x26fd},
      {0x2705, 0x2705}, {0x270a, 0x270b}, {0x2728, 0x2728}, {0x274c, 0x274c}, {0x274e, 0x274e},
      {0x2753, 0x2755}, {0x2757, 0x2757}, {0x2795, 0x2797}, {0x27b0, 0x27b0}, {0x27bf, 0x27bf},
      {0x2b1b, 0x2b1c}, {0x2b50, 0x2b50}, {0x2b55, 0x2b55}};
  for (const auto& [first, last] : kWideBmpEmoji) {
    if (c >= first && c <= last) return 2;
  }
  return 1;
}

}  // namespace

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  for (size_t at = 0; at < text.size();) width += CodePointWidth(NextCodePoint(text, &at));
  return width;
}

std::string CutToWidth(std::string_view text, size_t columns) {
  if (DisplayWidth(text) <= columns) return std::string(text);
  if (columns == 0) return {};
  size_t width = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t next = at;
    size_t w = CodePointWidth(NextCodePoint(text, &next));
    if (width + w > columns - 1) break;  // One column is kept for the ellipsis.
    width += w;
    at = next;
  }
  return std::string(text.substr(0, at)) + "…";
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
