#include "cli/commands.h"
#include <cstdio>
namespace lai::cli {
int BenchIpc(const Config&, const BenchIpcFlags&) { std::fprintf(stderr, "bench ipc: being written\n"); return 1; }
int BenchStress(const Config&, const BenchStressFlags&) { return 1; }
}
