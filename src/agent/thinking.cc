#include "agent/thinking.h"

#include <algorithm>

namespace lai::agent {
namespace {

// <thinking> as Kilo Code's prompts ask for, anywhere; <think> where the reply starts, as
// reasoning models served by vLLM, llama.cpp, LM Studio or Ollama (DeepSeek-R1's distillations,
// Qwen3, QwQ) stream their thought in the text (elsewhere it is a tag the model writes about).
constexpr std::string_view kOpenTags[] = {"<thinking>", "<think>"};
constexpr std::string_view kCloseTags[] = {"</thinking>", "</think>"};

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
  if (text.find_first_not_of(" \t\r\n") != std::string_view::npos) has_begun_ = true;
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
    // Outside a thought either opening tag starts one; inside, only the closing tag of the one
    // that opened it ends it.
    size_t at = std::string_view::npos;
    size_t tag = 0;
    size_t partial = 0;
    for (size_t i = 0; i < std::size(kOpenTags); ++i) {
      if (in_thought_ && i != tag_) continue;
      if ((i == 0 && tags_ == ThoughtTags::kThink) || (i == 1 && tags_ == ThoughtTags::kThinking)) {
        continue;
      }
      const std::string_view candidate = in_thought_ ? kCloseTags[i] : kOpenTags[i];
      const bool at_start_only = !in_thought_ && i == 1;
      if (at_start_only && has_begun_) continue;
      size_t found = chunk.find(candidate);
      if (at_start_only && found != std::string_view::npos &&
          chunk.substr(0, found).find_first_not_of(" \t\r\n") != std::string_view::npos) {
        found = std::string_view::npos;
      }
      if (found < at) {
        at = found;
        tag = i;
      }
      partial = std::max(partial, PartialTagAtEnd(chunk, candidate));
    }
    if (at != std::string_view::npos) {
      Add(in_thought_, chunk.substr(0, at), out);
      chunk.remove_prefix(at + (in_thought_ ? kCloseTags[tag] : kOpenTags[tag]).size());
      in_thought_ = !in_thought_;
      tag_ = tag;
      has_begun_ = true;
      continue;
    }
    Add(in_thought_, chunk.substr(0, chunk.size() - partial), out);
    held_.assign(chunk.substr(chunk.size() - partial));
    return;
  }
}

std::optional<LeadingThink> SplitLeadingThink(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text.substr(start, kOpenTags[1].size()) != kOpenTags[1]) {
    return std::nullopt;
  }
  const size_t inner = start + kOpenTags[1].size();
  const size_t close = text.find(kCloseTags[1], inner);
  if (close == std::string_view::npos) return std::nullopt;
  return LeadingThink{std::string(text.substr(inner, close - inner)),
                      std::string(text.substr(close + kCloseTags[1].size()))};
}

void ThinkingSplitter::Finish(std::vector<Piece>& out) {
  Add(in_thought_, held_, out);
  held_.clear();
}

}  // namespace lai::agent
