// `lapce-ai bench tools` (bench_tools.cc). Confined to the main thread.
#pragma once

#include "base/config.h"

namespace lai::cli {

struct BenchToolsFlags {
  bool json = false;
  bool quick = false;
};

int BenchTools(const Config& config, const BenchToolsFlags& flags);

}  // namespace lai::cli
