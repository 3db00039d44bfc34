// Stand-alone runner for the workspace benchmarks until `lapce-ai bench tools` calls
// RunWorkspaceBench: `workspace_benchmark [file_count [directory]]`.
#include <cstdio>
#include <cstdlib>

#include "workspace/bench_workspace.h"

int main(int argc, char** argv) {
  lai::workspace::WorkspaceBenchOptions options;
  if (argc > 1) options.file_count = static_cast<size_t>(std::strtoul(argv[1], nullptr, 10));
  if (argc > 2) options.directory = argv[2];
  auto result = lai::workspace::RunWorkspaceBench(options);
  if (!result.ok()) {
    std::fprintf(stderr, "bench: %s\n", result.error().ToString().c_str());
    return 1;
  }
  const auto& r = *result;
  std::printf("tree: %zu files, created in %.0f ms (median of %d runs below)\n", r.file_count,
              r.create_tree_ms, options.repetitions);
  std::printf("list_files recursive limit %zu: %8.2f ms  (%zu entries)\n", options.list_limit,
              r.list_files_ms, r.list_entries);
  std::printf("  same walk, no limit:                              %8.2f ms  (%zu entries)\n",
              r.list_all_ms, r.list_all_entries);
  std::printf("  baseline recursive_directory_iterator+file_size: %8.2f ms  (%zu files)\n",
              r.list_baseline_ms, r.list_baseline_files);
  std::printf("  rg --files:                                      %8.2f ms  (%zu files)\n",
              r.rg_files_ms, r.rg_files);
  std::printf("search_files literal: %8.2f ms  (%zu matches)\n", r.search_ms, r.search_matches);
  std::printf("  baseline read every file + std::string::find: %8.2f ms  (%zu files)\n",
              r.search_naive_ms, r.search_naive_matches);
  std::printf("  rg -F alone:                                  %8.2f ms\n", r.rg_search_ms);
  return 0;
}
