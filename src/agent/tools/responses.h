// The texts models receive from tools, shaped like Kilo Code's (models are trained on them), and
// small text helpers shared by the tools. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai::agent {

// "The tool execution failed with the following error:\n<error>\n...\n</error>".
std::string ToolErrorText(std::string_view error);
// How a tool is called, reminded to a model that got it wrong: native function calls, and tags
// in the text (--tool-protocol xml).
inline constexpr std::string_view kNativeToolUseReminder =
    "# Reminder: Instructions for Tool Use\n\n"
    "Call the tool again with a complete arguments object: every required parameter of the "
    "tool's schema, each with a value of the type the schema gives.";
inline constexpr std::string_view kXmlToolUseReminder =
    "# Reminder: Instructions for Tool Use\n\n"
    "A tool is called with XML tags in your response: the tool's name is the outer tag, and each "
    "parameter is a tag of its own inside it, holding the value:\n\n"
    "<tool_name>\n<parameter_name>value</parameter_name>\n</tool_name>\n\n"
    "For example, to finish the task:\n\n"
    "<attempt_completion>\n<result>\nWhat was done.\n</result>\n</attempt_completion>\n\n"
    "Use the tool's own name as the tag, and give every required parameter.";
// "Missing value for required parameter 'x'. Please retry with complete response." + the
// native reminder.
std::string MissingParameterText(std::string_view parameter);
// `text` with the native reminder in it, if any, replaced by the XML one.
std::string ForXmlToolUse(std::string text);
// Access to a .kilocodeignore'd path.
std::string BlockedPathText(std::string_view path);
// "The user denied this operation." (+ the feedback block when there is feedback).
std::string DeniedText(std::string_view feedback);
// The result of an operation whose approval the user cancelled (with the turn) before answering.
std::string_view ApprovalCancelledText();
// Appended to a result when the user approved with words: "\n\nThe user approved ... <feedback>".
std::string ApprovedFeedbackText(std::string_view feedback);

// Appends `text` ('\n'-separated lines, no trailing newline expected) as "N | line\n" lines
// numbered from `first_line`, the numbers right-aligned to `width` digits. No per-line allocation.
void AppendNumberedLines(std::string& out, std::string_view text, int64_t first_line, int width);
int DecimalWidth(int64_t number);

// Keeps the first 20% and last 80% of `line_limit` lines with a "[...N lines omitted...]" line
// between them, as Kilo Code's truncateOutput does; unchanged when within the limit (or limit<=0).
std::string TruncateOutputLines(std::string_view text, int line_limit);

}  // namespace lai::agent
