// Round-trip latency of one small JSON-RPC request/response through rpc::Peer, over a pipe pair
// (StdioTransport) and over shared memory (ShmRpcService/ShmClientTransport), each printed beside
// its baseline measured in the same run: a raw line echo over the same pipes, and a raw ipc echo
// call over the same server. Run a Release build: rpc_latency_benchmark [iterations].
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc/server.h"
#include "rpc/peer.h"
#include "rpc/shm_transport.h"
#include "rpc/stdio_transport.h"
#include "server/services.h"

namespace lai::rpc {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kParams = R"({"sessionId":"s-1","text":"hello"})";

struct Percentiles {
  double p50_us;
  double p99_us;
};

// Times `round_trip` `iterations` times after a warm-up; false from it aborts the run.
bool Measure(int iterations, const std::function<bool()>& round_trip, Percentiles* out) {
  for (int i = 0; i < std::min(iterations / 10, 1000); ++i) {
    if (!round_trip()) return false;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    auto start = Clock::now();
    if (!round_trip()) return false;
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(samples.begin(), samples.end());
  out->p50_us = samples[samples.size() / 2];
  out->p99_us = samples[samples.size() * 99 / 100];
  return true;
}

void Print(const char* name, const Percentiles& p) {
  std::printf("%-44s p50 %8.1f us   p99 %8.1f us\n", name, p.p50_us, p.p99_us);
}

RequestHandler EchoHandler() {
  return [](std::string_view params, const RequestContext&) -> Result<std::string> {
    return std::string(params);
  };
}

int RunPipes(int iterations) {
  int a_to_b[2], b_to_a[2];
  if (::pipe2(a_to_b, O_CLOEXEC) != 0 || ::pipe2(b_to_a, O_CLOEXEC) != 0) return 1;
  UniqueFd fds[4] = {UniqueFd(a_to_b[0]), UniqueFd(a_to_b[1]), UniqueFd(b_to_a[0]),
                     UniqueFd(b_to_a[1])};
  // Baseline: the same bytes a request line and its response take, echoed by a plain thread.
  std::string line =
      R"({"jsonrpc":"2.0","id":1,"method":"echo","params":)" + std::string(kParams) + "}\n";
  std::thread echo([&] {
    char buffer[4096];
    for (;;) {
      ssize_t n = ::read(a_to_b[0], buffer, sizeof buffer);
      if (n <= 0 || buffer[0] == 'q') return;
      if (::write(b_to_a[1], buffer, static_cast<size_t>(n)) != n) return;
    }
  });
  Percentiles raw;
  bool ok = Measure(
      iterations,
      [&] {
        if (::write(a_to_b[1], line.data(), line.size()) != static_cast<ssize_t>(line.size()))
          return false;
        size_t got = 0;
        char buffer[4096];
        while (got < line.size()) {
          ssize_t n = ::read(b_to_a[0], buffer, sizeof buffer);
          if (n <= 0) return false;
          got += static_cast<size_t>(n);
        }
        return true;
      },
      &raw);
  (void)!::write(a_to_b[1], "q", 1);
  echo.join();
  if (!ok) return 1;

  StdioTransport a_transport(b_to_a[0], a_to_b[1]);
  StdioTransport b_transport(a_to_b[0], b_to_a[1]);
  Peer a(a_transport, {.name = "a"});
  Peer b(b_transport, {.name = "b"});
  b.HandleRequest("echo", EchoHandler());
  if (!a_transport.Start(a).ok() || !b_transport.Start(b).ok()) return 1;
  Percentiles peer;
  ok = Measure(
      iterations, [&] { return a.Request("echo", kParams).ok(); }, &peer);
  a_transport.Stop();
  b_transport.Stop();
  if (!ok) return 1;
  Print("pipe pair: raw line echo (baseline)", raw);
  Print("pipe pair: Peer request/response", peer);
  std::printf("%-44s p50 %8.1f us\n", "pipe pair: added by Peer + StdioTransport",
              peer.p50_us - raw.p50_us);
  return 0;
}

int RunShm(int iterations) {
  char dir_template[] = "/tmp/lai-rpc-bench.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return 1;
  std::string dir = dir_template;
  const uint16_t open_type = server::ToWire(server::ServiceType::kRpcOpen);
  const uint16_t message_type = server::ToWire(server::ServiceType::kRpcMessage);
  ipc::ServerOptions server_options;
  server_options.socket_path = dir + "/s.sock";
  server_options.workers = 1;
  auto ipc_server = std::make_unique<ipc::Server>(server_options);
  ipc::RegisterBuiltinHandlers(*ipc_server);
  auto service = std::make_unique<ShmRpcService>(
      ShmRpcServiceOptions{.open_type = open_type, .message_type = message_type},
      [](Peer& peer) -> std::unique_ptr<ChannelState> {
        peer.HandleRequest("echo", EchoHandler());
        return nullptr;
      });
  service->Register(*ipc_server);
  if (Status started = ipc_server->Start(); !started.ok()) {
    std::fprintf(stderr, "%s\n", started.ToString().c_str());
    return 1;
  }
  ipc::ClientOptions client_options;
  client_options.socket_path = server_options.socket_path;
  int status = 1;
  {
    // Baseline: the request and response bytes as one raw echo call on the same server.
    std::string message =
        R"({"jsonrpc":"2.0","id":1,"method":"echo","params":)" + std::string(kParams) + "}";
    ipc::Client raw_client(client_options);
    Percentiles raw;
    bool ok = Measure(
        iterations,
        [&] {
          return raw_client
              .Call(static_cast<uint16_t>(ipc::MessageType::kEcho),
                    std::as_bytes(std::span(message)))
              .ok();
        },
        &raw);
    Result<std::unique_ptr<ShmClientTransport>> transport =
        ShmClientTransport::Connect(client_options, open_type, message_type);
    if (ok && transport.ok()) {
      Peer client(**transport, {.name = "client"});
      (*transport)->Start(client);
      Percentiles peer;
      ok = Measure(
          iterations, [&] { return client.Request("echo", kParams).ok(); }, &peer);
      (*transport)->Close();
      if (ok) {
        Print("shm: raw ipc echo call (baseline)", raw);
        Print("shm: Peer request/response over a channel", peer);
        std::printf("%-44s p50 %8.1f us\n", "shm: added by Peer + channel",
                    peer.p50_us - raw.p50_us);
        status = 0;
      }
    } else if (!transport.ok()) {
      std::fprintf(stderr, "%s\n", transport.error().ToString().c_str());
    }
  }
  ipc_server->Shutdown();
  service.reset();
  ipc_server.reset();
  std::filesystem::remove_all(dir);
  return status;
}

}  // namespace
}  // namespace lai::rpc

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 20000;
  if (iterations < 100) iterations = 100;
  std::printf("rpc round trip, %d iterations each, params %zu bytes\n", iterations,
              lai::rpc::kParams.size());
  if (lai::rpc::RunPipes(iterations) != 0) return 1;
  return lai::rpc::RunShm(iterations);
}
