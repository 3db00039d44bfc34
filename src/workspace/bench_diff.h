// Benchmark behind `lapce-ai bench tools` for apply_diff: a generated 10,000-line file, three
// SEARCH/REPLACE blocks each one word off, fuzzy threshold 0.9, with and without :start_line:
// hints, beside Kilo Code's approach (full Levenshtein DP over every window) in the same run.
// Thread-compatible (each call owns its data).
#pragma once

#include <string>

#include "base/result.h"

namespace lai::workspace {

struct DiffBenchOptions {
  int file_lines = 10000;
  int repetitions = 200;         // Runs of ApplyMultiSearchReplace per case (p50 reported).
  int baseline_repetitions = 5;  // Runs of the baseline with hints (p50 reported).
  bool run_baseline_without_hints = true;  // The slow one: measured once.
};

struct DiffBenchResult {
  int file_lines = 0;
  int blocks = 0;
  // ApplyMultiSearchReplace, threshold 0.9, medians in milliseconds.
  double hinted_p50_ms = 0;  // :start_line: hints 15-30 lines off.
  double hinted_max_ms = 0;
  double unhinted_p50_ms = 0;  // No hints: the whole file is searched.
  double unhinted_max_ms = 0;
  // Kilo Code's algorithm: string per window, normalise, O(n*m) Levenshtein, no cut-off.
  double baseline_hinted_ms = 0;    // Median of baseline_repetitions runs.
  double baseline_unhinted_ms = 0;  // One run; 0 when not run.
  // Both approaches produced the same file (and applied every block).
  bool results_match = false;
};

Result<DiffBenchResult> RunDiffBench(const DiffBenchOptions& options);

// Human-readable report lines (one per measurement, each with its baseline beside it).
std::string FormatDiffBench(const DiffBenchResult& result);

}  // namespace lai::workspace
