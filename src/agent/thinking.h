// ThinkingSplitter: a model's streamed text, split into what it says and what it thinks. Models
// (above all those prompted for XML tool calls) reason inside <thinking>…</thinking>; Kilo Code
// deletes the tags and shows the reasoning as the answer. Reasoning models served as OpenAI-
// compatible endpoints stream theirs inside <think>…</think>. Here the text between the tags is
// shown as thought (ACP agent_thought_chunk, dimmed in editors and in `lapce-ai run`) and the tags
// themselves are not shown. The stored message keeps the text as the model wrote it.
// A tag split across chunks is held back until the next chunk says what it is. Thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lai::agent {

// Which tags a ThinkingSplitter takes for thought.
enum class ThoughtTags {
  kAll,       // <thinking> anywhere, <think> where the text starts.
  kThinking,  // <thinking> only (XML tool calls: a leading <think> was taken off before).
  kThink,     // A leading <think> only (what XML tool calls are not looked for in).
};

class ThinkingSplitter {
 public:
  explicit ThinkingSplitter(ThoughtTags tags = ThoughtTags::kAll) : tags_(tags) {}
  struct Piece {
    bool is_thought = false;
    std::string text;  // Never empty.
  };

  // Appends what `chunk` completes; adjacent pieces of one kind are merged.
  void Feed(std::string_view chunk, std::vector<Piece>& out);
  // The text ended: what was held back (the start of a tag that never finished) is shown as is.
  void Finish(std::vector<Piece>& out);

 private:
  void Add(bool is_thought, std::string_view text, std::vector<Piece>& out);

  ThoughtTags tags_;
  bool in_thought_ = false;
  size_t tag_ = 0;          // Which tag opened the thought: <thinking> (0) or <think> (1).
  bool has_begun_ = false;  // Something but blank space came (text or a tag).
  // Note: the partial-tag hold-back keeps "<think" at the end of a chunk back either way.
  std::string held_;  // The end of the last chunk, when it could be the start of a tag.
};

// A reply that starts (after blank space) with a whole <think>…</think> block: the thought and
// the text after it; nullopt for any other.
struct LeadingThink {
  std::string thought;
  std::string rest;
};
std::optional<LeadingThink> SplitLeadingThink(std::string_view text);

}  // namespace lai::agent
