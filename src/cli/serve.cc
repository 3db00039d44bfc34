// `lapce-ai serve` and `lapce-ai ping`.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "http/client.h"
#include "ipc/client.h"
#include "ipc/server.h"
#include "ipc/wait.h"
#include "llm/pool.h"
#include "rpc/peer.h"
#include "rpc/shm_transport.h"
#include "server/acp_agent.h"
#include "server/agent_setup.h"
#include "server/completion_service.h"
#include "server/metrics_endpoint.h"
#include "server/resident.h"
#include "server/services.h"

namespace lai::cli {

std::string SocketPath(const Config& config, const std::string& override_path) {
  if (!override_path.empty()) {
    // "my.sock" is a file in the current directory (its directory was taken to be "my.sock").
    std::error_code ignored;
    std::filesystem::path absolute = std::filesystem::absolute(override_path, ignored);
    return absolute.empty() ? override_path : absolute.lexically_normal().string();
  }
  return config.ipc.runtime_dir + "/" + config.ipc.socket_name;
}

int Serve(const Config& config, const ServeFlags& flags) {
  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // Its terminal closed: stop as gracefully as for Ctrl-C.
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ipc::ServerOptions options;
  options.socket_path = SocketPath(config, flags.socket);
  if (!flags.socket.empty()) options.socket_dir = ipc::SocketDir::kChosen;
  options.workers = config.server.workers;
  options.max_connections = config.server.max_connections;
  options.max_message_bytes =
      static_cast<uint32_t>(std::min<uint64_t>(config.ipc.max_message_bytes, uint64_t{1} << 30));
  // A bad --profile or flag mix is bad usage, said now (the pool itself is made on the first
  // request, and a missing key only fails the requests).
  if (Status s = CheckProviderFlags(config, flags.provider); !s.ok()) {
    std::fprintf(stderr, "lapce-ai serve: %s\n", s.error().message().c_str());
    return 2;
  }
  ipc::Server server(options);
  ipc::RegisterBuiltinHandlers(server);
  // Completions build the provider pool (and so load libcurl) on the first request: an engine
  // that only serves the transport stays small. Without a usable profile the engine still
  // serves; completions then fail with the reason.
  auto make_pool = [&config, &flags]() -> Result<std::unique_ptr<llm::ProviderPool>> {
    ASSIGN_OR_RETURN(std::unique_ptr<http::Client> http,
                     http::Client::Create(llm::HttpClientOptions(config)));
    Result<std::unique_ptr<llm::ProviderPool>> pool =
        PoolFor(config, flags.provider, std::shared_ptr<http::Client>(std::move(http)));
    if (!pool.ok()) {
      return Error(ErrorCode::kUnavailable,
                   "no usable provider profile: " + pool.error().message());
    }
    if ((*pool)->Profiles().empty()) {
      return Error(ErrorCode::kUnavailable,
                   "no provider profile is configured; add one to the config file or "
                   "set a key such as OPENAI_API_KEY (`lapce-ai doctor` checks the setup)");
    }
    spdlog::info("completions through profiles {}", [&] {
      std::string names;
      for (const llm::ProfileInfo& profile : (*pool)->Profiles()) {
        names += (names.empty() ? "" : ", ") + profile.name;
      }
      return names;
    }());
    return pool;
  };
  server::CompletionService completions(make_pool);
  completions.Register(server);

  // Agent sessions: ACP's JSON-RPC over shared memory (docs/protocol.md §13), one channel per
  // editor connection, all sessions in one engine built on the first channel.
  Result<std::vector<server::McpServerConfig>> mcp_loaded = server::UserMcpServers(config);
  if (!mcp_loaded.ok()) {
    std::fprintf(stderr, "lapce-ai serve: %s\n", mcp_loaded.error().message().c_str());
    return 2;
  }
  const std::vector<server::McpServerConfig> user_mcp_servers = std::move(*mcp_loaded);
  server::LazyAgentStack agent_stack(  // Built by the first session request; outlives `sessions`.
      [&]() -> Result<std::unique_ptr<server::AgentStack>> {
        agent::AgentSettings settings = server::AgentSettingsFromConfig(config);
        ApplyAgentModeFlags(flags.agent, settings);
        if (flags.yes) server::ApproveEverything(settings.approvals);
        ASSIGN_OR_RETURN(std::unique_ptr<llm::ProviderPool> pool, make_pool());
        Result<std::unique_ptr<server::AgentStack>> stack =
            server::MakeAgentStack(std::move(pool), std::move(settings));
        if (!stack.ok()) spdlog::error("agent sessions unavailable: {}", stack.error().message());
        return stack;
      },
      /*build_now=*/false);
  struct AgentChannel : rpc::ChannelState {
    std::unique_ptr<server::AcpAgent> agent;
    // After the channel's requests have ended: its sessions are given up (closed, unlocked).
    ~AgentChannel() override {
      agent->CancelAll();
      agent->ReleaseAll();
    }
  };
  rpc::ShmRpcServiceOptions rpc_options;
  rpc_options.open_type = server::ToWire(server::ServiceType::kRpcOpen);
  rpc_options.message_type = server::ToWire(server::ServiceType::kRpcMessage);
  rpc_options.peer.name = "acp-shm";
  rpc_options.peer.max_handler_threads = server::kAcpHandlerThreads;
  rpc::ShmRpcService sessions(
      rpc_options, [&](rpc::Peer& peer) -> std::unique_ptr<rpc::ChannelState> {
        auto channel = std::make_unique<AgentChannel>();
        server::AcpAgentOptions agent_options;
        agent_options.agent_version = LAI_VERSION;
        agent_options.mcp_servers = user_mcp_servers;
        if (NamesAProfile(flags.provider)) agent_options.load_profile = "";
        channel->agent = std::make_unique<server::AcpAgent>(
            [&agent_stack] { return agent_stack.Get(); }, peer, agent_options);
        return channel;
      });
  sessions.Register(server);
  if (Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "lapce-ai serve: %s\n", s.error().message().c_str());
    return 1;
  }

  std::string metrics_addr =
      flags.metrics_addr_set ? flags.metrics_addr : config.server.metrics_addr;
  server::MetricsEndpoint metrics([&server] { return server.metrics().RenderPrometheus(); });
  if (!metrics_addr.empty()) {
    if (Status s = metrics.Start(metrics_addr); !s.ok()) {
      std::fprintf(stderr, "lapce-ai serve: %s; pass --metrics-addr HOST:PORT, or '' to disable\n",
                   s.error().message().c_str());
      return 1;
    }
  }

  std::fprintf(stderr, "lapce-ai serve: listening on %s (pid %d)\n", options.socket_path.c_str(),
               static_cast<int>(::getpid()));
  if (!metrics_addr.empty()) {
    std::fprintf(stderr, "lapce-ai serve: metrics at http://%s/metrics\n", metrics_addr.c_str());
  }
  std::fprintf(stderr, "lapce-ai serve: try `lapce-ai ping --socket %s`; Ctrl-C stops\n",
               options.socket_path.c_str());
  server::TrimResidentMemory();
  if (flags.ready_fd >= 0) {
    ssize_t n = ::write(flags.ready_fd, "ready\n", 6);
    (void)n;
    ::close(flags.ready_fd);
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("signal {}: shutting down", signal_number);
  metrics.Stop();
  // Turns still running are cancelled and answer so ("cancelled") before the connections close.
  // 3 s: a command that ignores SIGTERM is killed 2 s after it (workspace/process.cc), and then
  // its turn answers.
  sessions.EndAll(std::chrono::seconds(3));
  server.Shutdown();
  std::fprintf(stderr, "lapce-ai serve: stopped\n");
  return 0;
}

int Ping(const Config& config, const PingFlags& flags) {
  ipc::ClientOptions options;
  options.socket_path = SocketPath(config, flags.socket);
  options.stream.ring_bytes = config.ipc.ring_bytes;
  options.request_timeout = std::chrono::milliseconds(config.ipc.request_timeout_ms);
  ipc::Client client(options);
  if (Status s = client.Connect(); !s.ok()) {
    std::fprintf(stderr, "lapce-ai ping: %s\n", s.error().message().c_str());
    return 1;
  }
  Result<ipc::Response> health = client.Call(static_cast<uint16_t>(ipc::MessageType::kHealth), {});
  if (!health.ok()) {
    std::fprintf(stderr, "lapce-ai ping: %s\n", health.error().message().c_str());
    return 1;
  }
  std::printf("health: %.*s\n", static_cast<int>(health->payload.size()),
              reinterpret_cast<const char*>(health->payload.data()));
  std::vector<std::byte> payload(static_cast<size_t>(flags.payload_bytes), std::byte{0x5a});
  std::vector<uint64_t> samples;
  samples.reserve(static_cast<size_t>(flags.count));
  for (int i = 0; i < flags.count; ++i) {
    uint64_t start = ipc::NowNs();
    Result<ipc::Response> r = client.Call(static_cast<uint16_t>(ipc::MessageType::kEcho), payload);
    uint64_t end = ipc::NowNs();
    if (!r.ok()) {
      std::fprintf(stderr, "lapce-ai ping: echo %d: %s\n", i, r.error().message().c_str());
      return 1;
    }
    if (r->payload.size() != payload.size() ||
        !std::equal(payload.begin(), payload.end(), r->payload.begin())) {
      std::fprintf(stderr, "lapce-ai ping: echo %d came back altered\n", i);
      return 1;
    }
    samples.push_back(end - start);
  }
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  std::printf("%d echoes of %d bytes: min %llu ns, p50 %llu ns, p99 %llu ns, max %llu ns\n",
              flags.count, flags.payload_bytes, static_cast<unsigned long long>(samples.front()),
              static_cast<unsigned long long>(at(0.5)), static_cast<unsigned long long>(at(0.99)),
              static_cast<unsigned long long>(samples.back()));
  return 0;
}

}  // namespace lai::cli
