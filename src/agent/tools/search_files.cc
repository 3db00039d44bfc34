// search_files: a regex search over a directory, grouped by file with context lines.
#include <algorithm>
#include <string>
#include <vector>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"
#include "workspace/search.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "Regex search across the files of a directory (recursively), showing each match with a line "
    "of context and its line number. 'regex' uses Rust regex syntax, matched within one line "
    "(no look-around or backreferences); file_pattern is an optional glob on file names such as "
    "'*.ts' or '*.{ts,tsx}' (one with a '/' is matched from the workspace root, e.g. "
    "'src/**/*.rs'). Ignored files are skipped.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Directory to search recursively, relative to the workspace"},
    "regex": {"type": "string", "description": "Regular expression (Rust syntax)"},
    "file_pattern": {"type": ["string", "null"], "description": "Optional glob limiting the files searched, e.g. '*.ts'"}
  },
  "required": ["path", "regex", "file_pattern"],
  "additionalProperties": false
})json";

// 1234567 -> "1,234,567", as Kilo Code's toLocaleString() prints counts.
std::string WithThousands(size_t number) {
  std::string digits = std::to_string(number);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

class SearchFilesTool final : public ToolBase {
 public:
  SearchFilesTool() : ToolBase("search_files", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    Result<std::string> regex = args->RequiredString("regex");
    if (!regex.ok()) return ErrorResult(regex.error());
    Result<std::optional<std::string>> pattern = args->OptionalString("file_pattern");
    if (!pattern.ok()) return ErrorResult(pattern.error());
    if (regex->empty()) {
      return {true, ToolErrorText("Invalid value for parameter 'regex': it must not be empty.")};
    }
    Result<workspace::ResolvedPath> resolved =
        ResolveToolPath(context, name(), path->empty() ? "." : *path, PathUse::kRead);
    if (!resolved.ok()) return ErrorResult(resolved.error());
    workspace::SearchOptions options;
    options.regex = *regex;
    options.file_glob = pattern->value_or("");
    options.max_results = static_cast<size_t>(std::max(1, context.settings.search_max_results));
    Result<workspace::SearchResult> found =
        workspace::SearchFiles(context.workspace, *resolved, options);
    if (!found.ok()) {
      return {true, ToolErrorText("Error searching '" + *path + "': " + found.error().message())};
    }
    std::string out;
    if (found->truncated) {
      out = "Showing first " + WithThousands(options.max_results) + " of " +
            WithThousands(options.max_results) +
            "+ results. Use a more specific search if necessary.\n\n";
    } else {
      out = "Found " +
            (found->match_count == 1 ? std::string("1 result")
                                     : WithThousands(found->match_count) + " results") +
            ".\n\n";
    }
    // ripgrep searches files in parallel; a stable order keeps results reproducible.
    std::vector<const workspace::SearchFileResult*> files;
    for (const workspace::SearchFileResult& file : found->files) files.push_back(&file);
    std::sort(files.begin(), files.end(),
              [](const auto* a, const auto* b) { return a->path < b->path; });
    for (const workspace::SearchFileResult* file_pointer : files) {
      const workspace::SearchFileResult& file = *file_pointer;
      // Context lines of a match past the cap can arrive without their match.
      if (std::none_of(file.lines.begin(), file.lines.end(),
                       [](const workspace::SearchLine& line) { return line.is_match; })) {
        continue;
      }
      out += "# " + file.path + "\n";
      int previous = 0;
      for (const workspace::SearchLine& line : file.lines) {
        if (previous != 0 && line.number != previous + 1) out += "----\n";
        previous = line.number;
        std::string number = std::to_string(line.number);
        if (number.size() < 3) out.append(3 - number.size(), ' ');
        out += number + " | ";
        std::string_view text = line.text;
        while (!text.empty() &&
               (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
          text.remove_suffix(1);
        }
        out += text;  // Long lines are cut where they were found (workspace::SearchFiles).
        out += '\n';
      }
      if (!file.lines.empty()) out += "----\n";
      out += '\n';
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return {false, std::move(out)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeSearchFilesTool() { return std::make_unique<SearchFilesTool>(); }

}  // namespace lai::agent
