// search_and_replace: replace every occurrence of a literal string or a regex (PCRE2, with
// JavaScript-style "$1"/"$&" replacements) in a file, optionally within a line range.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <memory>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "Find and replace text in a file. 'search' is a literal string unless use_regex is true "
    "(then a regular expression; the replacement may use $1, $2 … for groups and $& for the "
    "whole match). Every occurrence is replaced, optionally only within start_line..end_line. "
    "ignore_case makes the search case-insensitive. The change is shown for approval.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Path of the file, relative to the workspace"},
    "search": {"type": "string", "description": "Text or regular expression to find"},
    "replace": {"type": "string", "description": "Replacement text"},
    "use_regex": {"type": ["boolean", "null"], "description": "Treat search as a regular expression (default false)"},
    "ignore_case": {"type": ["boolean", "null"], "description": "Case-insensitive matching (default false)"},
    "start_line": {"type": ["integer", "null"], "description": "First line (1-based) to search"},
    "end_line": {"type": ["integer", "null"], "description": "Last line (inclusive) to search"}
  },
  "required": ["path", "search", "replace"],
  "additionalProperties": false
})json";

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// JavaScript String.prototype.replace substitutions: $$, $&, $`, $', $n, $nn, $<name>.
void AppendReplacement(std::string& out, std::string_view replacement, std::string_view subject,
                       const PCRE2_SIZE* ovector, uint32_t pair_count, const pcre2_code* code) {
  auto group = [&](uint32_t index) -> std::string_view {
    if (index >= pair_count || ovector[2 * index] == PCRE2_UNSET) return {};
    return subject.substr(ovector[2 * index], ovector[2 * index + 1] - ovector[2 * index]);
  };
  uint32_t capture_count = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &capture_count);
  for (size_t i = 0; i < replacement.size(); ++i) {
    char c = replacement[i];
    if (c != '$' || i + 1 == replacement.size()) {
      out += c;
      continue;
    }
    char next = replacement[i + 1];
    if (next == '$') {
      out += '$';
      ++i;
    } else if (next == '&') {
      out += group(0);
      ++i;
    } else if (next == '`') {
      out += subject.substr(0, ovector[0]);
      ++i;
    } else if (next == '\'') {
      out += subject.substr(ovector[1]);
      ++i;
    } else if (next >= '0' && next <= '9') {
      uint32_t index = static_cast<uint32_t>(next - '0');
      size_t used = 1;
      if (i + 2 < replacement.size() && replacement[i + 2] >= '0' && replacement[i + 2] <= '9') {
        uint32_t two = index * 10 + static_cast<uint32_t>(replacement[i + 2] - '0');
        if (two >= 1 && two <= capture_count) {
          index = two;
          used = 2;
        }
      }
      if (index >= 1 && index <= capture_count) {
        out += group(index);
        i += used;
      } else {
        out += c;
      }
    } else if (next == '<') {
      size_t close = replacement.find('>', i + 2);
      if (close == std::string_view::npos) {
        out += c;
        continue;
      }
      std::string name(replacement.substr(i + 2, close - i - 2));
      int number =
          pcre2_substring_number_from_name(code, reinterpret_cast<PCRE2_SPTR>(name.c_str()));
      if (number > 0) out += group(static_cast<uint32_t>(number));
      i = close;
    } else {
      out += c;
    }
  }
}

class SearchAndReplaceTool final : public ToolBase {
 public:
  SearchAndReplaceTool() : ToolBase("search_and_replace", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    Result<std::string> search = args->RequiredString("search");
    if (!search.ok()) return ErrorResult(search.error());
    Result<std::string> replace = args->RequiredString("replace");
    if (!replace.ok()) return ErrorResult(replace.error());
    Result<bool> use_regex = args->OptionalBool("use_regex", false);
    if (!use_regex.ok()) return ErrorResult(use_regex.error());
    Result<bool> ignore_case = args->OptionalBool("ignore_case", false);
    if (!ignore_case.ok()) return ErrorResult(ignore_case.error());
    Result<std::optional<int64_t>> start_line = args->OptionalInteger("start_line");
    if (!start_line.ok()) return ErrorResult(start_line.error());
    Result<std::optional<int64_t>> end_line = args->OptionalInteger("end_line");
    if (!end_line.ok()) return ErrorResult(end_line.error());
    if (search->empty()) {
      return {true, ToolErrorText("Invalid value for parameter 'search': it must not be empty.")};
    }
    int64_t first = start_line->value_or(1);
    int64_t last = end_line->value_or(INT64_MAX);
    if (first < 1 || last < first) {
      return {true, ToolErrorText("Invalid line range " + std::to_string(first) + "-" +
                                  (end_line->has_value() ? std::to_string(last) : "end") +
                                  ": lines are 1-based and end_line must not be before "
                                  "start_line.")};
    }

    // JavaScript semantics: '$' only at the very end, '.' not across lines, no multiline '^'.
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    options |= *use_regex ? PCRE2_DOLLAR_ENDONLY : PCRE2_LITERAL;
    if (*ignore_case) options |= PCRE2_CASELESS;
    // The text is searched with its line endings as '\n' (they are restored on write): the
    // search and the replacement are too (a CRLF replacement put "\r\r\n" in a CRLF file).
    std::string pattern = *search;
    pattern.erase(std::remove(pattern.begin(), pattern.end(), '\r'), pattern.end());
    if (*use_regex) {
      for (size_t at = pattern.find("\\r\\n"); at != std::string::npos;
           at = pattern.find("\\r\\n", at)) {
        pattern.replace(at, 4, "\\n");
      }
    }
    std::string replacement = *replace;
    replacement.erase(std::remove(replacement.begin(), replacement.end(), '\r'), replacement.end());
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    std::unique_ptr<pcre2_code, CodeDeleter> code(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                      &error_code, &error_offset, nullptr));
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      return {true, ToolErrorText("Invalid regular expression '" + pattern + "' at offset " +
                                  std::to_string(error_offset) + ": " +
                                  reinterpret_cast<const char*>(message) +
                                  ". Fix the pattern, or set use_regex to false to search for "
                                  "the literal text.")};
    }
    // Compiled to machine code when the platform allows (else interpreted): besides being
    // faster, the JIT handles invalid UTF-8 where it meets it, while the interpreter checks the
    // rest of the subject at every call, which made a replacement per line quadratic in the
    // file's size (20,000 lines took 19 s).
    (void)pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);

    Result<EditTarget> target = ResolveEditTarget(context, name(), *path);
    if (!target.ok()) return ErrorResult(target.error());
    const std::string& display = DisplayPath(target->path);
    if (!target->exists) {
      return {true, ToolErrorText("File not found: '" + display +
                                  "'. Check the path; to create a file use write_to_file.")};
    }
    const std::string& text = target->file.text;
    // The searched region: whole lines first..last.
    size_t region_begin = AdvanceLines(text, 0, first - 1);
    size_t region_end = AdvanceLines(text, region_begin, last - first + 1);
    std::string_view region =
        std::string_view(text).substr(region_begin, region_end - region_begin);

    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
        pcre2_match_data_create_from_pattern(code.get(), nullptr));
    std::string replaced;
    size_t copied = 0;
    size_t position = 0;
    size_t count = 0;
    while (position <= region.size()) {
      int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(region.data()), region.size(),
                           position, 0, match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        return {true, ToolErrorText(std::string("Regular expression matching failed: ") +
                                    reinterpret_cast<const char*>(message))};
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
      replaced.append(region.substr(copied, ovector[0] - copied));
      if (*use_regex) {
        AppendReplacement(replaced, replacement, region, ovector, static_cast<uint32_t>(rc),
                          code.get());
      } else {
        replaced += replacement;
      }
      copied = ovector[1];
      ++count;
      // An empty match advances by one character so the loop ends.
      position = ovector[1] > ovector[0] ? ovector[1] : ovector[1] + 1;
      while (position < region.size() &&
             (static_cast<unsigned char>(region[position]) & 0xC0) == 0x80) {
        ++position;
      }
    }
    if (count == 0) {
      std::string where = start_line->has_value() || end_line->has_value()
                              ? " within lines " + std::to_string(first) + "-" +
                                    (end_line->has_value() ? std::to_string(last) : "end")
                              : "";
      return {true, ToolErrorText("No match found for " +
                                  std::string(*use_regex ? "the regular expression '" : "'") +
                                  *search + "' in '" + display + "'" + where +
                                  ". The file was not changed. Read the file to check the exact "
                                  "text (whitespace and case matter" +
                                  (*ignore_case ? "" : " unless ignore_case is true") +
                                  "), then retry.")};
    }
    replaced.append(region.substr(copied));
    std::string new_text = text.substr(0, region_begin) + replaced + text.substr(region_end);
    if (new_text == text) {
      return {true, ToolErrorText("The replacement leaves '" + display +
                                  "' unchanged (search and replace produce the same text).")};
    }
    return CommitEdit(context, name(), *target, new_text);
  }
};

}  // namespace

std::unique_ptr<Tool> MakeSearchAndReplaceTool() {
  return std::make_unique<SearchAndReplaceTool>();
}

}  // namespace lai::agent
