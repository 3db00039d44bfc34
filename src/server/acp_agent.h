// The ACP v1 agent: serves `initialize`, `session/*` and the `_lapce/*` extensions on an
// rpc::Peer (stdio for `lapce-ai acp`, shared memory for `lapce-ai serve`), running sessions on
// an agent::Engine. Thread-safe: the peer calls handlers from its handler threads.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace lai::agent {
class Engine;
}
namespace lai::rpc {
class Peer;
}

namespace lai::server {

struct AcpAgentOptions {
  std::string agent_version = "0";
};

class AcpAgent {
 public:
  // Registers the handlers on `peer`. `engine` and `peer` must outlive the agent.
  AcpAgent(agent::Engine& engine, rpc::Peer& peer, AcpAgentOptions options = {});
  ~AcpAgent();
  AcpAgent(const AcpAgent&) = delete;
  AcpAgent& operator=(const AcpAgent&) = delete;

  // Cancels every running turn of this connection (the peer is closing).
  void CancelAll();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lai::server
