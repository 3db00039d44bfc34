// Benchmarks behind `lapce-ai bench tools`: a generated 100,000-file tree, list_files and
// search_files on it, each beside the obvious approach and ripgrep itself in the same run.
// Thread-compatible (each call owns its tree).
#pragma once

#include <string>

#include "base/result.h"

namespace lai::workspace {

struct WorkspaceBenchOptions {
  size_t file_count = 100000;
  std::string directory;    // Where to build the tree; empty: a fresh directory in $TMPDIR,
                            // removed afterwards. A directory holding a finished tree from an
                            // earlier run (marker file .lai-bench-tree) is reused as is.
  size_t list_limit = 200;  // list_files' default limit.
  int repetitions = 5;      // Each timing is the median of this many runs.
};

struct WorkspaceBenchResult {
  size_t file_count = 0;  // Files generated.
  double create_tree_ms = 0;

  // (a) Recursive list_files with the limit.
  double list_files_ms = 0;
  size_t list_entries = 0;
  double list_baseline_ms = 0;  // std::filesystem::recursive_directory_iterator + file_size()
                                // of every file (what a naive walker does).
  size_t list_baseline_files = 0;
  double list_all_ms = 0;  // The same walk without a limit (every entry, sorted).
  size_t list_all_entries = 0;
  double rg_files_ms = 0;  // `rg --files` over the tree (ripgrep's own walk).
  size_t rg_files = 0;

  // (b) search_files for a literal present in a few hundred files.
  double search_ms = 0;
  size_t search_matches = 0;
  double search_naive_ms = 0;  // Read every file, std::string::find.
  size_t search_naive_matches = 0;
  double rg_search_ms = 0;  // `rg --count-matches -F literal` alone.
};

// Writes a realistic tree: src/pkg_*/mod_*/ sources, a .gitignore excluding generated/, and a
// node_modules/ directory; about one file in 300 contains the benchmark's literal.
Status CreateBenchTree(const std::string& directory, size_t file_count);

Result<WorkspaceBenchResult> RunWorkspaceBench(const WorkspaceBenchOptions& options);

}  // namespace lai::workspace
