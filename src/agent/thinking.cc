#include "agent/thinking.h"

#include <algorithm>

namespace lai::agent {
namespace {

constexpr std::string_view kOpen = "<thinking>";
constexpr std::string_view kClose = "</thinking>";

// The length of the longest end of `text` that is a proper beginning of `tag`.
size_t PartialTagAtEnd(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

void ThinkingSplitter::Add(bool is_thought, std::string_view text, std::vector<Piece>& out) {
  if (text.empty()) return;
  if (!out.empty() && out.back().is_thought == is_thought) {
    out.back().text.append(text);
  } else {
    out.push_back({is_thought, std::string(text)});
  }
}

void ThinkingSplitter::Feed(std::string_view chunk, std::vector<Piece>& out) {
  std::string joined;
  if (!held_.empty()) {
    joined = std::move(held_);
    held_.clear();
    joined.append(chunk);
    chunk = joined;
  }
  while (!chunk.empty()) {
    const std::string_view tag = in_thought_ ? kClose : kOpen;
    const size_t at = chunk.find(tag);
    if (at != std::string_view::npos) {
      Add(in_thought_, chunk.substr(0, at), out);
      chunk.remove_prefix(at + tag.size());
      in_thought_ = !in_thought_;
      continue;
    }
    const size_t partial = PartialTagAtEnd(chunk, tag);
    Add(in_thought_, chunk.substr(0, chunk.size() - partial), out);
    held_.assign(chunk.substr(chunk.size() - partial));
    return;
  }
}

void ThinkingSplitter::Finish(std::vector<Piece>& out) {
  Add(in_thought_, held_, out);
  held_.clear();
}

}  // namespace lai::agent
