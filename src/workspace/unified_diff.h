// Unified diffs of two texts (Myers' O(ND) line diff, hunks with context lines), for approval
// prompts and edit reports. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai::workspace {

// `before` and `after` are '\n' texts. Returns "--- a/<path>\n+++ b/<path>\n" and one
// "@@ -a,b +c,d @@" hunk per group of changes (groups closer than 2 * context_lines merge), every
// line ending in '\n'; a last line without a newline is followed by "\ No newline at end of file".
// Empty when the texts are equal. The diff is minimal unless more than max_edit_lines lines
// change, then the changed region is shown as one deletion and one insertion.
std::string UnifiedDiff(std::string_view path, std::string_view before, std::string_view after,
                        int context_lines = 3, int max_edit_lines = 4000);

}  // namespace lai::workspace
