// The lapce-ai subcommands. Each returns the process exit status. Confined to the main thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "cli/provider_flags.h"

namespace CLI {
class App;
}

namespace lai::cli {

// Command groups register their subcommands on `app`; the one the user picked stores its body in
// `run` (from a CLI11 callback), and main() calls it with the loaded configuration.
using CommandRun = std::function<int(const Config& config)>;
// A command that reports a configuration that failed to load itself (doctor) stores that here;
// otherwise main() prints the error and exits 2.
using BadConfigRun = std::function<int(const Error& error)>;
// Add one line per group to main.cc, e.g. `AddToolCommands(app, *bench_cmd, run);` with
// `void AddToolCommands(CLI::App& app, CLI::App& bench, CommandRun& run);` declared below.

// `tool list`, `tool run` and `bench tools` (tool_commands.cc).
void AddToolCommands(CLI::App& app, CLI::App& bench, CommandRun& run);

// `run`, `acp` and `sessions …` (agent_commands.cc). `acp` answers `initialize` even when the
// configuration does not load (on_bad_config), and gives the problem to every session request.
void AddAgentCommands(CLI::App& app, CLI::App& bench, CommandRun& run, BadConfigRun& on_bad_config);
// `acp` given arguments it does not take: answers `initialize` and refuses every session with
// `message` (what the argument parser said).
int AcpWithBadArguments(const std::string& message);

// For `config show`: the profiles made from the environment when the file names none (as comment
// lines: which provider, model and URL, where the key comes from, never the key), or why the
// profiles do not load; "" when the file's profiles are the ones in use.
std::string DescribeProfilesInUse(const Config& config);

// `complete`, `models`, `doctor` and `bench providers` (llm_commands.cc).
void AddLlmCommands(CLI::App& app, CLI::App& bench, CommandRun& run, BadConfigRun& on_bad_config);

struct ServeFlags {
  ProviderFlags provider;  // For completions and agent sessions.
  AgentModeFlags agent;    // For agent sessions.
  bool yes = false;        // Agent sessions approve every tool call.
  std::string socket;  // Empty: <runtime_dir>/<socket_name>.
  std::string metrics_addr;
  bool metrics_addr_set = false;
  int ready_fd = -1;  // Write "ready\n" here once serving (used by benchmarks and tests).
};
int Serve(const Config& config, const ServeFlags& flags);

struct PingFlags {
  std::string socket;
  int count = 10;
  int payload_bytes = 64;
};
int Ping(const Config& config, const PingFlags& flags);

struct BenchIpcFlags {
  bool json = false;
  bool quick = false;
};
int BenchIpc(const Config& config, const BenchIpcFlags& flags);

struct BenchStressFlags {
  int level = 1;
  bool quick = false;
};
int BenchStress(const Config& config, const BenchStressFlags& flags);

// <runtime_dir>/<socket_name>, or `override` when non-empty.
std::string SocketPath(const Config& config, const std::string& override_path);

}  // namespace lai::cli
