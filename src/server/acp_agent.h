// The ACP v1 agent: serves `initialize`, `session/*` and the `_lapce/*` extensions on an
// rpc::Peer (stdio for `lapce-ai acp`, shared memory for `lapce-ai serve`), running sessions on
// an agent::Engine. Thread-safe: the peer calls handlers from its handler threads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "server/mcp_client.h"

namespace lai::agent {
class Engine;
}
namespace lai::rpc {
class Peer;
}

namespace lai::server {

struct AcpAgentOptions {
  std::string agent_version = "0";
  // The user's own MCP servers (UserMcpServers()): started once, on the first session, and
  // shared by every session of the connection beside those the client names in session/new
  // (which win a name clash).
  std::vector<McpServerConfig> mcp_servers;
  // The provider profile a loaded session uses ("" = the pool's default) when the agent was
  // started naming one (--profile, or a one-off --provider); else the session's own, and a
  // session whose profile this agent lacks is not loaded (see agent::Engine::LoadSession).
  std::optional<std::string> load_profile;
};

// Prompts one connection runs at once (more are refused, saying so), and the handler threads its
// peer needs for them beside every other request (rpc::PeerOptions::max_handler_threads): a
// running prompt holds a handler thread for its whole turn, and with the peer's default of 64,
// 64 prompts left session/new and the rest waiting unanswered.
inline constexpr size_t kAcpMaxRunningPrompts = 256;
inline constexpr size_t kAcpHandlerThreads = kAcpMaxRunningPrompts + 64;

// Gives the engine, waiting for it on first use if it is still being built (so `initialize` is
// answered while the provider pool and the session store open). Called from handler threads;
// must be thread-safe. The engine must outlive the agent.
using EngineSource = std::function<Result<agent::Engine*>()>;

class AcpAgent {
 public:
  // Registers the handlers on `peer`, which must outlive the agent.
  AcpAgent(EngineSource engine, rpc::Peer& peer, AcpAgentOptions options = {});
  AcpAgent(agent::Engine& engine, rpc::Peer& peer, AcpAgentOptions options = {});
  ~AcpAgent();
  AcpAgent(const AcpAgent&) = delete;
  AcpAgent& operator=(const AcpAgent&) = delete;

  // Cancels every running turn of this connection (the peer is closing).
  void CancelAll();
  // Gives up this connection's sessions (after CancelAll, once its requests have ended): each is
  // closed if idle, its lock released, and another connection may load it; one never prompted
  // is deleted.
  void ReleaseAll();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lai::server
