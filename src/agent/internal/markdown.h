// Small Markdown helpers shared by the environment details and the session exports. Internal to
// lai::agent; thread-safe (pure functions).
#pragma once

#include <string>
#include <string_view>

namespace lai::agent::internal {

// `text` as one Markdown table cell: no line breaks, '|' escaped.
inline std::string MarkdownTableCell(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace lai::agent::internal
