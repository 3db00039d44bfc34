// @-mentions in a user's prompt: `@/path/file`, `@/dir/` and `@git-changes` are expanded into
// blocks appended after the text, as Kilo Code does. Pure functions over the workspace (and, for
// @git-changes, one git child process); thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "agent/tools/tool.h"
#include "workspace/workspace.h"

namespace lai::agent {

// Returns `text` with each recognised mention replaced by a pointer to its block, and the blocks
// appended after it (each mention once, in order of first appearance):
//   `@/a/b.cc` → 'a/b.cc' (see below for file content)   + <file_content path="a/b.cc">
//   `@/src/`   → 'src/' (see below for folder content)   + <folder_content path="src/">
//   `@git-changes` → Working directory changes (see below for details) + <git_working_state>
// A mention starts at the beginning of the text or after whitespace, is not preceded by '\',
// may contain "\ " for a space, and ends before whitespace (one trailing . , ; : ! ? is not part
// of it). Paths are relative to the workspace root even with the leading '/'. File contents are
// numbered like read_file and cut at settings.read_line_limit; binary files, paths blocked by
// .kilocodeignore, missing paths and paths outside the workspace get a note inside the block
// instead of content — never an error. @terminal, @problems, URLs and commit hashes are not
// supported and stay as they are.
std::string ExpandMentions(std::string_view text, const workspace::Workspace& workspace,
                           const ToolSettings& settings);

// The mention of a workspace path ("@/sub\ dir/a.txt" for "sub dir/a.txt"), for front ends
// that turn links to files into mentions; empty when the mention syntax cannot spell the path
// (other whitespace in it, or a last character of punctuation that would be left out).
std::string MentionOf(std::string_view relative_path);

}  // namespace lai::agent
