#include "workspace/bench_diff.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "workspace/diff.h"

namespace lai::workspace {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double Median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Ten lines per function; function k starts at line 10 * k + 1.
std::vector<std::string> FunctionLines(int k) {
  const std::string n = std::to_string(k);
  return {
      "function handler_" + n + "(request, options) {",
      "    const value_" + n + " = compute(request.id, " + n + ");",
      "    if (value_" + n + " > limit_" + std::to_string(k % 97) + ") {",
      "        logger.info(\"handler " + n + " exceeded its limit\", value_" + n + ");",
      "        return respond(request, { status: 429, retry: " + std::to_string(k % 7) + " });",
      "    }",
      "    const body = render(options.template_" + std::to_string(k % 13) + ", value_" + n + ");",
      "    return respond(request, { status: 200, body });",
      "}",
      "",
  };
}

struct BenchBlock {
  int function = 0;  // Which function the block edits.
  int hint_offset = 0;
  std::vector<std::string> search;  // Lines 2-6 of the function, one word changed.
  std::vector<std::string> replace;
};

std::vector<BenchBlock> MakeBlocks(int functions) {
  const int targets[3] = {functions / 5, functions / 2, functions * 4 / 5};
  const int offsets[3] = {15, -22, 30};
  std::vector<BenchBlock> blocks;
  for (int b = 0; b < 3; ++b) {
    BenchBlock block;
    block.function = targets[b];
    block.hint_offset = offsets[b];
    std::vector<std::string> lines = FunctionLines(block.function);
    block.search.assign(lines.begin() + 1, lines.begin() + 6);
    // The one-word difference the model got wrong: "exceeded" -> "passed".
    std::string& line = block.search[2];
    line.replace(line.find("exceeded"), 8, "passed");
    block.replace = {lines[1], "    if (value_" + std::to_string(block.function) + " > limit) {",
                     "        return respond(request, { status: 429 });", "    }"};
    blocks.push_back(std::move(block));
  }
  return blocks;
}

std::string BuildDiff(const std::vector<BenchBlock>& blocks, bool with_hints) {
  std::string diff;
  for (const BenchBlock& block : blocks) {
    diff += "<<<<<<< SEARCH\n";
    if (with_hints) {
      diff += ":start_line:" + std::to_string(block.function * 10 + 2 + block.hint_offset) + "\n";
    }
    diff += "-------\n";
    for (const std::string& line : block.search) diff += line + "\n";
    diff += "=======\n";
    for (const std::string& line : block.replace) diff += line + "\n";
    diff += ">>>>>>> REPLACE\n\n";
  }
  return diff;
}

// ---- The baseline: Kilo Code's MultiSearchReplaceDiffStrategy as written (TypeScript), here in
// C++: a new string per candidate window, normalised, classic two-row Levenshtein DP.

int DpLevenshtein(const std::string& a, const std::string& b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

double BaselineSimilarity(const std::string& original, const std::string& search) {
  const std::string a = NormalizeForMatch(original);
  const std::string b = NormalizeForMatch(search);
  if (a == b) return 1.0;
  const size_t max_length = std::max(a.size(), b.size());
  return 1.0 - static_cast<double>(DpLevenshtein(a, b)) / static_cast<double>(max_length);
}

std::string Slice(const std::vector<std::string>& lines, int begin, int count) {
  std::string out;
  const int end = std::min(static_cast<int>(lines.size()), begin + count);
  for (int i = begin; i < end; ++i) {
    if (i > begin) out += '\n';
    out += lines[i];
  }
  return out;
}

// Returns the new file, or "" when a block did not apply.
std::string BaselineApply(std::vector<std::string> lines, const std::vector<BenchBlock>& blocks,
                          bool with_hints, double threshold, int buffer) {
  int delta = 0;
  for (const BenchBlock& block : blocks) {
    const int hint = with_hints ? block.function * 10 + 2 + block.hint_offset + delta : 0;
    const int length = static_cast<int>(block.search.size());
    std::string search;
    for (int i = 0; i < length; ++i) search += (i ? "\n" : "") + block.search[i];
    int match = -1;
    int start = 0;
    int end = static_cast<int>(lines.size());
    if (hint > 0) {
      if (BaselineSimilarity(Slice(lines, hint - 1, length), search) >= threshold) {
        match = hint - 1;
      } else {
        start = std::max(0, hint - (buffer + 1));
        end = std::min(static_cast<int>(lines.size()), hint + length + buffer);
      }
    }
    if (match < 0) {
      double best = 0;
      const int mid = (start + end) / 2;
      int left = mid;
      int right = mid + 1;
      auto visit = [&](int i) {
        const double similarity = BaselineSimilarity(Slice(lines, i, length), search);
        if (similarity > best) {
          best = similarity;
          match = i;
        }
      };
      while (left >= start || right <= end - length) {
        if (left >= start) visit(left--);
        if (right <= end - length) visit(right++);
      }
      if (best < threshold) return {};
    }
    lines.erase(lines.begin() + match, lines.begin() + match + length);
    lines.insert(lines.begin() + match, block.replace.begin(), block.replace.end());
    delta += static_cast<int>(block.replace.size()) - length;
  }
  return Slice(lines, 0, static_cast<int>(lines.size()));
}

}  // namespace

Result<DiffBenchResult> RunDiffBench(const DiffBenchOptions& options) {
  if (options.file_lines < 100 || options.repetitions < 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "diff bench: file_lines must be >= 100 and repetitions >= 1");
  }
  const int functions = options.file_lines / 10;
  std::vector<std::string> lines;
  lines.reserve(static_cast<size_t>(functions) * 10);
  for (int k = 0; k < functions; ++k) {
    for (std::string& line : FunctionLines(k)) lines.push_back(std::move(line));
  }
  std::string original;
  for (const std::string& line : lines) original += line + "\n";
  lines.push_back("");  // original.split("\n") ends with the empty piece after the last '\n'.

  const std::vector<BenchBlock> blocks = MakeBlocks(functions);
  constexpr double kThreshold = 0.9;
  const DiffOptions diff_options{kThreshold, 40};
  DiffBenchResult result;
  result.file_lines = functions * 10;
  result.blocks = static_cast<int>(blocks.size());

  std::string ours[2];
  for (int hinted = 1; hinted >= 0; --hinted) {
    const std::string diff = BuildDiff(blocks, hinted == 1);
    std::vector<double> samples;
    const int repetitions = hinted ? options.repetitions : std::max(1, options.repetitions / 4);
    for (int r = 0; r < repetitions; ++r) {
      const Clock::time_point start = Clock::now();
      Result<DiffOutcome> outcome = ApplyMultiSearchReplace(original, diff, diff_options);
      samples.push_back(MillisecondsSince(start));
      if (!outcome.ok()) return std::move(outcome).error();
      if (outcome->applied_blocks != result.blocks) {
        return Error(
            ErrorCode::kInternal,
            "diff bench: only " + std::to_string(outcome->applied_blocks) + " blocks applied");
      }
      ours[hinted] = std::move(outcome->content);
    }
    (hinted ? result.hinted_p50_ms : result.unhinted_p50_ms) = Median(samples);
    (hinted ? result.hinted_max_ms : result.unhinted_max_ms) =
        *std::max_element(samples.begin(), samples.end());
  }

  std::vector<double> baseline_samples;
  std::string baseline_hinted;
  for (int r = 0; r < std::max(1, options.baseline_repetitions); ++r) {
    const Clock::time_point start = Clock::now();
    baseline_hinted = BaselineApply(lines, blocks, true, kThreshold, 40);
    baseline_samples.push_back(MillisecondsSince(start));
  }
  result.baseline_hinted_ms = Median(baseline_samples);
  result.results_match = baseline_hinted == ours[1];
  if (options.run_baseline_without_hints) {
    const Clock::time_point start = Clock::now();
    const std::string baseline_unhinted = BaselineApply(lines, blocks, false, kThreshold, 40);
    result.baseline_unhinted_ms = MillisecondsSince(start);
    result.results_match = result.results_match && baseline_unhinted == ours[0];
  }
  return result;
}

std::string FormatDiffBench(const DiffBenchResult& r) {
  char buffer[1024];
  std::snprintf(buffer, sizeof buffer,
                "apply_diff: %d-line file, %d blocks one word off, fuzzy threshold 0.9\n"
                "  hints 15-30 lines off   p50 %8.3f ms (max %7.3f)   Kilo's algorithm %9.3f ms\n"
                "  no hints                p50 %8.3f ms (max %7.3f)   Kilo's algorithm %9.3f ms%s\n"
                "  same result as Kilo's algorithm: %s\n",
                r.file_lines, r.blocks, r.hinted_p50_ms, r.hinted_max_ms, r.baseline_hinted_ms,
                r.unhinted_p50_ms, r.unhinted_max_ms, r.baseline_unhinted_ms,
                r.baseline_unhinted_ms > 0 ? " (1 run)" : " (not run)",
                r.results_match ? "yes" : "NO");
  return buffer;
}

}  // namespace lai::workspace
