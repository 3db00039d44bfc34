// The texts models receive from tools, shaped like Kilo Code's (models are trained on them), and
// small text helpers shared by the tools. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai::agent {

// "The tool execution failed with the following error:\n<error>\n...\n</error>".
std::string ToolErrorText(std::string_view error);
// "Missing value for required parameter 'x'. Please retry with complete response." + reminder.
std::string MissingParameterText(std::string_view parameter);
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
