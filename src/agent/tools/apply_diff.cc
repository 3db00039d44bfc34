// apply_diff: targeted edits of an existing file with SEARCH/REPLACE blocks (Kilo Code's
// multi-search-replace format), matched exactly or fuzzily by workspace/diff.h.
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"
#include "workspace/diff.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescriptionBeforeFormat =
    "Request to apply PRECISE, TARGETED modifications to an existing file by searching for "
    "specific sections of content and replacing them. This tool is for SURGICAL EDITS ONLY - "
    "specific changes to existing code. You can perform multiple distinct search and replace "
    "operations within a single apply_diff call by providing multiple SEARCH/REPLACE blocks in "
    "the diff parameter; this is the preferred way to make several targeted changes. The SEARCH "
    "section must exactly match existing content including whitespace and indentation. If you "
    "are not confident in the exact content to search for, use the read_file tool first to get "
    "the exact content. Remember to change any closing brackets or other syntax affected by the "
    "diff farther down in the file.\n\n"
    "Diff format:\n";
constexpr std::string_view kDescriptionAfterFormat =
    "\n"
    "A line inside SEARCH or REPLACE content that is itself one of the markers must be escaped "
    "with a leading backslash: \\<<<<<<< SEARCH, \\=======, \\>>>>>>> REPLACE, \\-------. Only use "
    "a single line of '=======' between search and replacement content.";

// The description with the block format the diff engine's errors show too.
std::string_view Description() {
  static const std::string* const text = new std::string(
      std::string(kDescriptionBeforeFormat) + std::string(workspace::kSearchReplaceBlockFormat) +
      std::string(kDescriptionAfterFormat));
  return *text;
}

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Path of the file to modify, relative to the workspace"},
    "diff": {"type": "string", "description": "One or more SEARCH/REPLACE blocks: <<<<<<< SEARCH, :start_line:N, -------, the exact lines to find, =======, the new lines, >>>>>>> REPLACE"}
  },
  "required": ["path", "diff"],
  "additionalProperties": false
})json";

constexpr std::string_view kSingleBlockNotice =
    "\n<notice>Making multiple related changes in a single apply_diff is more efficient. If other "
    "changes are needed in this file, please include them as additional SEARCH/REPLACE "
    "blocks.</notice>";

std::string ErrorDetails(std::string_view text) {
  return "<error_details>\n" + std::string(text) + "\n</error_details>";
}

// The failed blocks' reports; a header names the block when the diff had several.
std::string FailureDetails(const workspace::DiffOutcome& outcome) {
  std::string out;
  for (const workspace::DiffBlockFailure& failure : outcome.failures) {
    if (!out.empty()) out += "\n\n";
    std::string text;
    if (outcome.total_blocks > 1) {
      text = "Diff block " + std::to_string(failure.block) + " of " +
             std::to_string(outcome.total_blocks) + " was not applied:\n";
    }
    out += ErrorDetails(text + failure.message);
  }
  return out;
}

size_t CountOccurrences(std::string_view text, std::string_view needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

class ApplyDiffTool final : public ToolBase {
 public:
  ApplyDiffTool() : ToolBase("apply_diff", Description(), kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    if (path->empty()) return {true, MissingParameterText("path")};
    Result<std::string> diff = args->RequiredString("diff");
    if (!diff.ok()) return ErrorResult(diff.error());
    if (diff->empty()) return {true, MissingParameterText("diff")};

    const ToolSettings& settings = context.settings;
    if (!std::isfinite(settings.diff_fuzzy_threshold) || settings.diff_fuzzy_threshold <= 0 ||
        settings.diff_fuzzy_threshold > 1 || settings.diff_buffer_lines < 0) {
      char threshold[32];
      std::snprintf(threshold, sizeof threshold, "%g", settings.diff_fuzzy_threshold);
      return {true,
              ToolErrorText("apply_diff is misconfigured: tools.diff_fuzzy_threshold must be in "
                            "(0, 1] (got " +
                            std::string(threshold) + ") and tools.diff_buffer_lines >= 0 (got " +
                            std::to_string(settings.diff_buffer_lines) +
                            "). Ask the user to fix the lapce-ai configuration.")};
    }

    Result<EditTarget> target = ResolveEditTarget(context, name(), *path);
    if (!target.ok()) return ErrorResult(target.error());
    const std::string& display = DisplayPath(target->path);
    if (!target->exists) {
      return {true, "File does not exist at path: " + display +
                        "\n\n<error_details>\nThe specified file could not be found. Please "
                        "verify the file path and try again.\n</error_details>"};
    }

    const workspace::DiffOptions options{settings.diff_fuzzy_threshold, settings.diff_buffer_lines};
    Result<workspace::DiffOutcome> outcome =
        workspace::ApplyMultiSearchReplace(target->file.text, *diff, options);
    if (!outcome.ok()) {
      return {true, "Unable to apply diff to file: " + display + "\n\n" +
                        ErrorDetails(outcome.error().message())};
    }
    if (outcome->applied_blocks == 0) {
      return {true, "Unable to apply diff to file: " + display + " (the file was not changed)\n\n" +
                        FailureDetails(*outcome)};
    }

    std::string feedback;
    if (std::optional<ToolResult> failed =
            ApproveAndWrite(context, name(), *target, outcome->content, &feedback)) {
      return *std::move(failed);
    }

    std::string text;
    if (!outcome->failures.empty()) {
      text = "But unable to apply all diff parts to file: " + display +
             ", silently use <read_file> tool to check newest file version and re-apply diffs\n";
    }
    text += FileWriteResult(display, /*is_new_file=*/false, /*feedback=*/"");
    if (CountOccurrences(*diff, "<<<<<<< SEARCH") == 1) text += kSingleBlockNotice;
    if (!outcome->failures.empty()) text += "\n\n" + FailureDetails(*outcome);
    text += ApprovedFeedbackText(feedback);
    return {false, std::move(text)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeApplyDiffTool() { return std::make_unique<ApplyDiffTool>(); }

}  // namespace lai::agent
