// Small string helpers for parsing loops.
#pragma once

#include <cstddef>
#include <cstring>
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

}  // namespace lai
