// write_to_file: create or overwrite a whole file, refusing content that is evidently truncated.
#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "Write complete content to a file, creating it (and its directories) if needed or replacing "
    "it entirely. Always give the COMPLETE intended content without omissions or placeholders "
    "such as '// rest of code unchanged', and give line_count, the number of lines in content. "
    "For changes to part of an existing file prefer apply_diff.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Path of the file, relative to the workspace"},
    "content": {"type": "string", "description": "The complete content of the file"},
    "line_count": {"type": "integer", "description": "Number of lines in content, counting empty lines"}
  },
  "required": ["path", "content", "line_count"],
  "additionalProperties": false
})json";

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t position = 0;
  while (true) {
    size_t newline = text.find('\n', position);
    if (newline == std::string_view::npos) {
      if (position < text.size()) lines.push_back(text.substr(position));
      break;
    }
    lines.push_back(text.substr(position, newline - position));
    position = newline + 1;
  }
  return lines;
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Kilo Code's omission check: a comment line, absent from the original file, whose words include
// one of the placeholder words models use when they elide code.
std::optional<std::string> FindOmissionComment(std::string_view original, std::string_view text) {
  static constexpr std::string_view kCommentStarts[] = {"//", "#", "/*", "{/*", "<!--", "*", "--"};
  static constexpr std::string_view kKeywords[] = {"remain",   "remains",   "unchanged", "rest",
                                                   "previous", "existing",  "same",      "...",
                                                   "omitted",  "unmodified"};
  std::vector<std::string_view> original_lines = SplitLines(original);
  for (std::string_view line : SplitLines(text)) {
    std::string_view trimmed = line;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
      trimmed.remove_prefix(1);
    }
    bool is_comment =
        std::any_of(std::begin(kCommentStarts), std::end(kCommentStarts),
                    [&](std::string_view start) { return trimmed.starts_with(start); });
    if (!is_comment || trimmed.size() > 100) continue;
    std::string lower = ToLower(trimmed);
    // Words split on whitespace and comment punctuation, so "...existing" counts as "existing".
    std::vector<std::string> words;
    std::string word;
    for (char c : lower) {
      bool is_separator = c == ' ' || c == '\t' || c == '/' || c == '*' || c == '#' || c == '<' ||
                          c == '>' || c == '!' || c == '{' || c == '}' || c == '-' || c == ',' ||
                          c == ':' || c == '(' || c == ')';
      if (is_separator) {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word += c;
      }
    }
    if (!word.empty()) words.push_back(word);
    bool has_keyword = false;
    bool mentions_code = false;
    for (std::string& w : words) {
      if (w.size() > 3 && w.starts_with("...")) {
        has_keyword = true;
        w = w.substr(3);
      }
      if (w.size() > 3 && w.ends_with("...")) {
        has_keyword = true;
        w.resize(w.size() - 3);
      }
      for (std::string_view keyword : kKeywords) has_keyword |= w == keyword;
      mentions_code |= w == "code" || w == "unchanged" || w == "..." || w == "implementation" ||
                       w == "content" || w == "omitted" || w == "methods" || w == "functions";
    }
    if (!has_keyword || !mentions_code) continue;
    if (std::find(original_lines.begin(), original_lines.end(), line) != original_lines.end()) {
      continue;
    }
    return std::string(trimmed);
  }
  return std::nullopt;
}

// Strips a markdown code fence that wraps the whole content, as models sometimes wrap a file in
// one: an opening fence line and a closing one of the same backticks, with no such fence line
// between them. A fence that is the file's own is kept: when the model's line_count counts the
// fence lines, when fences pair up inside, and in a Markdown file unless the opening fence names
// no language or Markdown.
std::string StripCodeFence(std::string content, std::string_view path,
                           std::optional<int64_t> line_count) {
  if (!content.starts_with("```")) return content;
  const size_t ticks = content.find_first_not_of('`');
  const std::string fence(ticks == std::string::npos ? content.size() : ticks, '`');
  std::string_view view = content;
  while (!view.empty() && (view.back() == '\n' || view.back() == ' ')) view.remove_suffix(1);
  const size_t first_newline = content.find('\n');
  if (first_newline == std::string::npos || !view.ends_with(fence)) return content;
  const size_t closing = view.rfind('\n', view.size() - fence.size());
  if (closing == std::string_view::npos || closing < first_newline ||
      view.substr(closing + 1) != fence) {
    return content;
  }
  std::string_view inner = view.substr(first_newline + 1, closing + 1 - (first_newline + 1));
  for (std::string_view line : SplitLines(inner)) {
    size_t indent = line.find_first_not_of(" \t");
    if (indent != std::string_view::npos && line.substr(indent).starts_with(fence)) return content;
  }
  if (line_count && *line_count == static_cast<int64_t>(SplitLines(content).size())) {
    return content;
  }
  std::string_view language =
      std::string_view(content).substr(fence.size(), first_newline - fence.size());
  while (!language.empty() && (language.back() == ' ' || language.back() == '\t')) {
    language.remove_suffix(1);
  }
  const size_t dot = path.rfind('.');
  std::string extension = dot == std::string_view::npos ? "" : ToLower(path.substr(dot + 1));
  const bool is_markdown = extension == "md" || extension == "markdown" || extension == "mdx" ||
                           extension == "mdc" || extension == "qmd" || extension == "rmd";
  if (is_markdown && !language.empty() && ToLower(language) != "markdown" &&
      ToLower(language) != "md") {
    return content;
  }
  return std::string(inner);
}

// "  12 | code" on every non-empty line means the model copied read_file output.
bool EveryLineHasLineNumber(const std::vector<std::string_view>& lines) {
  static const std::regex kNumbered(R"(^\s*\d+ \| ?)");
  if (lines.empty()) return false;
  return std::all_of(lines.begin(), lines.end(), [](std::string_view line) {
    return std::regex_search(line.begin(), line.end(), kNumbered);
  });
}

std::string StripLineNumbers(const std::vector<std::string_view>& lines) {
  static const std::regex kNumbered(R"(^\s*\d+ \| ?)");
  std::string out;
  for (std::string_view line : lines) {
    std::match_results<std::string_view::const_iterator> match;
    std::regex_search(line.begin(), line.end(), match, kNumbered);
    out.append(line.substr(static_cast<size_t>(match.length(0))));
    out += '\n';
  }
  return out;
}

class WriteToFileTool final : public ToolBase {
 public:
  WriteToFileTool() : ToolBase("write_to_file", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    Result<std::string> content = args->RequiredString("content");
    if (!content.ok()) return ErrorResult(content.error());
    Result<std::optional<int64_t>> line_count = args->OptionalInteger("line_count");
    if (!line_count.ok()) return ErrorResult(line_count.error());

    Result<EditTarget> target = ResolveEditTarget(context, name(), *path);
    if (!target.ok()) return ErrorResult(target.error());

    std::string text = *content;
    // A byte-order mark the model wrote is the file's, not a character of its first line (a
    // file that has one would get two).
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    const bool has_bom = text.starts_with(kBom);
    if (has_bom) text.erase(0, kBom.size());
    // CRLF from the model becomes LF; the file's own line ending is restored on write. A new
    // file written with CRLF throughout (a .bat) keeps it.
    const size_t newlines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    size_t crlf = 0;
    for (size_t at = text.find("\r\n"); at != std::string::npos; at = text.find("\r\n", at + 2)) {
      ++crlf;
    }
    if (!target->exists) {
      target->file.has_bom = has_bom;
      if (newlines > 0 && crlf == newlines) target->file.line_ending = workspace::LineEnding::kCrlf;
    }
    text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
    text = StripCodeFence(std::move(text), *path, *line_count);
    std::vector<std::string_view> lines = SplitLines(text);
    if (EveryLineHasLineNumber(lines)) {
      text = StripLineNumbers(lines);
      lines = SplitLines(text);
    }
    const std::string& display = DisplayPath(target->path);
    int64_t actual = static_cast<int64_t>(lines.size());
    if (line_count->has_value() && actual < **line_count) {
      return {true,
              ToolErrorText("Content appears to be truncated: line_count is " +
                            std::to_string(**line_count) + " but the content has " +
                            std::to_string(actual) + " lines, so '" + display +
                            "' was not written. Your response may have exceeded your output limit. "
                            "Retry with the complete content and a correct line_count, or, for an "
                            "existing file, make targeted changes with apply_diff; for a long new "
                            "file, write a first part with write_to_file and add the rest with "
                            "insert_content.")};
    }
    // Over an existing file's text (what the comment stands for would be lost), or for a long
    // new (or empty) file, as Kilo Code checks: in a short new file such a comment is the
    // author's (a two-line file with "# Keep existing code paths working" was refused).
    const int64_t predicted = line_count->value_or(actual);
    std::optional<std::string> comment;
    const bool replaces_text = target->exists && !target->file.text.empty();
    if (replaces_text || predicted >= 100) {
      comment = FindOmissionComment(target->exists ? target->file.text : "", text);
    }
    if (comment) {
      return {true,
              ToolErrorText("Content appears to be truncated: found a comment indicating omitted "
                            "code ('" +
                            *comment + "'), so '" + display +
                            "' was not written. Provide the full file content without any "
                            "omissions, or use apply_diff to change only part of the file.")};
    }
    if (!text.empty() && text.back() != '\n' && target->exists &&
        target->file.text.ends_with('\n')) {
      text += '\n';
    }
    return CommitEdit(context, name(), *target, text);
  }
};

}  // namespace

std::unique_ptr<Tool> MakeWriteToFileTool() { return std::make_unique<WriteToFileTool>(); }

}  // namespace lai::agent
