#include "workspace/ignore.h"

namespace lai::workspace {
namespace {

// Matches a bracket expression starting at pattern[*index] == '['. On return *index points past
// the closing ']'. Returns false in *is_valid when the class never closes (then '[' is literal).
bool MatchClass(std::string_view pattern, size_t* index, char c, bool* is_valid) {
  size_t i = *index + 1;
  bool is_negated = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    is_negated = true;
    ++i;
  }
  bool is_matched = false;
  bool is_first = true;
  while (i < pattern.size() && (pattern[i] != ']' || is_first)) {
    is_first = false;
    unsigned char low = static_cast<unsigned char>(pattern[i]);
    if (pattern[i] == '\\' && i + 1 < pattern.size())
      low = static_cast<unsigned char>(pattern[++i]);
    unsigned char high = low;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      i += 2;
      high = static_cast<unsigned char>(pattern[i]);
      if (pattern[i] == '\\' && i + 1 < pattern.size())
        high = static_cast<unsigned char>(pattern[++i]);
    }
    unsigned char value = static_cast<unsigned char>(c);
    if (value >= low && value <= high) is_matched = true;
    ++i;
  }
  if (i >= pattern.size()) {
    *is_valid = false;
    return false;
  }
  *is_valid = true;
  *index = i + 1;
  return is_matched != is_negated;
}

bool MatchFrom(std::string_view p, size_t pi, std::string_view s, size_t si) {
  while (pi < p.size()) {
    char pc = p[pi];
    if (pc == '*') {
      bool is_double = pi + 1 < p.size() && p[pi + 1] == '*';
      bool starts_segment = pi == 0 || p[pi - 1] == '/';
      if (is_double && starts_segment && (pi + 2 == p.size() || p[pi + 2] == '/')) {
        if (pi + 2 == p.size()) return true;  // Trailing "**": everything below.
        // "**/": zero or more whole directories.
        size_t rest = pi + 3;
        if (MatchFrom(p, rest, s, si)) return true;
        for (size_t k = si; k < s.size(); ++k) {
          if (s[k] == '/' && MatchFrom(p, rest, s, k + 1)) return true;
        }
        return false;
      }
      // A plain '*' (or a "**" inside a segment, which acts the same): anything but '/'.
      while (pi < p.size() && p[pi] == '*') ++pi;
      if (pi == p.size()) return s.find('/', si) == std::string_view::npos;
      for (size_t k = si; k <= s.size(); ++k) {
        if (MatchFrom(p, pi, s, k)) return true;
        if (k == s.size() || s[k] == '/') break;
      }
      return false;
    }
    if (si >= s.size()) return false;
    if (pc == '?') {
      if (s[si] == '/') return false;
      ++pi;
      ++si;
      continue;
    }
    if (pc == '[') {
      if (s[si] == '/') return false;
      size_t next = pi;
      bool is_valid = false;
      bool is_matched = MatchClass(p, &next, s[si], &is_valid);
      if (is_valid) {
        if (!is_matched) return false;
        pi = next;
        ++si;
        continue;
      }
      // An unclosed '[' is a literal character.
    }
    if (pc == '\\' && pi + 1 < p.size()) pc = p[++pi];
    if (pc != s[si]) return false;
    ++pi;
    ++si;
  }
  return si == s.size();
}

// Strips trailing unescaped spaces (gitignore: "Trailing spaces are ignored unless they are
// quoted with backslash").
std::string_view TrimTrailingSpaces(std::string_view line) {
  while (!line.empty() && line.back() == ' ') {
    size_t backslashes = 0;
    for (size_t i = line.size() - 1; i > 0 && line[i - 1] == '\\'; --i) ++backslashes;
    if (backslashes % 2 == 1) break;  // "\ " keeps the space.
    line.remove_suffix(1);
  }
  return line;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  return MatchFrom(pattern, 0, text, 0);
}

void IgnoreRules::AddPatterns(std::string_view text, std::string_view base) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = TrimTrailingSpaces(line);
    if (line.empty() || line[0] == '#') continue;

    Rule rule;
    rule.base = std::string(base);
    if (line[0] == '!') {
      rule.is_negated = true;
      line.remove_prefix(1);
    } else if (line.size() >= 2 && line[0] == '\\' && (line[1] == '!' || line[1] == '#')) {
      line.remove_prefix(1);  // "\!x" and "\#x" name files starting with '!' or '#'.
    }
    if (!line.empty() && line.back() == '/' &&
        !(line.size() >= 2 && line[line.size() - 2] == '\\')) {
      rule.is_directory_only = true;
      line.remove_suffix(1);
    }
    if (line.find('/') != std::string_view::npos) rule.is_anchored = true;
    while (!line.empty() && line[0] == '/') line.remove_prefix(1);
    if (line.empty()) continue;
    rule.pattern = std::string(line);
    if (rule.is_directory_only) has_directory_only_rules_ = true;
    rules_.push_back(std::move(rule));
    if (end == text.size()) break;
  }
}

IgnoreMatch IgnoreRules::Match(std::string_view relative, bool is_directory) const {
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    const Rule& rule = *it;
    if (rule.is_directory_only && !is_directory) continue;
    std::string_view path = relative;
    if (!rule.base.empty()) {
      if (path.size() <= rule.base.size() || path.substr(0, rule.base.size()) != rule.base ||
          path[rule.base.size()] != '/') {
        continue;
      }
      path.remove_prefix(rule.base.size() + 1);
    }
    if (!rule.is_anchored) {
      size_t slash = path.rfind('/');
      if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
    }
    if (GlobMatch(rule.pattern, path)) {
      return rule.is_negated ? IgnoreMatch::kIncluded : IgnoreMatch::kIgnored;
    }
  }
  return IgnoreMatch::kNone;
}

bool IgnoreRules::IsIgnored(std::string_view relative, bool is_directory) const {
  if (rules_.empty() || relative.empty()) return false;
  for (size_t slash = relative.find('/'); slash != std::string_view::npos;
       slash = relative.find('/', slash + 1)) {
    if (Match(relative.substr(0, slash), true) == IgnoreMatch::kIgnored) return true;
  }
  return Match(relative, is_directory) == IgnoreMatch::kIgnored;
}

}  // namespace lai::workspace
