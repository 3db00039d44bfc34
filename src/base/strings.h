// Small string helpers for parsing loops.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace lai {

// Whether `text` is exactly the literal `name`. With the length a compile-time constant this
// compiles to a few inline loads; `text == "name"` on a string_view goes through
// string_view::compare and an out-of-line memcmp, which shows in loops that compare every line's
// field or every JSON key (SSE decoding, the provider stream parsers).
template <size_t N>
inline bool Equals(std::string_view text, const char (&name)[N]) {
  return text.size() == N - 1 && std::memcmp(text.data(), name, N - 1) == 0;
}

// `value` for an error message, between `quote`s: whole when short, else its first `limit` bytes
// (at a character boundary) and, after the closing quote, how long it was, so a client's 200 KB
// field never comes back in an error: "abc…" (200000 bytes).
inline std::string Clipped(std::string_view value, char quote, size_t limit = 64) {
  if (value.size() <= limit) return quote + std::string(value) + quote;
  while (limit > 0 && (static_cast<unsigned char>(value[limit]) & 0xC0) == 0x80) --limit;
  return quote + std::string(value.substr(0, limit)) + "…" + quote + " (" +
         std::to_string(value.size()) + " bytes)";
}

// `text` as a terminal should show it: control characters other than newline and tab in caret
// notation (ESC as ^[, CR as ^M, as `cat -v` shows them), UTF-8 C1 controls as \u0080 to
// \u009f and bidirectional overrides and isolates as \u202e and the like. What a model, a file or a
// command says then cannot move the cursor, recolour, retitle the window or hide text ("rm -rf x
// #\r\033[2Kls" showed as a question about running "ls").
std::string Visible(std::string_view text);

// `text` with each byte that does not begin a valid UTF-8 sequence (stray continuation bytes,
// overlong forms, surrogates, code points past U+10FFFF, cut-off sequences) replaced by U+FFFD:
// for text from outside (a piped file, a terminal in another encoding) that JSON must carry.
std::string ValidUtf8(std::string_view text);

// Where to cut `text` to keep at most `at` bytes without splitting a UTF-8 character: `at`, or the
// start of the character it falls inside (text.size() when `at` is past the end).
size_t Utf8CutPosition(std::string_view text, size_t at);

// `text` whole when it has at most `limit` bytes, else its first `limit` bytes (at a character
// boundary) followed by "…": a title or a shown argument kept to a line.
inline std::string Shortened(std::string_view text, size_t limit) {
  if (text.size() <= limit) return std::string(text);
  return std::string(text.substr(0, Utf8CutPosition(text, limit))) + "…";
}

// The columns `text` (UTF-8) takes on a terminal: East Asian wide characters and emoji take two,
// combining marks and zero-width characters none, everything else one (a bad byte counts one).
size_t DisplayWidth(std::string_view text);

// `text` cut to at most `columns` terminal columns, between characters, ending in "…" when cut.
std::string CutToWidth(std::string_view text, size_t columns);

}  // namespace lai
