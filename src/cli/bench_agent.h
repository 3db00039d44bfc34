// `lapce-ai bench agent`: start-up, ACP answers, a one-shot run, engine overhead per tool turn,
// chunk latency to an ACP client and 100 concurrent sessions, against a fake provider that
// answers at once, with the targets and baselines beside each number. Confined to the
// main thread.
#pragma once

#include "cli/commands.h"

namespace lai::cli {

// Registers `bench agent` on `bench`.
void AddBenchAgentCommand(CLI::App& bench, CommandRun& run);

}  // namespace lai::cli
