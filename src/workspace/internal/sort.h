// The order list_files prints paths in (Kilo Code's formatFilesList). Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace lai::workspace::internal {

// Compares two '/'-separated relative paths (directories end with '/') segment by segment: at
// the first differing segment a path that ends there (a file at that level) sorts before one
// that goes deeper, else the segments compare as JavaScript's localeCompare(…, {numeric: true,
// sensitivity: "base"}) does for common names (case-insensitive, digit runs by value,
// punctuation before digits before letters). A directory sorts right before its contents.
// Returns <0, 0 or >0; ties that collation calls equal are broken by bytes, so the order is
// total.
int CompareListedPaths(std::string_view a, std::string_view b);

// The collation alone, on one segment. Exposed for tests.
int CollateSegments(std::string_view a, std::string_view b);

}  // namespace lai::workspace::internal
