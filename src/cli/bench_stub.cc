#include <cstdio>

#include "cli/commands.h"
namespace lai::cli {
int BenchStress(const Config&, const BenchStressFlags&) {
  std::fprintf(stderr, "lapce-ai bench stress: not built yet\n");
  return 1;
}
}  // namespace lai::cli
