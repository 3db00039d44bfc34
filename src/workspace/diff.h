// apply_diff's engine: parses Kilo Code's multi-block SEARCH/REPLACE format and applies it to a
// text, exact match first, then a bounded fuzzy search. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::workspace {

struct DiffOptions {
  double fuzzy_threshold = 1.0;  // Minimum similarity (0..1] a fuzzy match needs; 1.0 = exact.
  int buffer_lines = 40;         // Lines searched either side of a :start_line: hint.
  // Bounds the similarity search (text bytes times 64-byte words of the search text): well under
  // a second here. A 40-line search over a 700,000-line file without :start_line: took minutes.
  uint64_t fuzzy_work = 100'000'000;
};

struct DiffBlockFailure {
  int block = 0;              // 1-based index of the block in the diff.
  int start_line_hint = 0;    // The block's :start_line:, 0 when it had none.
  double best_similarity = 0; // Of the closest candidate found, 0..1.
  int best_start_line = 0;    // 1-based line range of that candidate in the file, 0 if none.
  int best_end_line = 0;
  std::string message;        // The full report for the model: why, closest match, how to retry.
};

struct DiffOutcome {
  std::string content;  // The new text ('\n' line ends), with every applied block.
  int applied_blocks = 0;
  int total_blocks = 0;
  std::vector<DiffBlockFailure> failures;  // Blocks that did not apply, in diff order.
};

// One block of the format, as shown to the model (apply_diff's description, format errors).
inline constexpr std::string_view kSearchReplaceBlockFormat =
    "<<<<<<< SEARCH\n"
    ":start_line: (required) The line number of original content where the search block "
    "starts.\n"
    "-------\n"
    "[exact content to find including whitespace]\n"
    "=======\n"
    "[new content to replace with]\n"
    ">>>>>>> REPLACE\n";

// `original` uses '\n' line ends (callers normalise CRLF first and restore it after).
// Blocks apply in order with a running line offset; failed blocks are skipped and reported.
// Errors: kInvalidArgument when `diff` is not in the format (the message shows the format).
Result<DiffOutcome> ApplyMultiSearchReplace(std::string_view original, std::string_view diff,
                                            const DiffOptions& options);

// Similarity of two texts: 1 - levenshtein(a, b) / max(|a|, |b|), 1.0 for two empty texts.
// Distances count bytes (UTF-8 code units). No normalisation: callers normalise first.
double Similarity(std::string_view a, std::string_view b);

// Levenshtein distance in bytes, bit-parallel (Myers 1999 / Hyyro, 64-bit blocks).
int LevenshteinDistance(std::string_view a, std::string_view b);
// The distance when it is <= max_distance, otherwise max_distance + 1 (stops as soon as the
// distance must exceed max_distance).
int BoundedLevenshteinDistance(std::string_view a, std::string_view b, int max_distance);

// The text the matcher compares (Kilo Code's normalizeString): smart quotes to ASCII quotes,
// U+2026 to "...", em/en dashes to '-', NBSP to space, runs of whitespace to one space, trimmed.
std::string NormalizeForMatch(std::string_view text);

}  // namespace lai::workspace
