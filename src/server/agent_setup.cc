#include "server/agent_setup.h"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/store.h"
#include "llm/pool.h"

namespace lai::server {
namespace {

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    size_t first = item.find_first_not_of(' ');
    size_t last = item.find_last_not_of(' ');
    if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
    start = comma + 1;
  }
  return items;
}

}  // namespace

void ApproveEverything(agent::AutoApproveSettings& approvals) {
  approvals.enabled = true;
  approvals.read = approvals.read_outside_workspace = true;
  approvals.write = approvals.write_outside_workspace = approvals.write_protected = true;
  approvals.delete_files = approvals.execute = true;
  approvals.mode_switch = approvals.subtasks = approvals.mcp = true;
  approvals.allowed_commands = {"*"};
  approvals.substitutions = true;
}

agent::AgentSettings AgentSettingsFromConfig(const Config& config) {
  agent::AgentSettings settings;
  const Config::Tools& tools = config.tools;
  settings.tools.read_line_limit = tools.read_line_limit;
  settings.tools.read_byte_limit = static_cast<size_t>(tools.read_byte_limit);
  settings.tools.diff_fuzzy_threshold = tools.diff_fuzzy_threshold;
  settings.tools.diff_buffer_lines = tools.diff_buffer_lines;
  settings.tools.list_files_limit = tools.list_files_limit;
  settings.tools.search_max_results = tools.search_max_results;
  settings.tools.command_timeout_seconds = tools.command_timeout_seconds;
  settings.tools.command_output_line_limit = tools.command_output_line_limit;

  const Config::Agent& agent = config.agent;
  settings.default_mode = agent.mode;
  if (agent.tool_protocol == "native") settings.tool_protocol = agent::ToolProtocol::kNative;
  if (agent.tool_protocol == "xml") settings.tool_protocol = agent::ToolProtocol::kXml;
  settings.mistake_limit = agent.mistake_limit;
  settings.max_requests_per_turn = agent.max_requests_per_turn;
  settings.condense_threshold_percent = agent.condense_threshold_percent;
  settings.auto_condense = agent.auto_condense == "on";
  settings.custom_instructions = agent.custom_instructions;

  agent::AutoApproveSettings& approvals = settings.approvals;
  approvals.read = false;  // The list says exactly what is approved.
  for (const std::string& category : SplitList(config.approvals.auto_approve)) {
    if (category == "all") ApproveEverything(approvals);
    if (category == "read") approvals.read = true;
    if (category == "read_outside") approvals.read_outside_workspace = true;
    if (category == "write") approvals.write = true;
    if (category == "write_outside") approvals.write_outside_workspace = true;
    if (category == "write_protected") approvals.write_protected = true;
    if (category == "delete") approvals.delete_files = true;
    if (category == "execute") approvals.execute = true;
    if (category == "mode_switch") approvals.mode_switch = true;
    if (category == "subtasks") approvals.subtasks = true;
    if (category == "mcp") approvals.mcp = true;
  }
  if (config.approvals.auto_approve.find("all") == std::string::npos) {
    approvals.allowed_commands = SplitList(config.approvals.allowed_commands);
  }
  approvals.denied_commands = SplitList(config.approvals.denied_commands);
  approvals.max_requests = config.approvals.max_requests;
  approvals.max_cost_usd = config.approvals.max_cost_usd;

  if (!config.directory.empty()) {
    std::filesystem::path directory(config.directory);
    settings.global_modes_file = (directory / "modes.yaml").string();
    settings.global_rules_dir = (directory / "rules").string();
  }
  return settings;
}

Result<std::vector<McpServerConfig>> UserMcpServers(const Config& config) {
  if (config.directory.empty()) return std::vector<McpServerConfig>();
  return LoadMcpSettings((std::filesystem::path(config.directory) / "mcp.json").string());
}

AgentStack::~AgentStack() {
  engine.reset();  // Sessions first: they use the pool and the store.
  pool.reset();
  store.reset();
}

LazyAgentStack::LazyAgentStack(Factory factory, bool build_now) : factory_(std::move(factory)) {
  if (!build_now) return;
  is_started_ = true;
  thread_ = std::thread([this] { Build(); });
}

LazyAgentStack::~LazyAgentStack() {
  if (thread_.joinable()) thread_.join();
}

void LazyAgentStack::Build() {
  Result<std::unique_ptr<AgentStack>> built = factory_();
  std::lock_guard lock(mutex_);
  if (built.ok()) {
    stack_ = std::move(*built);
  } else {
    error_ = std::move(built).error();
  }
  is_done_ = true;
  built_.notify_all();
}

Result<agent::Engine*> LazyAgentStack::Get() {
  std::unique_lock lock(mutex_);
  if (!is_started_) {
    is_started_ = true;
    lock.unlock();
    Build();
    lock.lock();
  }
  built_.wait(lock, [this] { return is_done_; });
  if (error_) return *error_;
  return stack_->engine.get();
}

void KeepKeysFromOtherProcesses() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    spdlog::warn("cannot keep other processes from reading this one's memory: {}",
                 std::strerror(errno));
  }
}

Result<std::unique_ptr<AgentStack>> MakeAgentStack(std::unique_ptr<llm::ProviderPool> pool,
                                                   agent::AgentSettings settings,
                                                   const std::string& store_path) {
  auto stack = std::make_unique<AgentStack>();
  stack->pool = std::move(pool);
  // The agent's commands do not see the variables its keys came from (nor any provider's
  // usual key variable), nor this process's environment (/proc/$PPID/environ) where they are.
  KeepKeysFromOtherProcesses();
  std::vector<std::string>& hidden = settings.tools.hidden_env;
  auto hide = [&](std::string variable) {
    if (std::find(hidden.begin(), hidden.end(), variable) == hidden.end()) {
      hidden.push_back(std::move(variable));
    }
  };
  for (std::string& variable : llm::DefaultKeyVariables()) hide(std::move(variable));
  for (const llm::ProfileInfo& profile : stack->pool->Profiles()) {
    constexpr std::string_view kFromEnv = "env ";
    if (profile.api_key_source.starts_with(kFromEnv)) {
      hide(profile.api_key_source.substr(kFromEnv.size()));
    }
  }
  if (store_path.empty()) {
    ASSIGN_OR_RETURN(stack->store, agent::SessionStore::OpenDefault());
  } else {
    ASSIGN_OR_RETURN(stack->store, agent::SessionStore::Open(store_path));
  }
  stack->engine =
      std::make_unique<agent::Engine>(*stack->pool, stack->store.get(), std::move(settings));
  return stack;
}

}  // namespace lai::server
