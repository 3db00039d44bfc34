// Regex search over a directory, as search_files does: ripgrep (Rust regex syntax) with the
// workspace's ignore rules, results grouped by file with context lines. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "workspace/workspace.h"

namespace lai::workspace {

struct SearchOptions {
  std::string regex;
  std::string file_glob;  // e.g. "*.ts"; empty = every file.
  size_t max_results = 300;
  int context_lines = 1;
};

struct SearchLine {
  int number = 0;  // 1-based.
  std::string text;
  bool is_match = false;
};

struct SearchFileResult {
  std::string path;  // Relative to the workspace root ('/' separators).
  std::vector<SearchLine> lines;  // Matches and their context, in line order.
};

struct SearchResult {
  std::vector<SearchFileResult> files;
  size_t match_count = 0;
  bool truncated = false;  // More than max_results matches existed.
};

// Errors: kInvalidArgument (bad regex: ripgrep's message), kNotFound (dir), kUnavailable
// (ripgrep is not installed: says to install the `ripgrep` package), kIo.
Result<SearchResult> SearchFiles(const Workspace& workspace, const ResolvedPath& dir,
                                 const SearchOptions& options);

}  // namespace lai::workspace
