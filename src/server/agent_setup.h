// Building the agent engine from configuration: the settings, the session store and the engine
// itself, as `serve`, `acp` and `run` all need them. Thread-compatible.
#pragma once

#include <memory>
#include <string>

#include "agent/session.h"
#include "base/config.h"
#include "base/result.h"

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

// A provider pool, the session store and an engine over them, destroyed in the right order.
struct AgentStack {
  std::unique_ptr<llm::ProviderPool> pool;
  std::unique_ptr<agent::SessionStore> store;  // Null when sessions are not kept.
  std::unique_ptr<agent::Engine> engine;
  ~AgentStack();
};

// `store_path` empty = the default ($XDG_DATA_HOME/lapce-ai/sessions.db).
Result<std::unique_ptr<AgentStack>> MakeAgentStack(std::unique_ptr<llm::ProviderPool> pool,
                                                   agent::AgentSettings settings,
                                                   const std::string& store_path = {});

}  // namespace lai::server
