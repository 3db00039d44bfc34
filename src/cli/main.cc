// lapce-ai: the command-line entry point. Parses flags with CLI11, loads the configuration,
// and runs one subcommand.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/log.h"
#include "cli/commands.h"

#ifndef LAI_VERSION
#define LAI_VERSION "0.0.0"
#endif

namespace {

int ConfigShow(const lai::Config& c) {
  std::printf(
      "# %s\n",
      c.file.empty()
          ? ("no file at " + lai::DefaultConfigPath() + ": defaults and the environment").c_str()
          : ("from " + c.file).c_str());
  std::fputs(lai::FormatConfigValues(c).c_str(), stdout);  // Every key, from the key table.
  std::fputs(lai::FormatProfiles(c).c_str(), stdout);      // Never a key's or header's value.
  std::fputs(lai::cli::DescribeProfilesInUse(c).c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // On the heap: freed once parsed (below), so a long-running command does not keep the option
  // tables of every subcommand resident.
  auto app_owner = std::make_unique<CLI::App>(
      "lapce-ai: a native AI coding engine that runs beside your editor.\n"
      "Editors connect over shared memory (the C ABI in include/lapce_ai/client.h).",
      "lapce-ai");
  CLI::App& app = *app_owner;
  app.set_version_flag("--version", std::string("lapce-ai ") + LAI_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  lai::ConfigSources sources;
  std::string log_level;
  app.add_option("--config", sources.file,
                 "Configuration file (default: " + lai::DefaultConfigPath() + ")");
  app.add_option("--set", sources.overrides,
                 "Override a configuration key, e.g. --set ipc.ring_bytes=2048 (repeatable; "
                 "see `lapce-ai config keys`)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  // The picked subcommand stores its body here (from its CLI11 callback); see commands.h.
  lai::cli::CommandRun run;
  lai::cli::BadConfigRun on_bad_config;
  auto runs = [&run](lai::cli::CommandRun body) { return [&run, body] { run = body; }; };

  lai::cli::ServeFlags serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Run the engine's IPC server in the foreground (Ctrl-C stops it gracefully)");
  serve_cmd->add_option("--socket", serve.socket,
                        "Socket path (default: <ipc.runtime_dir>/engine.sock)");
  lai::cli::AddProviderFlags(*serve_cmd, serve.provider);
  lai::cli::AddAgentModeFlags(*serve_cmd, serve.agent);
  serve_cmd->add_flag("--yes,-y", serve.yes,
                      "Agent sessions approve every tool call without asking");
  serve_cmd
      ->add_option("--metrics-addr", serve.metrics_addr,
                   "Serve Prometheus metrics at http://ADDR/metrics; empty disables "
                   "(default 127.0.0.1:9464)")
      ->each([&](const std::string&) { serve.metrics_addr_set = true; });
  serve_cmd->add_option("--ready-fd", serve.ready_fd, "Write 'ready' to this fd once serving")
      ->group("");
  serve_cmd->callback(runs([&serve](const lai::Config& c) { return lai::cli::Serve(c, serve); }));

  lai::cli::PingFlags ping;
  CLI::App* ping_cmd =
      app.add_subcommand("ping", "Round-trip to a running server and report latency");
  ping_cmd->add_option("--socket", ping.socket, "Socket path of the server");
  ping_cmd->add_option("-n,--count", ping.count, "Number of echo round trips")
      ->check(CLI::Range(1, 10'000'000));
  ping_cmd->add_option("--bytes", ping.payload_bytes, "Echo payload size")
      ->check(CLI::Range(0, 1 << 24));
  ping_cmd->callback(runs([&ping](const lai::Config& c) { return lai::cli::Ping(c, ping); }));

  CLI::App* bench_cmd = app.add_subcommand("bench", "Measure the engine");
  bench_cmd->require_subcommand(1);
  lai::cli::BenchIpcFlags bench_ipc;
  CLI::App* bench_ipc_cmd = bench_cmd->add_subcommand(
      "ipc",
      "Shared-memory transport: latency, throughput, 1000 connections, reconnect, memory, "
      "allocations, with Unix-socket and Node.js baselines measured in the same run");
  bench_ipc_cmd->add_flag("--json", bench_ipc.json, "Print one JSON object instead of a table");
  bench_ipc_cmd->add_flag("--quick", bench_ipc.quick, "Fewer samples (finishes in under 20 s)");
  bench_ipc_cmd->callback(
      runs([&bench_ipc](const lai::Config& c) { return lai::cli::BenchIpc(c, bench_ipc); }));
  lai::cli::BenchStressFlags bench_stress;
  CLI::App* bench_stress_cmd = bench_cmd->add_subcommand(
      "stress",
      "Stress the transport: 1 connection bomb, 2 buffer exhaustion, 3 latency under "
      "load, 4 leak detection, 5 chaos");
  bench_stress_cmd->add_option("--level", bench_stress.level, "Stress level 1-5")
      ->check(CLI::Range(1, 5));
  bench_stress_cmd->add_flag("--quick", bench_stress.quick, "Scaled down (for CI)");
  bench_stress_cmd->callback(runs(
      [&bench_stress](const lai::Config& c) { return lai::cli::BenchStress(c, bench_stress); }));

  CLI::App* config_cmd = app.add_subcommand("config", "Show configuration");
  config_cmd->require_subcommand(1);
  // The key reference is what fixes a configuration that does not load: printed whatever the
  // file holds, with the file's problem after it.
  config_cmd->add_subcommand("keys", "List every configuration key")->callback([&] {
    run = [](const lai::Config&) {
      std::fputs(lai::DescribeKeys().c_str(), stdout);
      return 0;
    };
    on_bad_config = [](const lai::Error& error) {
      std::fputs(lai::DescribeKeys().c_str(), stdout);
      std::fprintf(stderr, "lapce-ai config keys: note: the configuration does not load: %s\n",
                   error.message().c_str());
      return 0;
    };
  });
  config_cmd->add_subcommand("show", "Print the effective configuration")
      ->callback(runs(ConfigShow));

  // Command groups defined in their own files (see commands.h).
  lai::cli::AddLlmCommands(app, *bench_cmd, run, on_bad_config);
  lai::cli::AddAgentCommands(app, *bench_cmd, run, on_bad_config);
  lai::cli::AddToolCommands(app, *bench_cmd, run);

  // `lapce-ai help [COMMAND…]`: what --help prints, for those who type it as git's.
  std::vector<std::string> help_topic;
  CLI::App* help_cmd =
      app.add_subcommand("help", "Show the help of lapce-ai or of a command (help sessions list)");
  help_cmd->add_option("command", help_topic, "The command, with its subcommands");
  help_cmd->callback([&] {
    CLI::App* about = &app;
    std::string path = "lapce-ai";
    for (const std::string& word : help_topic) {
      CLI::App* next = nullptr;
      for (CLI::App* sub : about->get_subcommands({})) {
        if (sub->get_name() == word) next = sub;
      }
      if (next == nullptr) {
        std::string rest = path.substr(std::string_view("lapce-ai").size());
        std::fprintf(stderr,
                     "lapce-ai help: '%s' has no command '%s'; `lapce-ai help%s` lists its "
                     "commands\n",
                     path.c_str(), word.c_str(), rest.c_str());
        run = [](const lai::Config&) { return 2; };
        on_bad_config = [](const lai::Error&) { return 2; };
        return;
      }
      about = next;
      path += " " + word;
    }
    std::fputs(about->help().c_str(), stdout);
    run = [](const lai::Config&) { return 0; };
    on_bad_config = [](const lai::Error&) { return 0; };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 checks for a missing subcommand before it looks at words it did not know, so
    // `lapce-ai nosuch` would be told only that a subcommand is required.
    if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr &&
        app.get_subcommands().empty() && !app.remaining().empty()) {
      std::fprintf(stderr,
                   "lapce-ai: '%s' is not a command or option; run lapce-ai --help for the "
                   "list\n",
                   app.remaining().front().c_str());
      return 2;
    }
    // `acp` as an editor starts it, with arguments it does not take (a typo, another version's
    // flag): answered as a configuration that does not load is, so the editor shows why.
    if (error.get_exit_code() != 0 && app.get_subcommand("acp")->parsed()) {
      return lai::cli::AcpWithBadArguments(error.what());
    }
    // --help and --version print and succeed; every usage error exits 2, as documented.
    int status = app.exit(error);
    return status == 0 ? 0 : 2;
  }
  app_owner.reset();

  if (!log_level.empty()) sources.overrides.push_back("log.level=" + log_level);
  lai::Result<lai::Config> config = lai::LoadConfig(sources);
  if (!config.ok()) {
    if (on_bad_config) return on_bad_config(config.error());
    std::fprintf(stderr, "lapce-ai: configuration: %s\n", config.error().message().c_str());
    return 2;
  }
  if (lai::Status s = lai::log::Init({config->log.level, config->log.file}); !s.ok()) {
    std::fprintf(stderr, "lapce-ai: logging: %s\n", s.error().message().c_str());
    return 2;
  }

  int status = run ? run(*config) : 1;
  // A full disk or a closed file behind stdout: the output is not all there, so the command
  // failed, and says so (it exited 0 with an empty file).
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    int error = errno;
    if (error != EPIPE) {
      std::fprintf(stderr, "lapce-ai: cannot write the output: %s\n", std::strerror(error));
    }
    if (status == 0) status = 1;
  }
  return status;
}
