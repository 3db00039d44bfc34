// Building the agent engine from configuration: the settings, the session store and the engine
// itself, as `serve`, `acp` and `run` all need them. Thread-compatible.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/session.h"
#include "base/config.h"
#include "base/result.h"
#include "server/mcp_client.h"

namespace lai::agent {
class SessionStore;
}
namespace lai::llm {
class ProviderPool;
}

namespace lai::server {

// The [agent] and [approvals] sections and [tools] as agent settings, with the global modes
// file and rules directory beside the config file ($XDG_CONFIG_HOME/lapce-ai/modes.yaml, rules/).
agent::AgentSettings AgentSettingsFromConfig(const Config& config);
// Every category approved and every command allowed (`--yes`).
void ApproveEverything(agent::AutoApproveSettings& approvals);

// The user's MCP servers, from mcp.json beside config.toml (Config::directory; Kilo Code's
// mcp_settings.json shape, see LoadMcpSettings). None when there is no such file. Errors name
// the file and the field.
Result<std::vector<McpServerConfig>> UserMcpServers(const Config& config);

// A provider pool, the session store and an engine over them, destroyed in the right order.
struct AgentStack {
  std::unique_ptr<llm::ProviderPool> pool;
  std::unique_ptr<agent::SessionStore> store;  // Null when sessions are not kept.
  std::unique_ptr<agent::Engine> engine;
  ~AgentStack();
};

// An AgentStack built once, off the caller's path: on its own thread from construction
// (`lapce-ai acp` answers `initialize` meanwhile), or by the first Get() (`serve` stays small
// until an editor opens a session). Get() waits for the build and returns the engine or the
// error that stopped it (kept: later calls get the same). Thread-safe.
class LazyAgentStack {
 public:
  using Factory = std::function<Result<std::unique_ptr<AgentStack>>()>;
  LazyAgentStack(Factory factory, bool build_now);
  ~LazyAgentStack();  // Waits for a build in progress.
  Result<agent::Engine*> Get();

 private:
  void Build();

  Factory factory_;
  std::mutex mutex_;
  std::condition_variable built_;
  bool is_started_ = false;            // Guarded by mutex_.
  bool is_done_ = false;               // Guarded by mutex_.
  std::unique_ptr<AgentStack> stack_;  // Guarded by mutex_; set once.
  std::optional<Error> error_;         // Guarded by mutex_; set once.
  std::thread thread_;
};

// Other processes of the user, the agent's commands among them, can no longer read this one's
// environment or memory (/proc/<pid>/environ, mem; ptrace), where the provider keys are: only
// root (CAP_SYS_PTRACE) can. No core dumps either. MakeAgentStack calls it.
void KeepKeysFromOtherProcesses();

// `store_path` empty = the default ($XDG_DATA_HOME/lapce-ai/sessions.db). The agent's commands
// do not inherit the variables the pool's keys came from (see KeepKeysFromOtherProcesses too).
Result<std::unique_ptr<AgentStack>> MakeAgentStack(std::unique_ptr<llm::ProviderPool> pool,
                                                   agent::AgentSettings settings,
                                                   const std::string& store_path = {});

}  // namespace lai::server
