// JSON-RPC over a real ipc::Server and ipc::Clients in one process.
#include "rpc/shm_transport.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "rpc/test_support.h"
#include "server/services.h"

namespace lai::rpc {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using test_support::Latch;

constexpr uint16_t kOpen = server::ToWire(server::ServiceType::kRpcOpen);
constexpr uint16_t kMessage = server::ToWire(server::ServiceType::kRpcMessage);
constexpr uint32_t kMaxMessageBytes = 16u << 20;

// The per-channel state of the test service: counts the channels that were torn down.
class CountingState : public ChannelState {
 public:
  explicit CountingState(std::atomic<int>& destroyed) : destroyed_(destroyed) {}
  ~CountingState() override { ++destroyed_; }

 private:
  std::atomic<int>& destroyed_;
};

class ShmRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/lai-rpc-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    ipc::ServerOptions options;
    options.socket_path = dir_ + "/s.sock";
    options.workers = 2;
    options.max_message_bytes = kMaxMessageBytes;
    server_ = std::make_unique<ipc::Server>(options);
    service_ = std::make_unique<ShmRpcService>(
        ShmRpcServiceOptions{.open_type = kOpen, .message_type = kMessage},
        [this](Peer& peer) { return SetUpChannel(peer); });
    service_->Register(*server_);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.error().message();
  }

  void TearDown() override {
    // The transport's reader uses the peer and the peer's handlers use the transport: stop the
    // reader first, then end the peer, then the transport.
    if (client_) client_->Close();
    client_peer_.reset();
    client_.reset();
    if (server_) server_->Shutdown();
    service_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<ChannelState> SetUpChannel(Peer& peer) {
    peer.HandleRequest("echo",
                       [](std::string_view params, const RequestContext&) -> Result<std::string> {
                         return std::string(params);
                       });
    peer.HandleRequest("ask_client",
                       [&peer](std::string_view, const RequestContext&) -> Result<std::string> {
                         for (int n = 0; n < 3; ++n) {
                           RETURN_IF_ERROR(peer.Notify("session/update", Json{{"n", n}}.dump()));
                         }
                         Result<std::string> answer =
                             peer.Request("client/name", "{}", {.timeout = test_support::kWait});
                         if (!answer.ok()) return answer.error();
                         return R"({"client":)" + *answer + "}";
                       });
    peer.HandleRequest(
        "block", [this](std::string_view, const RequestContext& context) -> Result<std::string> {
          Latch cancelled;
          uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
          block_entered_.CountDown();
          bool was_cancelled = cancelled.Wait();
          context.cancel.RemoveCallback(id);
          if (was_cancelled) block_cancelled_.CountDown();
          return Error(ErrorCode::kCancelled, "block cancelled");
        });
    peer.HandleRequest(
        "flood", [this, &peer](std::string_view, const RequestContext&) -> Result<std::string> {
          const std::string padding(1000, 'x');
          for (int n = 0; n < kFloodCount; ++n) {
            RETURN_IF_ERROR(peer.Notify("flood/item", Json{{"n", n}, {"pad", padding}}.dump()));
          }
          flood_sent_.CountDown();
          return std::string("{}");
        });
    peer.HandleRequest(
        "flood_forever",
        [this, &peer](std::string_view, const RequestContext&) -> Result<std::string> {
          // As the providers' I/O thread, which streams every session's updates: it must not
          // wait for one client.
          log::MarkThisThreadShared();
          const std::string padding(64 * 1024, 'x');
          for (int n = 0; n < 1000; ++n) {  // 64 MB at most: far beyond the outbox's 16 MiB.
            Status sent = peer.Notify("flood/item", Json{{"n", n}, {"pad", padding}}.dump());
            if (!sent.ok()) {
              log::MarkThisThreadShared(false);
              flood_refused_.CountDown();
              return sent.error();
            }
          }
          log::MarkThisThreadShared(false);
          return std::string("{}");
        });
    peer.HandleRequest("big", [](std::string_view, const RequestContext&) -> Result<std::string> {
      return Json{{"blob", std::string(10'000, 'b')}}.dump();
    });
    peer.HandleRequest(
        "ask_big", [&peer](std::string_view, const RequestContext&) -> Result<std::string> {
          Status notified = peer.Notify("session/update",
                                        Json{{"n", 7}, {"pad", std::string(10'000, 'p')}}.dump());
          if (notified.code() != ErrorCode::kResourceExhausted) {
            return Error(ErrorCode::kInternal, "the notification was not refused");
          }
          Result<std::string> asked =
              peer.Request("client/name", Json{{"pad", std::string(10'000, 'p')}}.dump(),
                           {.timeout = test_support::kWait});
          return Json{
              {"refused", !asked.ok() && asked.error().code() == ErrorCode::kResourceExhausted},
              {"message", asked.ok() ? "" : asked.error().message()}}
              .dump();
        });
    return std::make_unique<CountingState>(states_destroyed_);
  }

  static constexpr int kFloodCount = 3000;  // 3 MB: far more than a connection's ring holds.

  ipc::ClientOptions ClientOptions() {
    ipc::ClientOptions options;
    options.socket_path = dir_ + "/s.sock";
    options.stream.max_message_bytes = client_max_message_bytes_;
    options.request_timeout = milliseconds(10'000);
    return options;
  }

  void ConnectClient() {
    Result<std::unique_ptr<ShmClientTransport>> client =
        ShmClientTransport::Connect(ClientOptions(), kOpen, kMessage);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = std::move(*client);
    client_peer_ = std::make_unique<Peer>(*client_, PeerOptions{.name = "client"});
    client_peer_->HandleRequest("client/name",
                                [](std::string_view, const RequestContext&) -> Result<std::string> {
                                  return std::string(R"("test-client")");
                                });
    client_peer_->HandleNotification("session/update", [this](std::string_view params) {
      updates_.push_back(Json::parse(params)["n"].get<int>());
    });
    client_peer_->OnClose([this] { client_closed_.CountDown(); });
    client_->Start(*client_peer_);
  }

  // A second channel opened now is answered (whatever the first one is stuck in).
  void ExpectAnotherChannelIsServed() {
    Result<std::unique_ptr<ShmClientTransport>> second =
        ShmClientTransport::Connect(ClientOptions(), kOpen, kMessage);
    ASSERT_TRUE(second.ok()) << second.error().ToString();
    Peer second_peer(**second, {.name = "second"});
    (*second)->Start(second_peer);
    Result<std::string> echo = second_peer.Request("echo", "[1]", {.timeout = test_support::kWait});
    EXPECT_TRUE(echo.ok()) << echo.error().ToString();
    (*second)->Close();
  }

  // Polls `condition` until it holds or kWait passes (the service ends channels on its threads).
  template <typename F>
  bool Eventually(F condition) {
    auto deadline = std::chrono::steady_clock::now() + test_support::kWait;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }

  uint32_t client_max_message_bytes_ = kMaxMessageBytes;
  std::string dir_;
  std::unique_ptr<ipc::Server> server_;
  std::unique_ptr<ShmRpcService> service_;
  std::unique_ptr<ShmClientTransport> client_;
  std::unique_ptr<Peer> client_peer_;
  std::vector<int> updates_;  // Written on the client's reader thread.
  Latch client_closed_;
  Latch block_entered_;
  Latch block_cancelled_;
  Latch flood_sent_;
  Latch flood_refused_;
  Latch reader_released_;
  std::atomic<int> states_destroyed_{0};
};

TEST_F(ShmRpcTest, RequestsBothWaysWithNotificationsInOrder) {
  ConnectClient();
  Result<std::string> echo =
      client_peer_->Request("echo", R"({"hello":"shm"})", {.timeout = test_support::kWait});
  ASSERT_TRUE(echo.ok()) << echo.error().ToString();
  EXPECT_EQ(*echo, R"({"hello":"shm"})");
  // The server's handler notifies the client, then calls back into it before answering.
  Result<std::string> asked =
      client_peer_->Request("ask_client", "{}", {.timeout = test_support::kWait});
  ASSERT_TRUE(asked.ok()) << asked.error().ToString();
  EXPECT_EQ(*asked, R"({"client":"test-client"})");
  EXPECT_EQ(updates_, (std::vector<int>{0, 1, 2}));
  Result<std::string> missing =
      client_peer_->Request("nope", "{}", {.timeout = test_support::kWait});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "nope: Method not found: nope (JSON-RPC error -32601)");
}

TEST_F(ShmRpcTest, ConcurrentRequestsAndTwoChannels) {
  ConnectClient();
  Result<std::unique_ptr<ShmClientTransport>> second =
      ShmClientTransport::Connect(ClientOptions(), kOpen, kMessage);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  Peer second_peer(**second, {.name = "second"});
  (*second)->Start(second_peer);
  EXPECT_NE((*second)->token(), client_->token());
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    Peer& peer = t % 2 == 0 ? *client_peer_ : second_peer;
    threads.emplace_back([&peer, &correct, t] {
      for (int i = 0; i < 25; ++i) {
        std::string params = Json{{"t", t}, {"i", i}}.dump();
        Result<std::string> r = peer.Request("echo", params, {.timeout = test_support::kWait});
        if (r.ok() && *r == params) ++correct;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(correct.load(), 100);
  EXPECT_EQ(service_->open_channels(), 2u);
  (*second)->Close();
  EXPECT_TRUE(second_peer.is_closed());
}

TEST_F(ShmRpcTest, TenMegabyteMessagesBothWays) {
  ConnectClient();
  // {"blob":"qqq…\nqqq…"}: 10 MB with an escaped newline, still one message.
  std::string params =
      R"({"blob":")" + std::string(5'000'000, 'q') + "\\n" + std::string(5'000'000, 'q') + R"("})";
  Result<std::string> echo =
      client_peer_->Request("echo", params, {.timeout = std::chrono::seconds(30)});
  ASSERT_TRUE(echo.ok()) << echo.error().ToString();
  EXPECT_TRUE(*echo == params) << "the echo differs from the 10 MB request";
}

// A message larger than the client's connection takes fails alone: a too-large answer reaches
// the client as an error answer (it waited for ever), a too-large request or notification fails
// at the server, and the channel goes on (it was closed, and every later call hung).
TEST_F(ShmRpcTest, AMessageOverTheClientsLimitFailsAloneAndTheChannelGoesOn) {
  client_max_message_bytes_ = 4096;
  ConnectClient();
  Result<std::string> big = client_peer_->Request("big", "{}", {.timeout = test_support::kWait});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message().find("over the limit of 4096 bytes"), std::string::npos)
      << big.error().message();
  Result<std::string> asked =
      client_peer_->Request("ask_big", "{}", {.timeout = test_support::kWait});
  ASSERT_TRUE(asked.ok()) << asked.error().ToString();
  EXPECT_TRUE(Json::parse(*asked)["refused"].get<bool>()) << *asked;
  Result<std::string> echo =
      client_peer_->Request("echo", R"({"still":"open"})", {.timeout = test_support::kWait});
  ASSERT_TRUE(echo.ok()) << echo.error().ToString();
  EXPECT_EQ(*echo, R"({"still":"open"})");
  EXPECT_TRUE(updates_.empty());
}

TEST_F(ShmRpcTest, CancelReachesTheServerHandler) {
  ConnectClient();
  CancelSignal cancel;
  std::thread canceller([&] {
    if (block_entered_.Wait()) cancel.Cancel();
  });
  Result<std::string> r =
      client_peer_->Request("block", "{}", {.timeout = test_support::kWait, .cancel = &cancel});
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled);
  EXPECT_TRUE(block_cancelled_.Wait()) << "$/cancel_request did not reach the handler";
}

TEST_F(ShmRpcTest, ClosingTheClientEndsTheChannelAndItsHandlers) {
  ConnectClient();
  std::thread caller([this] { (void)client_peer_->Request("block", "{}"); });
  ASSERT_TRUE(block_entered_.Wait());
  client_->Close();  // The server closes the channel's peer: the handler sees its cancel signal.
  caller.join();     // Client_peer was closed by the reader: the pending request failed.
  EXPECT_TRUE(client_closed_.Wait());
  EXPECT_TRUE(block_cancelled_.Wait());
  EXPECT_TRUE(Eventually([&] { return service_->open_channels() == 0 && states_destroyed_ == 1; }));
  EXPECT_EQ(client_->Send("{}").code(), ErrorCode::kUnavailable);
}

TEST_F(ShmRpcTest, ServerShutdownFailsPendingClientRequests) {
  ConnectClient();
  Result<std::string> r = std::string();
  std::thread caller([&] { r = client_peer_->Request("block", "{}"); });
  ASSERT_TRUE(block_entered_.Wait());
  server_->Shutdown();
  caller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
  EXPECT_TRUE(client_closed_.Wait());
}

// A channel the stopping server ends (EndAll) ends with an error saying so, not with the empty
// final reply of a channel its client closed: an editor then knows to reconnect.
TEST_F(ShmRpcTest, AChannelEndedByTheServerStoppingEndsWithAnError) {
  ipc::Client raw(ClientOptions());
  Result<uint64_t> open = raw.Send(kOpen, {});
  ASSERT_TRUE(open.ok()) << open.error().ToString();
  Result<ipc::Response> token = raw.Next(*open, test_support::kWait);
  ASSERT_TRUE(token.ok()) << token.error().ToString();
  ASSERT_FALSE(token->is_final);
  service_->EndAll(milliseconds(2'000));
  Result<ipc::Response> end = raw.Next(*open, test_support::kWait);
  ASSERT_FALSE(end.ok()) << "the channel ended with a plain final reply";
  EXPECT_EQ(end.error().code(), ErrorCode::kUnavailable) << end.error().ToString();
  EXPECT_NE(end.error().message().find("shutting down"), std::string::npos)
      << end.error().ToString();
}

TEST_F(ShmRpcTest, MessagesForUnknownChannelsAreDropped) {
  ConnectClient();
  ipc::Client raw(ClientOptions());
  std::string frame(kChannelTokenBytes, '\0');
  frame += R"({"jsonrpc":"2.0","id":1,"method":"echo"})";
  ASSERT_TRUE(raw.Notify(kMessage, std::as_bytes(std::span(frame))).ok());
  Result<ipc::Response> short_frame = raw.Call(kMessage, std::as_bytes(std::span(frame.data(), 3)));
  ASSERT_FALSE(short_frame.ok());
  EXPECT_EQ(short_frame.error().code(), ErrorCode::kInvalidArgument);
  // The real channel is unaffected.
  Result<std::string> echo = client_peer_->Request("echo", "[1]", {.timeout = test_support::kWait});
  ASSERT_TRUE(echo.ok()) << echo.error().ToString();
}

// A client that stops reading holds up only its own channel: the server's sends return at once
// (they may come from a thread every session shares) and arrive, in order, once it reads again.
TEST_F(ShmRpcTest, AClientThatStopsReadingDoesNotHoldUpTheServersSends) {
  ConnectClient();
  Latch reading;
  std::vector<int> seen;  // Written on the client's reader thread.
  client_peer_->HandleNotification("flood/item", [&](std::string_view params) {
    if (seen.empty()) {
      EXPECT_TRUE(reading.Wait()) << "the test never let the client read";
    }
    seen.push_back(Json::parse(params)["n"].get<int>());
  });
  Latch answered;
  client_peer_->RequestAsync("flood", "{}", [&](Result<std::string> result) {
    EXPECT_TRUE(result.ok()) << result.error().ToString();
    answered.CountDown();
  });
  // The client is stuck in its first notification; every other one must still be sent.
  EXPECT_TRUE(flood_sent_.Wait()) << "the server's sends waited for a client that is not reading";
  // Another channel is served meanwhile.
  ExpectAnotherChannelIsServed();

  reading.CountDown();
  ASSERT_TRUE(answered.Wait());
  ASSERT_EQ(seen.size(), static_cast<size_t>(kFloodCount));
  for (int n = 0; n < kFloodCount; ++n) ASSERT_EQ(seen[n], n);
}

// A client that stops reading for good loses its channel once 16 MiB wait for it when the sender
// is a thread every session shares (the providers' I/O thread, which must not wait for one
// client); other channels go on, and the client learns of it when it reads again.
TEST_F(ShmRpcTest, AClientFarBehindLosesItsChannelAndOthersGoOn) {
  ConnectClient();
  client_peer_->HandleNotification("flood/item", [this](std::string_view) {
    (void)reader_released_.Wait();  // Stuck in the first one, until the test ends.
  });
  client_peer_->RequestAsync("flood_forever", "{}", [](Result<std::string>) {});
  EXPECT_TRUE(flood_refused_.Wait()) << "the sends to a client that stopped reading never failed";
  ExpectAnotherChannelIsServed();
  reader_released_.CountDown();
  // Reading again, the stuck client learns that its channel ended.
  EXPECT_TRUE(client_closed_.Wait()) << "the stuck client's channel never ended";
}

}  // namespace
}  // namespace lai::rpc
