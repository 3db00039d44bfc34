// Helpers shared by the `lapce-ai bench` subcommands: latency percentiles and report rows.
// Free functions; thread-safe (each touches only its arguments and stdout).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace lai::cli {

struct Percentiles {
  uint64_t p50 = 0;
  uint64_t p99 = 0;
  uint64_t max = 0;
};

// Sorts `samples` in place; all zero when empty.
inline Percentiles Summarize(std::vector<uint64_t>& samples) {
  if (samples.empty()) return {};
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  return {at(0.50), at(0.99), samples.back()};
}

// One aligned row of a human-readable report: name, value, note.
inline void PrintRow(const std::string& name, const std::string& value, const std::string& note) {
  std::printf("  %-34s %16s   %s\n", name.c_str(), value.c_str(), note.c_str());
}

}  // namespace lai::cli
