// The provider choice every model-using command takes (`complete`, `run`, `acp`, `serve`):
// `--profile P`, or a one-off `--provider X --model M [--base-url U]`; and the agent's own that
// every agent command takes (`--mode`, `--tool-protocol`). Confined to the main thread.
#pragma once

#include <memory>
#include <string>

#include "base/config.h"
#include "base/result.h"

namespace CLI {
class App;
}
namespace lai::http {
class Client;
}
namespace lai::llm {
class ProviderPool;
}
namespace lai::agent {
struct AgentSettings;
}

namespace lai::cli {

struct ProviderFlags {
  std::string profile;
  std::string provider;
  std::string model;
  std::string base_url;
};

void AddProviderFlags(CLI::App& command, ProviderFlags& flags);

struct AgentModeFlags {
  std::string mode;           // "": agent.mode.
  std::string tool_protocol;  // "", native, xml.
};

void AddAgentModeFlags(CLI::App& command, AgentModeFlags& flags);
// The flags' choices over the configuration's, in `settings`.
void ApplyAgentModeFlags(const AgentModeFlags& flags, agent::AgentSettings& settings);

// Whether the flags name a profile (--profile, or a one-off --provider/--base-url): a stored
// session loaded then uses that one (PoolFor's default), not the one it was stored with.
bool NamesAProfile(const ProviderFlags& flags);

// The usage errors of PoolFor (kInvalidArgument: an unknown --profile, --profile with
// --provider, --base-url without --provider, …), found without making the pool, which a server
// makes on its first request.
Status CheckProviderFlags(const Config& config, const ProviderFlags& flags);

// The configured profiles (`--profile` the default among them), or one ad-hoc profile named
// llm::kAdHocProfileName from the flags. Usage errors have code kInvalidArgument. `http` may be
// null (the pool makes its own client).
Result<std::unique_ptr<llm::ProviderPool>> PoolFor(const Config& config, const ProviderFlags& flags,
                                                   std::shared_ptr<http::Client> http);

// How a cost reads to the user: "$0.0123" (with `decimals`), or, when the pool has no prices for
// the profile's model (ProviderPool::KnowsCost), "unknown" and where to set them; a cost of 0
// must not claim a paid model was free.
std::string CostText(const llm::ProviderPool& pool, const std::string& profile, double cost_usd,
                     int decimals);

}  // namespace lai::cli
