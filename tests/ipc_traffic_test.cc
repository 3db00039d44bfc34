// Cross-process traffic: a `lapce-ai serve` child and clients in the test process. Echo of every
// payload size, many concurrent clients, and a thousand simultaneous connections.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc_test_support.h"

namespace lai::ipc_test {
namespace {

constexpr uint16_t kEcho = static_cast<uint16_t>(ipc::MessageType::kEcho);

TEST(IpcTraffic, EchoesEveryPayloadSizeAcrossProcesses) {
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::ClientOptions options = DefaultClientOptions(server.socket_path());
  options.request_timeout = milliseconds(20'000);
  ipc::Client client(options);

  // Up, then down again, so the 10 MiB message is followed by small ones on the same rings.
  const std::vector<size_t> sizes = {0, 64, 1024, 100 * 1024, 10u << 20, 100 * 1024, 1024, 64, 0};
  for (size_t i = 0; i < sizes.size(); ++i) {
    SCOPED_TRACE("payload of " + std::to_string(sizes[i]) + " bytes");
    std::vector<std::byte> payload = Pattern(sizes[i], 1000 + i);
    Result<ipc::Response> r = client.Call(kEcho, payload);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->type, kEcho);
    EXPECT_TRUE(r->is_final);
    ASSERT_EQ(r->payload.size(), payload.size());
    EXPECT_EQ(std::memcmp(r->payload.data(), payload.data(), payload.size()), 0);
  }
  EXPECT_EQ(client.reconnect_count(), 0u);
}

// Requests sent back to back before any reply is read: the replies fill the client's ring and the
// server stops reading requests until they are read, so a client that only waited for ring
// space to send would wait for ever (it used to, until the request timeout). The replies are
// kept as they arrive, and each is then received intact and in order.
TEST(IpcTraffic, PipelinedRequestsDoNotWaitOnTheirOwnReplies) {
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::ClientOptions options = DefaultClientOptions(server.socket_path());
  options.request_timeout = milliseconds(5'000);
  ipc::Client client(options);
  constexpr int kRequests = 300;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kRequests; ++i) {
    std::vector<std::byte> payload = Pattern(1024, 7000 + i);
    Result<uint64_t> id = client.Send(kEcho, payload);
    ASSERT_TRUE(id.ok()) << "request " << i << ": " << id.error().ToString();
    ids.push_back(*id);
  }
  EXPECT_GT(client.stashed_frames(), 0u) << "the rings held every reply: the test proves nothing";
  for (int i = 0; i < kRequests; ++i) {
    Result<ipc::Response> r = client.Next(ids[i]);
    ASSERT_TRUE(r.ok()) << "reply " << i << ": " << r.error().ToString();
    std::vector<std::byte> expected = Pattern(1024, 7000 + i);
    ASSERT_EQ(r->payload.size(), expected.size());
    EXPECT_EQ(std::memcmp(r->payload.data(), expected.data(), expected.size()), 0) << i;
  }
  EXPECT_EQ(client.reconnect_count(), 0u);
}

// Payload of one round trip: client id and sequence number up front, then pattern bytes seeded
// by both, so a reply delivered to the wrong client or out of order is caught.
void FillRequest(std::span<std::byte> out, uint32_t client_id, uint32_t sequence) {
  uint64_t tag = (uint64_t{client_id} << 32) | sequence;
  FillPattern(out, tag);
  if (out.size() >= 8) std::memcpy(out.data(), &tag, 8);
}

TEST(IpcTraffic, HundredConcurrentClientsEachDo2000VerifiedRoundTrips) {
  constexpr uint32_t kClients = 100;
  constexpr uint32_t kRoundTrips = 2000;
  // Single-frame, exactly one frame (ring of 1 KiB: 472 payload bytes), and fragmented sizes.
  const std::vector<uint32_t> kSizes = {0, 8, 24, 64, 200, 472, 473, 1000, 2500};

  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();

  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> completed{0};
  std::mutex first_failure_mutex;
  std::string first_failure;
  auto fail = [&](std::string what) {
    failures.fetch_add(1);
    std::lock_guard lock(first_failure_mutex);
    if (first_failure.empty()) first_failure = std::move(what);
  };

  std::latch start(kClients);
  std::vector<std::thread> threads;
  for (uint32_t id = 0; id < kClients; ++id) {
    threads.emplace_back([&, id] {
      ipc::Client client(DefaultClientOptions(server.socket_path()));
      Status connected = client.Connect();
      start.arrive_and_wait();
      if (!connected.ok()) {
        fail("client " + std::to_string(id) + " connect: " + connected.ToString());
        return;
      }
      std::vector<std::byte> payload(2500);
      for (uint32_t seq = 0; seq < kRoundTrips; ++seq) {
        uint32_t size = kSizes[(id * 7 + seq) % kSizes.size()];
        std::span<std::byte> request(payload.data(), size);
        FillRequest(request, id, seq);
        Result<ipc::Response> r = client.Call(kEcho, request);
        if (!r.ok()) {
          fail("client " + std::to_string(id) + " call " + std::to_string(seq) + ": " +
               r.error().ToString());
          return;
        }
        if (r->payload.size() != size ||
            std::memcmp(r->payload.data(), request.data(), size) != 0) {
          fail("client " + std::to_string(id) + " call " + std::to_string(seq) + ": reply of " +
               std::to_string(r->payload.size()) + " bytes differs from the " +
               std::to_string(size) + "-byte request");
          return;
        }
        completed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0u) << first_failure;
  EXPECT_EQ(completed.load(), uint64_t{kClients} * kRoundTrips);

  // The server counts a request once its handler returned, which may be just after the client
  // saw the reply: poll briefly.
  ipc::Client probe(DefaultClientOptions(server.socket_path()));
  std::optional<uint64_t> echoes;
  std::string text;
  PollUntil(
      [&] {
        Result<std::string> metrics = QueryMetrics(probe);
        if (!metrics.ok()) return false;
        text = *metrics;
        echoes = MetricSample(text, "lapce_ai_ipc_requests_total{type=\"echo\"}");
        return echoes == uint64_t{kClients} * kRoundTrips;
      },
      milliseconds(2'000));
  ASSERT_TRUE(echoes.has_value()) << text;
  // When a call failed, this tells whether the server ever handled it (a request it never saw
  // leaves the count at the number of replies the clients received).
  EXPECT_EQ(*echoes, uint64_t{kClients} * kRoundTrips)
      << "the server handled " << *echoes << " echo requests; the clients received "
      << completed.load() << " replies";
  EXPECT_EQ(MetricSample(text, "lapce_ai_ipc_errors_total{type=\"echo\"}").value_or(0), 0u);
}

TEST(IpcTraffic, ThousandSimultaneousConnectionsOpenAndClose) {
  constexpr size_t kConnections = 1000;
  // Per connection: about 3 descriptors here and 2 in the server.
  if (RaiseFileLimitForTest() < 3 * kConnections + 200) {
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit too low for " << kConnections << " connections";
  }
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();

  std::vector<std::unique_ptr<ipc::Client>> clients;
  clients.reserve(kConnections);
  for (size_t i = 0; i < kConnections; ++i) {
    auto client = std::make_unique<ipc::Client>(DefaultClientOptions(server.socket_path()));
    std::string payload = "connection " + std::to_string(i);
    Result<ipc::Response> r = client->Call(kEcho, std::as_bytes(std::span(payload)));
    ASSERT_TRUE(r.ok()) << "connection " << i << ": " << r.error().ToString();
    ASSERT_EQ(AsText(r->payload), payload);
    clients.push_back(std::move(client));
  }
  // Every connection is still usable with all the others open.
  for (size_t i = 0; i < kConnections; i += 97) {
    std::string payload = "again " + std::to_string(i);
    Result<ipc::Response> r = clients[i]->Call(kEcho, std::as_bytes(std::span(payload)));
    ASSERT_TRUE(r.ok()) << "connection " << i << ": " << r.error().ToString();
    ASSERT_EQ(AsText(r->payload), payload);
  }
  Result<Health> health = QueryHealth(*clients.front());
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->connections, kConnections);

  for (auto& client : clients) client->Close();
  clients.clear();

  ipc::Client probe(DefaultClientOptions(server.socket_path()));
  uint64_t connections = 0;
  PollUntil(
      [&] {
        Result<Health> h = QueryHealth(probe);
        connections = h.ok() ? h->connections : UINT64_MAX;
        return connections == 1;  // The probe itself.
      },
      milliseconds(5'000));
  EXPECT_EQ(connections, 1u);
}

}  // namespace
}  // namespace lai::ipc_test
