// A hostile client corrupting its frames and rings, next to well-behaved clients; and the
// zero-allocation steady state of both processes.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/alloc_counter.h"
#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc/stream.h"
#include "ipc/stream_internal.h"
#include "ipc/wait.h"
#include "ipc_test_support.h"

namespace lai::ipc_test {

// The hostile client needs its Stream's private state (its socket and ring block). An explicit
// instantiation may name a private member; the friend function hands the pointer out.
using StreamStateMember = std::unique_ptr<ipc::Stream::State> ipc::Stream::*;
StreamStateMember GetStreamStateMember();
template <StreamStateMember kMember>
struct StreamStateAccess {
  friend StreamStateMember GetStreamStateMember() { return kMember; }
};
template struct StreamStateAccess<&ipc::Stream::s_>;

namespace {

constexpr uint16_t kEcho = static_cast<uint16_t>(ipc::MessageType::kEcho);
constexpr uint64_t kMs = 1'000'000;

ipc::Stream::State& StateOf(ipc::Stream& stream) { return *(stream.*GetStreamStateMember()); }

// Well-behaved clients doing verified round trips on other threads until stopped.
class Bystanders {
 public:
  Bystanders(const std::string& socket_path, int count) {
    for (int id = 0; id < count; ++id) {
      threads_.emplace_back([this, socket_path, id] { Run(socket_path, id); });
    }
  }
  ~Bystanders() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  uint64_t round_trips() const { return round_trips_.load(); }
  uint64_t failures() const { return failures_.load(); }
  std::string first_failure() {
    std::lock_guard lock(mutex_);
    return first_failure_;
  }

 private:
  void Run(const std::string& socket_path, int id) {
    ipc::Client client(DefaultClientOptions(socket_path));
    std::vector<std::byte> payload(1500);
    // Bounded: a stuck test ends at the deadline even if Stop() never comes.
    uint64_t deadline = ipc::NowNs() + 30'000 * kMs;
    for (uint32_t seq = 0; !stop_.load() && ipc::NowNs() < deadline; ++seq) {
      size_t size = (seq * 37 + static_cast<uint32_t>(id) * 11) % payload.size();
      std::span<std::byte> request(payload.data(), size);
      FillPattern(request, (uint64_t{static_cast<uint32_t>(id)} << 32) | seq);
      Result<ipc::Response> r = client.Call(kEcho, request, milliseconds(5'000));
      if (!r.ok() || r->payload.size() != size ||
          std::memcmp(r->payload.data(), request.data(), size) != 0) {
        failures_.fetch_add(1);
        std::lock_guard lock(mutex_);
        if (first_failure_.empty()) {
          first_failure_ = "bystander " + std::to_string(id) + " call " + std::to_string(seq) +
                           ": " + (r.ok() ? "reply altered" : r.error().ToString());
        }
        continue;
      }
      round_trips_.fetch_add(1);
    }
  }

  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> round_trips_{0};
  std::atomic<uint64_t> failures_{0};
  std::mutex mutex_;
  std::string first_failure_;
};

// Writes one frame whose header `corrupt` may rewrite after it was encoded (and before it is
// published). `payload_bytes` of pattern follow the header.
void SendCorrupted(ipc::Stream& stream, uint32_t payload_bytes,
                   const std::function<void(std::byte* header)>& corrupt,
                   uint64_t request_id = 77) {
  ipc::FrameHeader h{.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = request_id};
  std::span<std::byte> body = stream.TryBeginSend(h, payload_bytes);
  ASSERT_EQ(body.size(), payload_bytes) << "no room for the frame";
  FillPattern(body, payload_bytes);
  corrupt(body.data() - ipc::kFrameHeaderBytes);
  stream.FinishSend();
}

void Rewrite(std::byte* header, const ipc::FrameHeader& h) { ipc::EncodeFrameHeader(h, header); }

// Two 100-byte fragments with the given headers (the first of a 1000-byte echo by default).
void SendTwoFragments(ipc::Stream& s, const ipc::FrameHeader& first,
                      const ipc::FrameHeader& second) {
  SendCorrupted(s, 100, [&](std::byte* h) { Rewrite(h, first); });
  SendCorrupted(s, 100, [&](std::byte* h) { Rewrite(h, second); });
}

constexpr ipc::FrameHeader kFirstFragment{
    .flags = ipc::kFlagMore, .type = kEcho, .message_bytes = 1000, .request_id = 77};

struct CorruptionCase {
  std::string name;
  std::function<void(ipc::Stream&)> send;
  std::string expected_reason;      // Part of the error frame's message.
  bool good_request_first = false;  // `send` puts a good echo (id 5) before the bad frame.
};

// A good request and a bad frame in one burst, so the server handles one and then closes the
// connection in the same visit.
void SendGoodThenBad(ipc::Stream& s) {
  std::string ping = "ping";
  ipc::FrameHeader h{.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = 5};
  std::span<std::byte> body = s.TryBeginSend(h, static_cast<uint32_t>(ping.size()));
  ASSERT_EQ(body.size(), ping.size());
  std::memcpy(body.data(), ping.data(), ping.size());
  s.FinishSend();
  SendCorrupted(s, 16, [](std::byte* header) { std::memcpy(header, "JUNK", 4); });
}

std::vector<CorruptionCase> CorruptionCases() {
  std::vector<CorruptionCase> cases;
  cases.push_back({"bad magic",
                   [](ipc::Stream& s) {
                     SendCorrupted(s, 16, [](std::byte* h) { std::memcpy(h, "JUNK", 4); });
                   },
                   "bad magic"});
  cases.push_back({"bad version",
                   [](ipc::Stream& s) {
                     SendCorrupted(s, 16, [](std::byte* h) {
                       h[4] = std::byte{7};
                       uint32_t check = ipc::FrameCheck(h);
                       std::memcpy(h + 12, &check, 4);
                     });
                   },
                   "unsupported version 7"});
  cases.push_back(
      {"oversized length",
       [](ipc::Stream& s) {
         SendCorrupted(s, 16, [](std::byte* h) {
           Rewrite(h, {.flags = 0, .type = kEcho, .message_bytes = 0x7fffffff, .request_id = 77});
         });
       },
       "exceeds the maximum"});
  cases.push_back({"truncated payload",
                   [](ipc::Stream& s) {
                     SendCorrupted(s, 16, [](std::byte* h) {
                       Rewrite(h,
                               {.flags = 0, .type = kEcho, .message_bytes = 116, .request_id = 77});
                     });
                   },
                   "does not match the 16 payload bytes"});
  cases.push_back(
      {"check mismatch",
       [](ipc::Stream& s) { SendCorrupted(s, 16, [](std::byte* h) { h[17] ^= std::byte{0x40}; }); },
       "header check mismatch"});
  cases.push_back(
      {"unknown flags",
       [](ipc::Stream& s) {
         SendCorrupted(s, 16, [](std::byte* h) {
           Rewrite(h, {.flags = 0x80, .type = kEcho, .message_bytes = 16, .request_id = 77});
         });
       },
       "unknown flags"});
  cases.push_back({"type out of range",
                   [](ipc::Stream& s) {
                     SendCorrupted(s, 16, [](std::byte* h) {
                       Rewrite(h, {.flags = 0, .type = 300, .message_bytes = 16, .request_id = 77});
                     });
                   },
                   "out of range"});
  cases.push_back({"random header",
                   [](ipc::Stream& s) {
                     SendCorrupted(s, 64, [](std::byte* h) { FillPattern({h, 24}, 4242); });
                   },
                   "bad frame"});
  cases.push_back({"fragmented message cut short",
                   [](ipc::Stream& s) {
                     ipc::FrameHeader last = kFirstFragment;
                     last.flags = 0;
                     SendTwoFragments(s, kFirstFragment, last);
                   },
                   "message ended after 200 of 1000 bytes"});
  cases.push_back({"fragments of two messages interleaved",
                   [](ipc::Stream& s) {
                     ipc::FrameHeader other = kFirstFragment;
                     other.request_id = 78;
                     SendTwoFragments(s, kFirstFragment, other);
                   },
                   "different message"});
  cases.push_back({"fragments longer than declared",
                   [](ipc::Stream& s) {
                     ipc::FrameHeader first = kFirstFragment;
                     first.message_bytes = 150;
                     SendTwoFragments(s, first, first);
                   },
                   "exceed the declared length"});
  cases.push_back({"good request then bad magic in one burst", SendGoodThenBad, "bad magic",
                   /*good_request_first=*/true});
  return cases;
}

// Waits until the server closes `stream`'s control socket (it only ever becomes readable then).
bool ServerClosed(ipc::Stream& stream, milliseconds timeout) {
  pollfd pfd{StateOf(stream).socket.get(), POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
}

TEST(IpcRobustness, CorruptFramesGetAnErrorFrameAndCloseOnlyThatConnection) {
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  Bystanders bystanders(server.socket_path(), 4);

  std::vector<CorruptionCase> cases = CorruptionCases();
  for (const CorruptionCase& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ipc::Stream> stream = ipc::Stream::Connect(server.socket_path());
    ASSERT_TRUE(stream.ok()) << stream.error().ToString();
    // One good round trip first, so the server serves this connection.
    std::string hello = "hello";
    ASSERT_TRUE(stream
                    ->Send({.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = 1},
                           std::as_bytes(std::span(hello)))
                    .ok());
    Result<ipc::Message> echoed = stream->Receive(ipc::NowNs() + 5'000 * kMs);
    ASSERT_TRUE(echoed.ok()) << echoed.error().ToString();
    stream->Release();

    c.send(*stream);
    if (c.good_request_first) {
      Result<ipc::Message> pong = stream->Receive(ipc::NowNs() + 5'000 * kMs);
      ASSERT_TRUE(pong.ok()) << pong.error().ToString();
      EXPECT_EQ(pong->header.request_id, 5u);
      EXPECT_EQ(AsText(pong->payload), "ping");
      stream->Release();
    }
    Result<ipc::Message> reply = stream->Receive(ipc::NowNs() + 5'000 * kMs);
    ASSERT_TRUE(reply.ok()) << "expected an error frame, got " << reply.error().ToString();
    EXPECT_NE(reply->header.flags & ipc::kFlagError, 0);
    EXPECT_EQ(reply->header.request_id, 0u);
    Error error = ipc::ParseErrorPayload(reply->payload);
    EXPECT_EQ(error.code(), ErrorCode::kProtocol) << error.ToString();
    EXPECT_NE(error.message().find(c.expected_reason), std::string::npos) << error.ToString();
    stream->Release();
    EXPECT_TRUE(ServerClosed(*stream, milliseconds(5'000)));
    Result<ipc::Message> after = stream->Receive(ipc::NowNs() + 5'000 * kMs);
    ASSERT_FALSE(after.ok());
    EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable) << after.error().ToString();
  }

  // A client that publishes an impossible read position for its reply ring: the server must
  // notice when it next needs space there, and drop the connection.
  {
    SCOPED_TRACE("corrupt read position");
    Result<ipc::Stream> stream = ipc::Stream::Connect(server.socket_path());
    ASSERT_TRUE(stream.ok()) << stream.error().ToString();
    std::string hello = "hello";
    ASSERT_TRUE(stream
                    ->Send({.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = 1},
                           std::as_bytes(std::span(hello)))
                    .ok());
    Result<ipc::Message> echoed = stream->Receive(ipc::NowNs() + 5'000 * kMs);
    ASSERT_TRUE(echoed.ok()) << echoed.error().ToString();
    stream->Release();
    // Block layout: RingControl c2s | RingControl s2c | cells.
    auto* s2c = reinterpret_cast<ipc::RingControl*>(StateOf(*stream).block.data() +
                                                    sizeof(ipc::RingControl));
    std::atomic_ref<uint64_t>(s2c->consumed).store(uint64_t{1} << 40, std::memory_order_release);
    // A reply larger than the ring makes the server look at the read position. We never read
    // (reading would publish a sane position again).
    std::vector<std::byte> big = Pattern(8 * 1024, 9);
    ASSERT_TRUE(stream
                    ->Send({.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = 2}, big,
                           ipc::NowNs() + 5'000 * kMs)
                    .ok());
    EXPECT_TRUE(ServerClosed(*stream, milliseconds(5'000)))
        << "the server kept a connection whose ring is corrupt";
  }

  bystanders.Stop();
  EXPECT_EQ(bystanders.failures(), 0u) << bystanders.first_failure();
  EXPECT_GT(bystanders.round_trips(), 0u);

  ipc::Client probe(DefaultClientOptions(server.socket_path()));
  Result<std::string> metrics = QueryMetrics(probe);
  ASSERT_TRUE(metrics.ok()) << metrics.error().ToString();
  EXPECT_EQ(MetricSample(*metrics, "lapce_ai_ipc_protocol_errors_total"), uint64_t{cases.size()});
  Result<Health> health = QueryHealth(probe);
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->connections, 1u);
}

// The server finds both faults of one hostile connection at once: its error frame for a bad
// frame has to be queued (the reply ring looks full) and flushing it trips over the impossible
// read position. The connection must be closed exactly once and the server keep serving.
TEST(IpcRobustness, BadFrameWhileTheReplyRingIsFullAndItsReadPositionCorrupt) {
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::Client probe(DefaultClientOptions(server.socket_path()));
  ASSERT_TRUE(QueryHealth(probe).ok());

  Result<ipc::Stream> stream = ipc::Stream::Connect(server.socket_path());
  ASSERT_TRUE(stream.ok()) << stream.error().ToString();
  // Two 400-byte echoes whose replies (7 cells each) fill 14 of the 16 reply cells; we never
  // read them.
  std::vector<std::byte> payload = Pattern(400, 1);
  for (uint64_t id = 1; id <= 2; ++id) {
    ASSERT_TRUE(
        stream->Send({.flags = 0, .type = kEcho, .message_bytes = 0, .request_id = id}, payload)
            .ok());
  }
  std::optional<uint64_t> echoes;
  ASSERT_TRUE(PollUntil(
      [&] {
        Result<std::string> metrics = QueryMetrics(probe);
        echoes = metrics.ok() ? MetricSample(*metrics, "lapce_ai_ipc_requests_total{type=\"echo\"}")
                              : std::nullopt;
        return echoes == 2u;
      },
      milliseconds(5'000)));
  auto* s2c =
      reinterpret_cast<ipc::RingControl*>(StateOf(*stream).block.data() + sizeof(ipc::RingControl));
  std::atomic_ref<uint64_t>(s2c->consumed).store(uint64_t{1} << 40, std::memory_order_release);
  SendCorrupted(*stream, 16, [](std::byte* h) { std::memcpy(h, "JUNK", 4); });
  EXPECT_TRUE(ServerClosed(*stream, milliseconds(5'000)));

  // Still serving, with a correct count, and slots handed out once each.
  Result<Health> health = QueryHealth(probe);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->connections, 1u);
  std::vector<std::unique_ptr<ipc::Client>> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(std::make_unique<ipc::Client>(DefaultClientOptions(server.socket_path())));
    std::string text = "other " + std::to_string(i);
    Result<ipc::Response> r = others.back()->Call(kEcho, std::as_bytes(std::span(text)));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(AsText(r->payload), text);
  }
  health = QueryHealth(probe);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->connections, 5u);
}

TEST(IpcSteadyState, EchoRoundTripsAllocateNothingInClientOrServer) {
  constexpr int kWarmup = 2'000;
  constexpr int kRoundTrips = 10'000;
  TempDir dir;
  ServerProcess server(dir, dir.File("engine.sock"));
  ASSERT_TRUE(server.Start().ok()) << server.process().Log();
  ipc::Client client(DefaultClientOptions(server.socket_path()));
  std::vector<std::byte> payload = Pattern(64, 64);

  int failures = 0;
  auto round_trips = [&](int count) {
    for (int i = 0; i < count; ++i) {
      payload[0] = static_cast<std::byte>(i);
      Result<ipc::Response> r = client.Call(kEcho, payload);
      if (!r.ok() || r->payload.size() != payload.size() ||
          std::memcmp(r->payload.data(), payload.data(), payload.size()) != 0) {
        ++failures;
      }
    }
  };
  round_trips(kWarmup);
  ASSERT_EQ(failures, 0);
  if (!IsCountingAllocations()) {
    GTEST_SKIP() << "allocation counting is off in sanitizer builds (their allocator owns new)";
  }

  // What asking for health costs the server, measured with no traffic in between.
  Result<Health> first = QueryHealth(client);
  Result<Health> second = QueryHealth(client);
  ASSERT_TRUE(first.ok() && second.ok());
  uint64_t per_health_call = second->allocations - first->allocations;

  // A window of round trips, measured on both sides. A path taken for the first time (a pool
  // buffer or queue grown once, say when a loaded machine delays the client) may allocate once;
  // a per-message allocation shows in every window. So: if the first window saw any, the second
  // must see none.
  struct Window {
    uint64_t client = 0;
    uint64_t server = 0;
  };
  uint64_t server_mark = second->allocations;
  auto window = [&]() -> Window {
    uint64_t client_before = AllocationCount();
    round_trips(kRoundTrips);
    uint64_t client_after = AllocationCount();
    Result<Health> after = QueryHealth(client);
    EXPECT_TRUE(after.ok());
    if (!after.ok()) return {};
    Window w{client_after - client_before, after->allocations - server_mark - per_health_call};
    server_mark = after->allocations;
    return w;
  };
  Window w = window();
  if (w.client != 0 || w.server != 0) {
    std::printf("first window: %llu client and %llu server allocations; measuring again\n",
                static_cast<unsigned long long>(w.client),
                static_cast<unsigned long long>(w.server));
    w = window();
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(w.client, 0u) << "allocations in the client";
  EXPECT_EQ(w.server, 0u) << "allocations in the server (a health call costs " << per_health_call
                          << ")";
}

}  // namespace
}  // namespace lai::ipc_test
