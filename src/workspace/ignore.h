// IgnoreRules: a gitignore-semantics matcher (globs, `**`, anchoring, directory-only patterns,
// negation, escapes) for .gitignore, .kilocodeignore/.rooignore and the protected-path list.
// Immutable after the Add* calls; thread-compatible (const methods may be called concurrently).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lai::workspace {

// What the last matching rule says about one path.
enum class IgnoreMatch { kNone, kIgnored, kIncluded };

class IgnoreRules {
 public:
  // Adds the rules of one gitignore-format file. `base` is the directory the file lives in,
  // relative to the paths later passed to Match/IsIgnored ('/'-separated, "" for the top).
  void AddPatterns(std::string_view text, std::string_view base = "");
  // Records a file the rules came from (for tools that take an ignore file, like ripgrep).
  void AddSourceFile(std::string path) { source_files_.push_back(std::move(path)); }

  // The verdict of the last rule matching exactly this path (its parents are not consulted).
  // `relative` is '/'-separated without a leading or trailing '/'.
  IgnoreMatch Match(std::string_view relative, bool is_directory) const;

  // Full gitignore semantics: the path is ignored when one of its parent directories is (a file
  // cannot be re-included below an excluded directory) or when its own last matching rule
  // ignores it.
  bool IsIgnored(std::string_view relative, bool is_directory) const;

  bool empty() const { return rules_.empty(); }
  bool has_directory_only_rules() const { return has_directory_only_rules_; }
  const std::vector<std::string>& source_files() const { return source_files_; }

 private:
  struct Rule {
    std::string pattern;  // Glob, without the '!', leading '/' and trailing '/'.
    std::string base;     // Directory of the file the rule came from; "" for the top.
    bool is_negated = false;
    bool is_directory_only = false;
    bool is_anchored = false;  // Had a '/' before its end: matched against the whole path.
  };

  std::vector<Rule> rules_;
  std::vector<std::string> source_files_;
  bool has_directory_only_rules_ = false;
};

// Matches `text` against one gitignore glob: `*` and `?` never match '/', `[...]` classes
// (with `!`/`^` negation and ranges), `\` escapes, and `**` as a whole segment matching any
// number of directories. Exposed for tests.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace lai::workspace
