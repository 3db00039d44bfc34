// `lapce-ai tool list|run` and `lapce-ai bench tools`: the workspace tools outside any session,
// for users debugging them and for scripts. Confined to the main thread (the tools' command
// output callback writes to stderr from the thread that runs the tool).
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/tools/tool.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/bench_tools.h"
#include "cli/commands.h"
#include "cli/terminal.h"
#include "workspace/workspace.h"

namespace lai::cli {
namespace {

struct ToolListFlags {
  bool json = false;
};

struct ToolRunFlags {
  std::string name;
  std::string args = "{}";
  std::string cwd;
  bool yes = false;
  bool json = false;
};

std::string_view KindVerb(agent::ApprovalKind kind) {
  switch (kind) {
    case agent::ApprovalKind::kRead:
      return "read";
    case agent::ApprovalKind::kWrite:
      return "write";
    case agent::ApprovalKind::kDelete:
      return "delete";
    case agent::ApprovalKind::kOutsideWorkspace:
      return "access outside the workspace";
    case agent::ApprovalKind::kProtected:
      return "change a protected file";
    case agent::ApprovalKind::kCommand:
      return "run a command";
  }
  return "act";
}

// Approvals from the flags or the terminal; command output to stderr.
class TerminalHost : public agent::ToolHost {
 public:
  explicit TerminalHost(bool approve_all) : approve_all_(approve_all) {}

  agent::ApprovalReply Ask(const agent::ApprovalRequest& request) override {
    // Reading inside the workspace is what `tool run` is for; everything else is asked.
    if (approve_all_ || request.kind == agent::ApprovalKind::kRead) return {true, ""};
    TerminalInput tty = TerminalInput::Open();
    if (!tty.is_open()) {
      std::fprintf(stderr,
                   "lapce-ai: %s wants to %s (%s), but there is no terminal to ask; denied. Pass "
                   "--yes to approve everything the tool asks.\n",
                   request.tool.c_str(), std::string(KindVerb(request.kind)).c_str(),
                   request.target.c_str());
      return {false, ""};
    }
    std::string prompt = "\n" + request.tool + " wants to " + std::string(KindVerb(request.kind)) +
                         ": " + request.target + "\n";
    const std::string detail = agent::ApprovalText(request);
    if (!detail.empty() && detail != request.target) {
      prompt += detail;
      if (!detail.ends_with('\n')) prompt += '\n';
    }
    prompt += "Approve? [y = yes, n or Enter = no, anything else = no, with that as feedback] ";
    tty.DiscardTypeAhead();
    if (::isatty(STDERR_FILENO) == 1) {
      std::fputs(Visible(prompt).c_str(), stderr);
      std::fflush(stderr);
    } else {
      WriteAll(tty.fd(), Visible(prompt));
    }
    std::string answer = tty.ReadLine(nullptr).value_or("");
    std::string_view word = AnswerWord(answer);
    if (word == "y") return {true, ""};
    if (word == "n" || answer.find_first_not_of(" \t\r") == std::string::npos) return {false, ""};
    return {false, answer};
  }

  void OnOutput(std::string_view chunk) override {
    std::fwrite(chunk.data(), 1, chunk.size(), stderr);
    std::fflush(stderr);
  }

 private:
  static void WriteAll(int fd, std::string_view text) {
    while (!text.empty()) {
      ssize_t count = ::write(fd, text.data(), text.size());
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) return;
      text.remove_prefix(static_cast<size_t>(count));
    }
  }

  bool approve_all_;
};

std::string ToolNames() {
  std::string names;
  for (const auto& tool : agent::WorkspaceTools()) {
    if (!names.empty()) names += ", ";
    names += tool->name();
  }
  return names;
}

int ToolList(const ToolListFlags& flags) {
  if (flags.json) {
    // ordered_json keeps each schema's properties in their declared order.
    nlohmann::ordered_json tools = nlohmann::ordered_json::array();
    for (const auto& tool : agent::WorkspaceTools()) {
      tools.push_back({{"name", tool->name()},
                       {"description", tool->description()},
                       {"parameters", nlohmann::ordered_json::parse(tool->parameters_schema())}});
    }
    std::printf("%s\n", tools.dump(2).c_str());
    return 0;
  }
  for (const auto& tool : agent::WorkspaceTools()) {
    std::printf("%s\n  %s\n%s\n\n", std::string(tool->name()).c_str(),
                std::string(tool->description()).c_str(),
                std::string(tool->parameters_schema()).c_str());
  }
  return 0;
}

int ToolRun(const Config& config, const ToolRunFlags& flags) {
  const agent::Tool* tool = agent::FindWorkspaceTool(flags.name);
  if (tool == nullptr) {
    std::fprintf(stderr, "lapce-ai tool run: unknown tool '%s'; the tools are: %s\n",
                 flags.name.c_str(), ToolNames().c_str());
    return 2;
  }
  nlohmann::json parsed = nlohmann::json::parse(flags.args, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    std::fprintf(stderr,
                 "lapce-ai tool run: --args must be one JSON object, e.g. --args '{\"path\": "
                 "\"src\"}'; got: %s\n",
                 flags.args.c_str());
    return 2;
  }
  std::string root = flags.cwd;
  if (root.empty()) {
    char buffer[4096];
    if (::getcwd(buffer, sizeof buffer) == nullptr) {
      std::fprintf(stderr, "lapce-ai tool run: cannot read the current directory; pass --cwd\n");
      return 2;
    }
    root = buffer;
  }
  Result<std::shared_ptr<const workspace::Workspace>> workspace = workspace::Workspace::Open(root);
  if (!workspace.ok()) {
    std::fprintf(stderr, "lapce-ai tool run: workspace '%s': %s\n", root.c_str(),
                 workspace.error().message().c_str());
    return 2;
  }
  agent::ToolSettings settings;
  settings.read_line_limit = config.tools.read_line_limit;
  settings.diff_fuzzy_threshold = config.tools.diff_fuzzy_threshold;
  settings.diff_buffer_lines = config.tools.diff_buffer_lines;
  settings.list_files_limit = config.tools.list_files_limit;
  settings.search_max_results = config.tools.search_max_results;
  settings.command_timeout_seconds = config.tools.command_timeout_seconds;
  settings.command_output_line_limit = config.tools.command_output_line_limit;
  // Ctrl-C (or SIGTERM, SIGHUP) stops a command the tool runs, with its process group, and
  // exits; the command runs in a session of its own, which the terminal's signal never reaches.
  InterruptHandler interrupts;
  TerminalHost host(flags.yes);
  agent::ToolContext context{**workspace, settings, host};
  agent::ToolResult result = tool->Run(flags.args, context);
  if (flags.json) {
    nlohmann::json out = {{"is_error", result.is_error}, {"text", result.text}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::fwrite(result.text.data(), 1, result.text.size(), stdout);
    if (!result.text.ends_with('\n')) std::fputc('\n', stdout);
  }
  return result.is_error ? 1 : 0;
}

}  // namespace

void AddToolCommands(CLI::App& app, CLI::App& bench, CommandRun& run) {
  CLI::App* tool = app.add_subcommand(
      "tool", "Run one workspace tool as a model would, or list the tools and their schemas");
  tool->require_subcommand(1);

  auto list_flags = std::make_shared<ToolListFlags>();
  CLI::App* list = tool->add_subcommand("list", "Each tool's name, description and JSON schema");
  list->add_flag("--json", list_flags->json, "One JSON array of {name, description, parameters}");
  list->callback(
      [list_flags, &run] { run = [list_flags](const Config&) { return ToolList(*list_flags); }; });

  auto run_flags = std::make_shared<ToolRunFlags>();
  CLI::App* run_cmd = tool->add_subcommand(
      "run",
      "Run a tool and print exactly the text the model would receive (exit 0 success, 1 tool "
      "error, 2 usage error)");
  run_cmd->add_option("name", run_flags->name, "Tool name (see `lapce-ai tool list`)")->required();
  run_cmd->add_option("--args", run_flags->args, "Arguments as one JSON object (default {})");
  run_cmd->add_option("--cwd", run_flags->cwd, "Workspace root (default: the current directory)");
  run_cmd->add_flag("-y,--yes", run_flags->yes,
                    "Approve everything the tool asks (otherwise asked on the terminal)");
  run_cmd->add_flag("--json", run_flags->json, "Print {\"is_error\": …, \"text\": …}");
  run_cmd->callback([run_flags, &run] {
    run = [run_flags](const Config& config) { return ToolRun(config, *run_flags); };
  });

  auto bench_flags = std::make_shared<BenchToolsFlags>();
  CLI::App* bench_tools = bench.add_subcommand(
      "tools",
      "Workspace tools on a 100,000-file tree and a 10,000-line file: list_files, search_files, "
      "apply_diff, read_file, each beside the obvious approach and ripgrep in the same run");
  bench_tools->add_flag("--json", bench_flags->json, "Print one JSON object instead of a table");
  bench_tools->add_flag("--quick", bench_flags->quick, "A 10,000-file tree and fewer repetitions");
  bench_tools->callback([bench_flags, &run] {
    run = [bench_flags](const Config& config) { return BenchTools(config, *bench_flags); };
  });
}

}  // namespace lai::cli
