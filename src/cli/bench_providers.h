// `lapce-ai bench providers`: the provider stack's decoding throughput, the latency the engine
// adds between a provider chunk and its IPC frame (1 and 200 streams), and memory per idle stream.
// Confined to the main thread.
#pragma once

#include "cli/commands.h"

namespace lai::cli {

// Registers `bench providers` on `bench`.
void AddBenchProvidersCommand(CLI::App& bench, CommandRun& run);

}  // namespace lai::cli
