// Server and client processes coming and going: a server killed and restarted under a connected
// client, a second server refused on a live socket, clients killed by the hundred, and graceful
// shutdown on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc/wait.h"
#include "ipc_test_support.h"

namespace lai::ipc_test {
namespace {

constexpr uint16_t kEcho = static_cast<uint16_t>(ipc::MessageType::kEcho);
constexpr uint64_t kMs = 1'000'000;

std::optional<ino_t> SocketInode(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return std::nullopt;
  return st.st_ino;
}

Status EchoOnce(ipc::Client& client, std::string_view text, milliseconds timeout = {}) {
  ASSIGN_OR_RETURN(ipc::Response r, client.Call(kEcho, std::as_bytes(std::span(text)), timeout));
  if (AsText(r.payload) != text) return Error(ErrorCode::kInternal, "echo came back altered");
  return OkStatus();
}

TEST(IpcLifecycle, ClientFailsFastWhileServerIsDownAndResumesWithin100msOfRestart) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess first(dir, path, "first.log");
  ASSERT_TRUE(first.Start().ok()) << first.process().Log();
  ipc::Client client(DefaultClientOptions(path));
  ASSERT_TRUE(EchoOnce(client, "before").ok());
  std::optional<ino_t> first_inode = SocketInode(path);
  ASSERT_TRUE(first_inode.has_value());

  // A call in flight when the server dies (a request it never answers: a cancel of a stream that
  // does not exist) fails as soon as the server is gone.
  ipc::Client waiting(DefaultClientOptions(path));
  ASSERT_TRUE(EchoOnce(waiting, "waiting").ok());
  Result<uint64_t> pending = waiting.Send(static_cast<uint16_t>(ipc::MessageType::kCancel), {});
  ASSERT_TRUE(pending.ok());
  std::optional<Error> pending_error;
  uint64_t pending_returned = 0;
  std::thread waiter([&] {
    Result<ipc::Response> r = waiting.Next(*pending, milliseconds(10'000));
    pending_returned = ipc::NowNs();
    if (!r.ok()) pending_error = r.error();
  });

  first.process().Signal(SIGKILL);
  std::optional<int> killed = first.process().WaitExit(milliseconds(5'000));
  uint64_t reaped = ipc::NowNs();
  waiter.join();
  ASSERT_TRUE(killed.has_value());
  ASSERT_TRUE(WIFSIGNALED(*killed));
  ASSERT_TRUE(pending_error.has_value()) << "the pending call got a reply from a killed server";
  EXPECT_EQ(pending_error->code(), ErrorCode::kUnavailable) << pending_error->ToString();
  EXPECT_LT(static_cast<int64_t>(pending_returned - reaped), static_cast<int64_t>(50 * kMs))
      << "the pending call returned " << (pending_returned - reaped) / 1000
      << " us after the server was reaped";
  // A killed server cannot clean up: its socket file stays behind. A second name keeps its inode
  // from being reused, so the replacement below must get a different one.
  EXPECT_EQ(SocketInode(path), first_inode);
  ASSERT_EQ(::link(path.c_str(), dir.File("stale.sock").c_str()), 0) << std::strerror(errno);

  // While nobody serves the path, every call fails fast with kUnavailable.
  const std::string payload = "while down";
  uint64_t down_until = ipc::NowNs() + 300 * kMs;
  uint64_t calls = 0;
  uint64_t slowest_ns = 0;
  std::string unexpected;
  while (ipc::NowNs() < down_until) {
    uint64_t start = ipc::NowNs();
    Result<ipc::Response> r =
        client.Call(kEcho, std::as_bytes(std::span(payload)), milliseconds(5'000));
    uint64_t took = ipc::NowNs() - start;
    slowest_ns = std::max(slowest_ns, took);
    ++calls;
    if (r.ok()) {
      unexpected = "a call succeeded with no server";
      break;
    }
    if (r.error().code() != ErrorCode::kUnavailable && unexpected.empty()) {
      unexpected = r.error().ToString();
    }
  }
  EXPECT_TRUE(unexpected.empty()) << unexpected;
  EXPECT_GT(calls, 10u);
  EXPECT_LT(slowest_ns, 50 * kMs) << "slowest failing call took " << slowest_ns / 1000 << " us";
  EXPECT_FALSE(client.is_connected());

  // A new server replaces the stale socket; the same client is back within 100 ms of its ready
  // line.
  ServerProcess second(dir, path, "second.log");
  ASSERT_TRUE(second.Start().ok()) << second.process().Log();
  uint64_t ready = second.process().ready_ns();
  uint64_t resumed = 0;
  std::string last_error;
  while (ipc::NowNs() < ready + 2'000 * kMs) {
    Status s = EchoOnce(client, "after", milliseconds(1'000));
    if (s.ok()) {
      resumed = ipc::NowNs();
      break;
    }
    last_error = s.ToString();
    ASSERT_EQ(s.code(), ErrorCode::kUnavailable) << last_error;
  }
  ASSERT_NE(resumed, 0u) << "the client never reconnected: " << last_error;
  EXPECT_LT(resumed - ready, 100 * kMs)
      << "reconnected " << (resumed - ready) / 1000 << " us after the ready line";
  EXPECT_EQ(client.reconnect_count(), 1u);

  std::optional<ino_t> second_inode = SocketInode(path);
  ASSERT_TRUE(second_inode.has_value());
  EXPECT_NE(*second_inode, *first_inode) << "the stale socket file was not replaced";
  Result<Health> health = QueryHealth(client);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->pid, static_cast<uint64_t>(second.pid()));
}

TEST(IpcLifecycle, SecondServerOnALiveSocketExitsNonZeroAndLeavesItAlone) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess first(dir, path, "first.log");
  ASSERT_TRUE(first.Start().ok()) << first.process().Log();
  ipc::Client client(DefaultClientOptions(path));
  ASSERT_TRUE(EchoOnce(client, "first").ok());
  std::optional<ino_t> inode = SocketInode(path);
  ASSERT_TRUE(inode.has_value());

  ServerProcess second(dir, path, "second.log");
  ASSERT_TRUE(second.Spawn().ok());
  std::optional<int> exit = second.process().WaitExit(milliseconds(10'000));
  ASSERT_TRUE(exit.has_value()) << "the second server kept running; log:\n"
                                << second.process().Log();
  ASSERT_TRUE(WIFEXITED(*exit));
  EXPECT_NE(WEXITSTATUS(*exit), 0);
  std::string log = second.process().Log();
  EXPECT_NE(
      log.find("another lapce-ai server (pid " + std::to_string(first.pid()) + ") is serving"),
      std::string::npos)
      << log;

  // The live server keeps its socket and its clients, and accepts new ones.
  EXPECT_EQ(SocketInode(path), inode);
  EXPECT_TRUE(EchoOnce(client, "still there").ok());
  EXPECT_EQ(client.reconnect_count(), 0u);
  ipc::Client newcomer(DefaultClientOptions(path));
  Result<Health> health = QueryHealth(newcomer);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->pid, static_cast<uint64_t>(first.pid()));
  EXPECT_EQ(health->connections, 2u);
}

TEST(IpcLifecycle, SigkilledClientProcessesLeaveNoConnectionsDescriptorsOrMemoryBehind) {
  constexpr int kCycles = 200;
  constexpr int kConnectionsPerProcess = 5;
  constexpr int kWarmupCycles = 20;
  constexpr size_t kMaxRssGrowthBytes = 2u << 20;

  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess server(dir, path);
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::Client monitor(DefaultClientOptions(path));
  Result<Health> health = QueryHealth(monitor);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  ASSERT_EQ(health->connections, 1u);
  // Just after its ready line the server may still hold a transient descriptor (it reads
  // /proc/self/maps once to trim its resident code): the first count is an upper bound, the
  // count once the warm-up cycles have settled is the baseline.
  size_t baseline_fds = OpenFdCount(server.pid());
  ASSERT_GT(baseline_fds, 0u);

  // Back to the baseline: only the monitor connected, no descriptor left over.
  bool warmed_up = false;
  uint64_t connections = 0;
  size_t fds = 0;
  auto settled = [&] {
    Result<Health> h = QueryHealth(monitor);
    connections = h.ok() ? h->connections : UINT64_MAX;
    fds = OpenFdCount(server.pid());
    return connections == 1 && (warmed_up ? fds == baseline_fds : fds <= baseline_fds);
  };

  size_t rss_after_warmup = 0;
  const std::string helper_log = dir.File("helper.log");
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    ChildProcess child;
    ASSERT_TRUE(
        child
            .Spawn({HelperBinary(), "connect", path, std::to_string(kConnectionsPerProcess)},
                   dir.path(), helper_log)
            .ok());
    Status ready = child.WaitReady(milliseconds(10'000));
    ASSERT_TRUE(ready.ok()) << "cycle " << cycle << ": " << ready.ToString();
    child.Kill();
    if (cycle + 1 == kWarmupCycles) {
      ASSERT_TRUE(PollUntil(settled, milliseconds(5'000)))
          << "after " << kWarmupCycles << " cycles: " << connections << " connections, " << fds
          << " fds (baseline " << baseline_fds << ")";
      rss_after_warmup = VmRssBytes(server.pid());
      baseline_fds = fds;
      warmed_up = true;
    }
  }
  EXPECT_TRUE(PollUntil(settled, milliseconds(5'000)))
      << connections << " connections, " << fds << " fds (baseline " << baseline_fds << ")";
  size_t rss = VmRssBytes(server.pid());
  RecordProperty("server_vmrss_after_warmup_bytes", std::to_string(rss_after_warmup));
  RecordProperty("server_vmrss_at_end_bytes", std::to_string(rss));
  EXPECT_LT(rss, rss_after_warmup + kMaxRssGrowthBytes)
      << "VmRSS grew from " << rss_after_warmup << " to " << rss << " bytes";

  Result<std::string> metrics = QueryMetrics(monitor);
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(MetricSample(*metrics, "lapce_ai_ipc_connections_accepted_total"),
            uint64_t{1 + kCycles * kConnectionsPerProcess});
  EXPECT_EQ(MetricSample(*metrics, "lapce_ai_ipc_connections_open"), 1u);
}

TEST(IpcLifecycle, OfTwoServersStartingTogetherExactlyOneServes) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    TempDir dir;
    const std::string path = dir.File("engine.sock");
    ServerProcess a(dir, path, "a.log");
    ServerProcess b(dir, path, "b.log");
    ASSERT_TRUE(a.Spawn().ok());
    ASSERT_TRUE(b.Spawn().ok());
    bool a_ready = a.process().WaitReady(milliseconds(10'000)).ok();
    bool b_ready = b.process().WaitReady(milliseconds(10'000)).ok();
    ASSERT_NE(a_ready, b_ready) << "a: " << a.process().Log() << "b: " << b.process().Log();
    ServerProcess& winner = a_ready ? a : b;
    ServerProcess& loser = a_ready ? b : a;
    std::optional<int> exit = loser.process().WaitExit(milliseconds(10'000));
    ASSERT_TRUE(exit.has_value());
    EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) != 0) << "status " << *exit;
    EXPECT_NE(loser.process().Log().find("another lapce-ai server (pid " +
                                         std::to_string(winner.pid()) + ") is serving"),
              std::string::npos)
        << loser.process().Log();
    ipc::Client client(DefaultClientOptions(path));
    Result<Health> health = QueryHealth(client);
    ASSERT_TRUE(health.ok()) << health.error().ToString();
    EXPECT_EQ(health->pid, static_cast<uint64_t>(winner.pid()));
  }
}

TEST(IpcLifecycle, ClientsKilledInTheMiddleOfLargeMessagesLeaveNothingBehind) {
  constexpr int kCycles = 10;
  constexpr int kWarmupCycles = 3;
  constexpr size_t kMessageBytes = 1u << 20;
  constexpr size_t kMaxRssGrowthBytes = 2u << 20;

  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess server(dir, path);
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::Client monitor(DefaultClientOptions(path));
  ASSERT_TRUE(EchoOnce(monitor, "monitor").ok());
  size_t baseline_fds = OpenFdCount(server.pid());  // Upper bound until settled, as above.

  bool warmed_up = false;
  uint64_t connections = 0;
  size_t fds = 0;
  auto settled = [&] {
    Result<Health> h = QueryHealth(monitor);
    connections = h.ok() ? h->connections : UINT64_MAX;
    fds = OpenFdCount(server.pid());
    return connections == 1 && (warmed_up ? fds == baseline_fds : fds <= baseline_fds);
  };
  size_t rss_after_warmup = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    ChildProcess child;
    ASSERT_TRUE(child
                    .Spawn({HelperBinary(), "echo-forever", path, std::to_string(kMessageBytes)},
                           dir.path(), dir.File("helper.log"))
                    .ok());
    Status ready = child.WaitReady(milliseconds(10'000));
    ASSERT_TRUE(ready.ok()) << "cycle " << cycle << ": " << ready.ToString();
    child.Kill();  // Most likely mid-way through its next request or reply.
    ASSERT_TRUE(EchoOnce(monitor, "still serving").ok()) << "cycle " << cycle;
    if (cycle + 1 == kWarmupCycles) {
      ASSERT_TRUE(PollUntil(settled, milliseconds(5'000)))
          << connections << " connections, " << fds << " fds (baseline " << baseline_fds << ")";
      rss_after_warmup = VmRssBytes(server.pid());
      baseline_fds = fds;
      warmed_up = true;
    }
  }
  EXPECT_TRUE(PollUntil(settled, milliseconds(5'000)))
      << connections << " connections, " << fds << " fds (baseline " << baseline_fds << ")";
  size_t rss = VmRssBytes(server.pid());
  EXPECT_LT(rss, rss_after_warmup + kMaxRssGrowthBytes)
      << "VmRSS grew from " << rss_after_warmup << " to " << rss << " bytes";
}

// The terminal `serve` runs in closes (SIGHUP): it stops as for SIGTERM, socket removed (it died
// at once, leaving the socket, and the commands its sessions ran lived on).
TEST(IpcLifecycle, SighupStopsGracefullyToo) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess server(dir, path);
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  server.process().Signal(SIGHUP);
  std::optional<int> exit = server.process().WaitExit(milliseconds(2'000));
  ASSERT_TRUE(exit.has_value()) << server.process().Log();
  ASSERT_TRUE(WIFEXITED(*exit)) << "status " << *exit;
  EXPECT_EQ(WEXITSTATUS(*exit), 0) << server.process().Log();
  struct stat st;
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "the socket file is still there";
}

TEST(IpcLifecycle, SigtermTellsClientsRemovesTheSocketAndExitsZeroWithin2s) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ServerProcess server(dir, path);
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();

  std::vector<std::unique_ptr<ipc::Client>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<ipc::Client>(DefaultClientOptions(path)));
    ASSERT_TRUE(EchoOnce(*idle.back(), "idle " + std::to_string(i)).ok());
  }

  // A request the server never answers: a cancel of a stream that does not exist. Its caller
  // waits in Next() until the server goes away.
  ipc::Client waiting(DefaultClientOptions(path));
  ASSERT_TRUE(EchoOnce(waiting, "waiting").ok());
  Result<uint64_t> pending = waiting.Send(static_cast<uint16_t>(ipc::MessageType::kCancel), {});
  ASSERT_TRUE(pending.ok());
  std::optional<Error> pending_error;
  uint64_t pending_returned = 0;
  std::latch waiting_started(1);
  std::thread waiter([&] {
    waiting_started.count_down();
    Result<ipc::Response> r = waiting.Next(*pending, milliseconds(10'000));
    pending_returned = ipc::NowNs();
    if (!r.ok()) pending_error = r.error();
  });
  waiting_started.wait();

  uint64_t signalled = ipc::NowNs();
  server.process().Signal(SIGTERM);
  std::optional<int> exit = server.process().WaitExit(milliseconds(2'000));
  uint64_t exited = ipc::NowNs();
  waiter.join();
  ASSERT_TRUE(exit.has_value()) << "still running 2 s after SIGTERM; log:\n"
                                << server.process().Log();
  ASSERT_TRUE(WIFEXITED(*exit)) << "status " << *exit;
  EXPECT_EQ(WEXITSTATUS(*exit), 0) << server.process().Log();
  EXPECT_LT(exited - signalled, 2'000 * kMs);
  struct stat st;
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "the socket file is still there";
  EXPECT_NE(::lstat((path + ".lock").c_str(), &st), 0) << "the lock file is still there";

  ASSERT_TRUE(pending_error.has_value()) << "the pending request got a reply";
  EXPECT_EQ(pending_error->code(), ErrorCode::kUnavailable) << pending_error->ToString();
  EXPECT_NE(pending_error->message().find("shutting down"), std::string::npos)
      << pending_error->ToString();
  EXPECT_LT(pending_returned - signalled, 2'000 * kMs);

  // Idle clients find the shutdown frame on their next call (Call may then retry once, and find
  // no server); afterwards they fail fast.
  for (size_t i = 0; i < idle.size(); ++i) {
    Status s = EchoOnce(*idle[i], "after shutdown", milliseconds(2'000));
    EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << "client " << i << ": " << s.ToString();
    uint64_t start = ipc::NowNs();
    Status again = EchoOnce(*idle[i], "again", milliseconds(2'000));
    EXPECT_EQ(again.code(), ErrorCode::kUnavailable) << again.ToString();
    EXPECT_LT(ipc::NowNs() - start, 50 * kMs);
  }
}

}  // namespace
}  // namespace lai::ipc_test
