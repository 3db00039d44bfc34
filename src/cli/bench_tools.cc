// `lapce-ai bench tools`: each workspace tool through Tool::Run with JSON arguments (the path a
// model's call takes), beside the obvious approach and ripgrep, measured in the same run.
#include "cli/bench_tools.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "agent/tools/tool.h"
#include "cli/bench_util.h"
#include "workspace/bench_diff.h"
#include "workspace/bench_workspace.h"
#include "workspace/workspace.h"

namespace lai::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kLiteral = "needle_benchmark_7f3a";  // What CreateBenchTree plants.

class ApproveAll : public agent::ToolHost {
 public:
  agent::ApprovalReply Ask(const agent::ApprovalRequest&) override { return {true, ""}; }
};

double MedianMs(int repetitions, const std::function<void()>& body) {
  std::vector<double> samples;
  for (int i = 0; i < std::max(1, repetitions); ++i) {
    Clock::time_point start = Clock::now();
    body();
    samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

std::string Ms(double value) {
  char text[32];
  std::snprintf(text, sizeof text, value < 10 ? "%.3f ms" : "%.1f ms", value);
  return text;
}

struct Row {
  std::string name;
  double ms = 0;
  double target_ms = 0;
  std::string baseline_name;
  double baseline_ms = 0;
  std::string extra;  // e.g. "rg --files: 140 ms"
};

// Runs `tool` with `args` `repetitions` times; fails loudly when the tool reports an error.
Result<double> TimeTool(const agent::Tool& tool, std::string_view args, agent::ToolContext& context,
                        int repetitions, size_t* text_bytes) {
  Status status;
  double ms = MedianMs(repetitions, [&] {
    agent::ToolResult result = tool.Run(args, context);
    if (result.is_error) status = Error(ErrorCode::kInternal, result.text.substr(0, 400));
    *text_bytes = result.text.size();
  });
  RETURN_IF_ERROR(status);
  return ms;
}

// A 10,000-line source file and a diff of three one-word changes with :start_line: hints 15-30
// lines off, or none.
std::string DiffFile(int lines) {
  std::string text;
  for (int i = 0; i < lines; i += 10) {
    int k = i / 10;
    text += "function compute_" + std::to_string(k) + "(input, options) {\n";
    text += "  const scale = options.scale ?? " + std::to_string(k % 7 + 1) + ";\n";
    text += "  let total = 0;\n";
    text += "  for (const item of input) {\n";
    text += "    total += item.value * scale;\n";
    text += "  }\n";
    text += "  log(\"compute_" + std::to_string(k) + " finished\", total);\n";
    text += "  return total;\n";
    text += "}\n\n";
  }
  return text;
}

std::string DiffArgs(const std::string& path, int lines, bool hinted) {
  std::string diff;
  int targets[] = {lines / 5, lines / 2, lines * 4 / 5};
  int offsets[] = {15, -22, 30};
  for (int b = 0; b < 3; ++b) {
    int k = targets[b] / 10;
    int start = k * 10 + 1;
    diff += "<<<<<<< SEARCH\n";
    if (hinted) diff += ":start_line:" + std::to_string(start + offsets[b]) + "\n";
    diff += "-------\n";
    // One word differs from the file ("totals" for "total"): a fuzzy match at threshold 0.9.
    diff += "function compute_" + std::to_string(k) + "(input, options) {\n";
    diff += "  const scale = options.scale ?? " + std::to_string(k % 7 + 1) + ";\n";
    diff += "  let totals = 0;\n";
    diff += "  for (const item of input) {\n";
    diff += "    total += item.value * scale;\n";
    diff += "=======\n";
    diff += "function compute_" + std::to_string(k) + "(input, options = {}) {\n";
    diff += "  const scale = options.scale ?? " + std::to_string(k % 7 + 1) + ";\n";
    diff += "  let total = 0;\n";
    diff += "  for (const item of input ?? []) {\n";
    diff += "    total += item.value * scale;\n";
    diff += ">>>>>>> REPLACE\n";
  }
  nlohmann::json args = {{"path", path}, {"diff", diff}};
  return args.dump();
}

}  // namespace

int BenchTools(const Config& config, const BenchToolsFlags& flags) {
  (void)config;
  const size_t file_count = flags.quick ? 10000 : 100000;
  const int repetitions = flags.quick ? 3 : 5;
  std::string tmp = fs::temp_directory_path().string() + "/lai-bench-tools-XXXXXX";
  if (::mkdtemp(tmp.data()) == nullptr) {
    std::fprintf(stderr, "lapce-ai bench tools: cannot create a temporary directory\n");
    return 1;
  }
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } cleanup{tmp};
  std::string tree = tmp + "/tree";
  std::string files = tmp + "/files";
  fs::create_directories(files);

  auto fail = [](const Error& error) {
    std::fprintf(stderr, "lapce-ai bench tools: %s\n", error.message().c_str());
    return 1;
  };

  if (!flags.json) std::printf("Generating a %zu-file tree ...\n", file_count);
  // The substrate's benchmark builds the tree and measures the baselines (a walk stat-ing every
  // file, read-every-file grep, ripgrep) on it; the tree is kept for the tool runs below.
  workspace::WorkspaceBenchOptions tree_options;
  tree_options.file_count = file_count;
  tree_options.directory = tree;
  tree_options.repetitions = repetitions;
  Result<workspace::WorkspaceBenchResult> substrate = workspace::RunWorkspaceBench(tree_options);
  if (!substrate.ok()) return fail(substrate.error());

  ApproveAll host;
  agent::ToolSettings settings;
  std::vector<Row> rows;
  nlohmann::json report = {{"files", file_count}, {"quick", flags.quick}};

  {
    Result<std::shared_ptr<const workspace::Workspace>> ws = workspace::Workspace::Open(tree);
    if (!ws.ok()) return fail(ws.error());
    agent::ToolContext context{**ws, settings, host};
    size_t bytes = 0;
    // list_files recursive, default limit 200.
    Result<double> list_ms =
        TimeTool(*agent::FindWorkspaceTool("list_files"), R"({"path": ".", "recursive": true})",
                 context, repetitions, &bytes);
    if (!list_ms.ok()) return fail(list_ms.error());
    // Kilo Code's way: walk every file and read it (to count its characters).
    size_t walked = 0;
    double walk_read_ms = MedianMs(repetitions, [&] {
      walked = 0;
      std::error_code error;
      std::string content;
      for (auto it = fs::recursive_directory_iterator(tree, error);
           it != fs::recursive_directory_iterator(); it.increment(error)) {
        if (error) break;
        if (!it->is_regular_file(error)) continue;
        std::ifstream in(it->path(), std::ios::binary);
        content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        ++walked;
      }
    });
    rows.push_back({"list_files recursive", *list_ms, 300, "walk reading every file", walk_read_ms,
                    "rg --files " + Ms(substrate->rg_files_ms) + ", stat-only walk " +
                        Ms(substrate->list_baseline_ms)});
    report["list_files_ms"] = *list_ms;
    report["list_walk_read_ms"] = walk_read_ms;
    report["list_walk_stat_ms"] = substrate->list_baseline_ms;
    report["rg_files_ms"] = substrate->rg_files_ms;

    std::string search_args = R"({"path": ".", "regex": ")" + std::string(kLiteral) + "\"}";
    Result<double> search_ms = TimeTool(*agent::FindWorkspaceTool("search_files"), search_args,
                                        context, repetitions, &bytes);
    if (!search_ms.ok()) return fail(search_ms.error());
    rows.push_back({"search_files literal", *search_ms, 1000, "read every file + find",
                    substrate->search_naive_ms, "rg -F " + Ms(substrate->rg_search_ms)});
    report["search_files_ms"] = *search_ms;
    report["search_naive_ms"] = substrate->search_naive_ms;
    report["rg_search_ms"] = substrate->rg_search_ms;
  }

  Result<std::shared_ptr<const workspace::Workspace>> ws = workspace::Workspace::Open(files);
  if (!ws.ok()) return fail(ws.error());
  // apply_diff: the real tool on a 10,000-line file (read, match, write), threshold 0.9.
  if (const agent::Tool* apply_diff = agent::FindWorkspaceTool("apply_diff")) {
    workspace::DiffBenchOptions diff_options;
    diff_options.repetitions = flags.quick ? 20 : 200;
    diff_options.baseline_repetitions = flags.quick ? 1 : 3;
    Result<workspace::DiffBenchResult> baseline = workspace::RunDiffBench(diff_options);
    if (!baseline.ok()) return fail(baseline.error());
    agent::ToolSettings diff_settings;
    diff_settings.diff_fuzzy_threshold = 0.9;
    agent::ToolContext context{**ws, diff_settings, host};
    const std::string original = DiffFile(10000);
    for (bool hinted : {true, false}) {
      std::string args = DiffArgs("big.js", 10000, hinted);
      std::vector<double> samples;
      for (int i = 0; i < (flags.quick ? 10 : 50); ++i) {
        std::ofstream(files + "/big.js", std::ios::binary) << original;
        Clock::time_point start = Clock::now();
        agent::ToolResult result = apply_diff->Run(args, context);
        samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (result.is_error || result.text.find("But unable") != std::string::npos) {
          return fail(Error(ErrorCode::kInternal, "apply_diff: " + result.text.substr(0, 600)));
        }
      }
      std::sort(samples.begin(), samples.end());
      double ms = samples[samples.size() / 2];
      double kilo_ms = hinted ? baseline->baseline_hinted_ms : baseline->baseline_unhinted_ms;
      rows.push_back(
          {hinted ? "apply_diff 3 blocks, hints 15-30 off" : "apply_diff 3 blocks, no hints", ms,
           hinted ? 2.0 : 20.0, "full Levenshtein DP per window", kilo_ms,
           "engine alone " + Ms(hinted ? baseline->hinted_p50_ms : baseline->unhinted_p50_ms)});
      report[hinted ? "apply_diff_hinted_ms" : "apply_diff_unhinted_ms"] = ms;
      report[hinted ? "apply_diff_hinted_baseline_ms" : "apply_diff_unhinted_baseline_ms"] =
          kilo_ms;
    }
  } else {
    rows.push_back({"apply_diff (tool not built)", 0, 0, "", 0, "skipped"});
  }

  // read_file of a 1 MB file, whole (read_line_limit -1), numbered.
  {
    std::string text;
    for (int i = 0; text.size() < (1 << 20); ++i) {
      text += "    const value_" + std::to_string(i) + " = compute(input, " + std::to_string(i) +
              "); // line\n";
    }
    std::ofstream(files + "/big.txt", std::ios::binary) << text;
    agent::ToolSettings read_settings;
    read_settings.read_line_limit = -1;
    agent::ToolContext context{**ws, read_settings, host};
    size_t bytes = 0;
    Result<double> read_ms =
        TimeTool(*agent::FindWorkspaceTool("read_file"), R"({"files": [{"path": "big.txt"}]})",
                 context, flags.quick ? 10 : 50, &bytes);
    if (!read_ms.ok()) return fail(read_ms.error());
    size_t naive_bytes = 0;
    double naive_ms = MedianMs(flags.quick ? 10 : 50, [&] {
      std::ifstream in(files + "/big.txt");
      std::ostringstream out;
      std::string line;
      int number = 1;
      while (std::getline(in, line)) out << number++ << " | " << line << "\n";
      naive_bytes = out.str().size();
    });
    rows.push_back({"read_file 1 MB (whole file)", *read_ms, 5, "getline + ostringstream", naive_ms,
                    std::to_string(bytes) + " bytes out"});
    report["read_file_ms"] = *read_ms;
    report["read_file_naive_ms"] = naive_ms;
  }

  if (flags.json) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  std::printf(
      "lapce-ai bench tools: %zu-file tree, medians; each through Tool::Run with JSON args\n",
      file_count);
  std::printf("  %-38s %10s %8s   %-32s %10s   %s\n", "operation", "lapce-ai", "target",
              "obvious approach", "time", "also");
  for (const Row& row : rows) {
    char target[32] = "";
    if (row.target_ms > 0) {
      std::snprintf(target, sizeof target, "%s<=%g", row.ms <= row.target_ms ? "" : "MISS ",
                    row.target_ms);
    }
    std::printf("  %-38s %10s %8s   %-32s %10s   %s\n", row.name.c_str(), Ms(row.ms).c_str(),
                target, row.baseline_name.c_str(),
                row.baseline_ms > 0 ? Ms(row.baseline_ms).c_str() : "-", row.extra.c_str());
  }
  return 0;
}

}  // namespace lai::cli
