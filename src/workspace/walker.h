// Listing files the way list_files does: default excludes, .gitignore files (nested, negations,
// directory-only and anchored patterns), the workspace's blocking rules; never reads file
// contents. Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "workspace/workspace.h"

namespace lai::workspace {

struct ListOptions {
  bool recursive = false;
  size_t limit = 200;  // Entries returned at most; `truncated` says there were more.
  // Kilo Code can show files .kilocodeignore blocks with a lock (showRooIgnoredFiles): when
  // true they are listed (blocked directories are not entered) and the caller marks them with
  // Workspace::IsBlocked; when false they are left out.
  bool include_blocked = false;
};

struct ListResult {
  // Paths relative to the listed directory; directories end with '/'. Sorted as Kilo Code
  // sorts list_files output (directories before their contents, then by path segments).
  std::vector<std::string> entries;
  bool truncated = false;
};

// Errors: kNotFound, kInvalidArgument (not a directory), kIo.
Result<ListResult> ListFiles(const Workspace& workspace, const ResolvedPath& dir,
                             const ListOptions& options);

// True for the directories a recursive listing does not enter (it shows them): node_modules,
// .git, build outputs (dist, build, out, target, __pycache__, .venv, …) — the list lives in
// walker.cc. Searches skip only what .gitignore and the blocking rules say (as Kilo Code's):
// a Go project's pkg/ or a package's dist/ is code.
bool IsDefaultExcludedDirectory(std::string_view name);

}  // namespace lai::workspace
