// Listener + Stream across threads in one process: echo, deadlines, peer death, and every
// handshake refusal, driven by real and hand-made (raw) clients. The 10 MiB echo lives in
// stream_large_test.cc (integration).
#include "ipc/stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "ipc/buffer_pool.h"
#include "ipc/channel.h"
#include "ipc/handshake.h"
#include "ipc/listener.h"
#include "ipc/shm.h"
#include "ipc/socket.h"
#include "ipc/test_support.h"
#include "ipc/wait.h"

namespace lai::ipc {
namespace {

using std::chrono::milliseconds;
using test_support::BindOrDie;
using test_support::Contains;
using test_support::DeadlineIn;
using test_support::EchoServer;
using test_support::ExpectEcho;
using test_support::kWait;
using test_support::Pattern;
using test_support::SameBytes;
using test_support::TempDir;

// Both ends of one connection, both handed to the calling thread once the handshake is done.
struct Pair {
  Stream client;
  Stream server;
};

std::optional<Pair> ConnectPair(Listener& listener, const StreamOptions& options = {}) {
  auto accepted = std::async(std::launch::async, [&] { return listener.Accept(kWait); });
  Result<Stream> client = Stream::Connect(listener.path(), options);
  Result<Stream> server = accepted.get();
  EXPECT_TRUE(client.ok()) << client.error().ToString();
  EXPECT_TRUE(server.ok()) << server.error().ToString();
  if (!client.ok() || !server.ok()) return std::nullopt;
  return Pair{std::move(client).value(), std::move(server).value()};
}

// ---- Sessions ----

TEST(StreamTest, EchoRoundTrips) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  EchoServer server(listener);
  Result<Stream> client = Stream::Connect(listener.path());
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  EXPECT_TRUE(client->is_open());

  uint64_t id = 1;
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{471}, size_t{472}, size_t{473},
                      size_t{1024}, size_t{5000}, size_t{100'000}}) {
    ASSERT_NO_FATAL_FAILURE(ExpectEcho(*client, id++, Pattern(size, static_cast<uint32_t>(size))));
  }
  // Zero-copy send.
  std::span<std::byte> area = client->TryBeginSend({.type = 2, .request_id = 99}, 5);
  ASSERT_EQ(area.size(), 5u);
  std::memcpy(area.data(), "hello", 5);
  client->FinishSend();
  Result<Message> reply = client->Receive(DeadlineIn(kWait));
  ASSERT_TRUE(reply.ok()) << reply.error().ToString();
  EXPECT_EQ(reply->header.request_id, 99u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(reply->payload.data()), 5), "hello");

  client->Close();
  EXPECT_FALSE(client->is_open());
  Error end = server.Join();
  EXPECT_EQ(end.code(), ErrorCode::kUnavailable) << end.ToString();
  EXPECT_EQ(server.echoed(), 10u);
}

TEST(StreamTest, ManyMessagesBothWaysBeforeReading) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  // Small messages queue up in the ring without a reader.
  for (uint64_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        pair->client.Send({.type = 2, .request_id = i}, Pattern(10, 1), DeadlineIn(kWait)).ok());
    ASSERT_TRUE(
        pair->server.Send({.type = 2, .request_id = 100 + i}, Pattern(20, 2), DeadlineIn(kWait))
            .ok());
  }
  for (uint64_t i = 0; i < 5; ++i) {
    Result<Message> at_server = pair->server.Receive(DeadlineIn(kWait));
    ASSERT_TRUE(at_server.ok()) << at_server.error().ToString();
    EXPECT_EQ(at_server->header.request_id, i);
    Result<Message> at_client = pair->client.Receive(DeadlineIn(kWait));
    ASSERT_TRUE(at_client.ok()) << at_client.error().ToString();
    EXPECT_EQ(at_client->header.request_id, 100 + i);
    EXPECT_TRUE(SameBytes(at_client->payload, Pattern(20, 2)));
  }
  pair->server.Close();  // Server first: the client's Close then returns at once.
}

TEST(StreamTest, ReceiveDeadlineTimesOut) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());

  uint64_t start = NowNs();
  Result<Message> nothing = pair->client.Receive(DeadlineIn(milliseconds(20)));
  uint64_t waited_ms = (NowNs() - start) / 1'000'000;
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code(), ErrorCode::kTimeout) << nothing.error().ToString();
  EXPECT_GE(waited_ms, 19u);
  EXPECT_LT(waited_ms, 1000u);
  // A receive timeout loses nothing: the connection still works.
  EXPECT_TRUE(pair->client.is_open());
  ASSERT_TRUE(
      pair->server.Send({.type = 2, .request_id = 7}, Pattern(3, 3), DeadlineIn(kWait)).ok());
  Result<Message> late = pair->client.Receive(DeadlineIn(kWait));
  ASSERT_TRUE(late.ok()) << late.error().ToString();
  EXPECT_EQ(late->header.request_id, 7u);

  Result<Message> server_nothing = pair->server.Receive(DeadlineIn(milliseconds(5)));
  ASSERT_FALSE(server_nothing.ok());
  EXPECT_EQ(server_nothing.error().code(), ErrorCode::kTimeout);
  pair->server.Close();
}

TEST(StreamTest, SendDeadlineMidMessageClosesTheStream) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  // Nobody reads: a message bigger than the ring cannot finish. (Server side, whose Close does
  // not wait for the peer.)
  Status sent = pair->server.Send({.type = 2}, Pattern(4096, 1), DeadlineIn(milliseconds(10)));
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.code(), ErrorCode::kTimeout) << sent.ToString();
  EXPECT_FALSE(pair->server.is_open()) << "half a message was sent: the framing is lost";
  Status again = pair->server.Send({.type = 2}, Pattern(1, 1));
  EXPECT_EQ(again.code(), ErrorCode::kUnavailable);
  // The client gets the fragments that made it, then learns the peer is gone.
  Result<Message> partial = pair->client.Receive(DeadlineIn(kWait));
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().code(), ErrorCode::kUnavailable) << partial.error().ToString();
}

TEST(StreamTest, SendDeadlineOnAFullRingBeforeAnyFrameKeepsTheStream) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  // Two largest frames fill the 1 KiB ring.
  const std::vector<std::byte> frame = Pattern(472, 1);
  ASSERT_TRUE(pair->server.Send({.type = 2, .request_id = 1}, frame, DeadlineIn(kWait)).ok());
  ASSERT_TRUE(pair->server.Send({.type = 2, .request_id = 2}, frame, DeadlineIn(kWait)).ok());
  Status sent = pair->server.Send({.type = 2, .request_id = 3}, frame, DeadlineIn(milliseconds(5)));
  EXPECT_EQ(sent.code(), ErrorCode::kTimeout) << sent.ToString();
  EXPECT_TRUE(pair->server.is_open()) << "nothing of the message was sent: framing intact";
  for (uint64_t id : {1, 2}) {
    Result<Message> m = pair->client.Receive(DeadlineIn(kWait));
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(m->header.request_id, id);
  }
  pair->server.Close();
}

TEST(StreamTest, SendRefusesMessageOverAgreedMaximum) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"), ListenerOptions{.max_message_bytes = 1000});
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  Status sent = pair->client.Send({.type = 2}, Pattern(1001, 1));
  EXPECT_EQ(sent.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(sent.ToString(), "maximum of 1000")) << "the smaller side's limit wins";
  EXPECT_TRUE(pair->client.is_open()) << "nothing was sent";
  ASSERT_TRUE(
      pair->client.Send({.type = 2, .request_id = 4}, Pattern(100, 1), DeadlineIn(kWait)).ok());
  Result<Message> m = pair->server.Receive(DeadlineIn(kWait));
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->header.request_id, 4u);
  pair->server.Close();
}

TEST(StreamTest, PeerCloseIsSeenAfterDrainingWhatWasSent) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  for (uint64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        pair->server.Send({.type = 2, .request_id = i}, Pattern(100, 5), DeadlineIn(kWait)).ok());
  }
  pair->server.Close();
  for (uint64_t i = 1; i <= 3; ++i) {
    Result<Message> message = pair->client.Receive(DeadlineIn(kWait));
    ASSERT_TRUE(message.ok()) << "message " << i << ": " << message.error().ToString();
    EXPECT_EQ(message->header.request_id, i);
    EXPECT_TRUE(SameBytes(message->payload, Pattern(100, 5)));
  }
  uint64_t start = NowNs();
  Result<Message> end = pair->client.Receive(DeadlineIn(kWait));
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().code(), ErrorCode::kUnavailable) << end.error().ToString();
  EXPECT_LT(NowNs() - start, 500'000'000u) << "noticed at once, not at the deadline";
}

TEST(StreamTest, ClientCloseIsSeenByServerAfterDraining) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  ASSERT_TRUE(
      pair->client.Send({.type = 2, .request_id = 1}, Pattern(50, 1), DeadlineIn(kWait)).ok());
  ASSERT_TRUE(
      pair->client.Send({.type = 2, .request_id = 2}, Pattern(60, 2), DeadlineIn(kWait)).ok());

  // The client's Close waits for the server to close its end, so the server runs on a thread.
  Stream server = std::move(pair->server);
  std::promise<std::vector<ErrorCode>> seen;
  std::thread server_thread([&] {
    std::vector<ErrorCode> codes;
    for (int i = 0; i < 3; ++i) {
      Result<Message> m = server.Receive(DeadlineIn(kWait));
      codes.push_back(m.ok() ? ErrorCode::kOk : m.error().code());
      if (!m.ok()) break;
    }
    server.Close();
    seen.set_value(codes);
  });
  pair->client.Close();
  server_thread.join();
  EXPECT_EQ(seen.get_future().get(),
            (std::vector<ErrorCode>{ErrorCode::kOk, ErrorCode::kOk, ErrorCode::kUnavailable}));
}

TEST(StreamTest, TwoConnectionsFromOneProcess) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  std::optional<Pair> first = ConnectPair(listener);
  std::optional<Pair> second = ConnectPair(listener, StreamOptions{.ring_bytes = 4096});
  ASSERT_TRUE(first.has_value() && second.has_value());
  ASSERT_TRUE(
      first->client.Send({.type = 2, .request_id = 1}, Pattern(10, 1), DeadlineIn(kWait)).ok());
  ASSERT_TRUE(
      second->client.Send({.type = 2, .request_id = 2}, Pattern(3000, 2), DeadlineIn(kWait)).ok());
  Result<Message> at_second = second->server.Receive(DeadlineIn(kWait));
  ASSERT_TRUE(at_second.ok()) << at_second.error().ToString();
  EXPECT_EQ(at_second->header.request_id, 2u);
  EXPECT_TRUE(SameBytes(at_second->payload, Pattern(3000, 2)));
  Result<Message> at_first = first->server.Receive(DeadlineIn(kWait));
  ASSERT_TRUE(at_first.ok()) << at_first.error().ToString();
  EXPECT_EQ(at_first->header.request_id, 1u);
  EXPECT_TRUE(SameBytes(at_first->payload, Pattern(10, 1)));
  first->server.Close();
  second->server.Close();
}

TEST(StreamTest, ConnectWithoutServerIsUnavailable) {
  TempDir dir;
  Result<Stream> client = Stream::Connect(dir.Join("nobody.sock"));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(Contains(client.error().message(), "no lapce-ai server is listening"));
  Stream closed;
  EXPECT_FALSE(closed.is_open());
  EXPECT_EQ(closed.Receive().error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(closed.Send({.type = 2}, {}).code(), ErrorCode::kUnavailable);
}

TEST(StreamTest, AcceptTimesOutWithoutClient) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  Result<Stream> none = listener.Accept(milliseconds(5));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kTimeout);
}

// ---- Raw clients: a hand-made handshake, to send what a real client never would ----

class RawClient {
 public:
  explicit RawClient(uint32_t cells = 16) : layout_{cells, cells} {
    Result<UniqueFd> file = CreateSharedFile("raw-client", layout_.bytes());
    EXPECT_TRUE(file.ok());
    if (file.ok()) file_ = std::move(file).value();
    eventfd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    hello.c2s_cells = cells;
    hello.s2c_cells = cells;
    hello.c2s_salt = RandomU64();
    hello.s2c_salt = RandomU64();
    hello.max_message_bytes = 1u << 20;
  }

  Hello hello;
  int file_fd() const { return file_.get(); }
  int eventfd() const { return eventfd_.get(); }

  // Connects and sends `bytes` with `fds` attached.
  void Send(const std::string& path, std::span<const std::byte> bytes, std::span<const int> fds) {
    Result<UniqueFd> socket = ConnectUnix(path);
    ASSERT_TRUE(socket.ok()) << socket.error().ToString();
    socket_ = std::move(socket).value();
    Status sent = SendWithFds(socket_.get(), bytes, fds);
    ASSERT_TRUE(sent.ok()) << sent.ToString();
  }
  void SendHello(const std::string& path) {
    int fds[2] = {file_fd(), eventfd()};
    Send(path, std::as_bytes(std::span(&hello, 1)), fds);
  }

  // The server's answer to the hello.
  Result<Welcome> ReceiveWelcome() {
    Welcome welcome;
    ASSIGN_OR_RETURN(
        ReceivedPacket packet,
        ReceiveWithFds(socket_.get(), std::as_writable_bytes(std::span(&welcome, 1)), kWait));
    if (packet.bytes != sizeof(Welcome)) return Error(ErrorCode::kProtocol, "short welcome");
    welcome_fds_ = std::move(packet.fds);
    return welcome;
  }

  // After a welcome: the client's end of the rings, waking the server through its doorbell.
  Channel& StartChannel(const Welcome& welcome) {
    Result<Mapping> mapping = MapOwnFile(file_fd(), layout_.bytes());
    EXPECT_TRUE(mapping.ok());
    rings_ = std::move(mapping).value();
    Result<Mapping> doorbell = MapPeerFile(welcome_fds_.at(0).get(), welcome.doorbell_bytes);
    EXPECT_TRUE(doorbell.ok());
    doorbell_ = std::move(doorbell).value();
    channel_.emplace(c2s(), s2c(), welcome.max_message_bytes, pool_,
                     PeerWaker::ToServer(doorbell_.data(), welcome.slot, welcome_fds_.at(1).get()));
    return *channel_;
  }
  RingGeometry c2s() const { return layout_.C2s(rings_.data(), hello.c2s_salt); }
  RingGeometry s2c() const { return layout_.S2c(rings_.data(), hello.s2c_salt); }
  void CloseSocket() { socket_.Reset(); }

 private:
  ConnectionLayout layout_;
  UniqueFd file_;
  UniqueFd eventfd_;
  UniqueFd socket_;
  std::vector<UniqueFd> welcome_fds_;
  Mapping rings_;
  Mapping doorbell_;
  BufferPool pool_;
  std::optional<Channel> channel_;
};

struct Refusal {
  Error server_error{ErrorCode::kOk, ""};  // What Accept returned.
  std::string client_reason;               // The reason in the refusal the client received.
};

// Runs Accept on a thread while `send` performs a raw client's side of the handshake.
template <typename SendFn>
Refusal Refuse(Listener& listener, RawClient& client, SendFn send) {
  auto accepted = std::async(std::launch::async, [&] { return listener.Accept(kWait); });
  send();
  Refusal refusal;
  Result<Welcome> welcome = client.ReceiveWelcome();
  if (!welcome.ok()) {
    ADD_FAILURE() << "no answer to the hello: " << welcome.error().ToString();
  } else if (welcome->refused == 0) {
    ADD_FAILURE() << "the server welcomed a bad hello";
  } else {
    welcome->reason[sizeof(welcome->reason) - 1] = '\0';
    refusal.client_reason = welcome->reason;
    EXPECT_EQ(welcome->version, 0);
  }
  Result<Stream> stream = accepted.get();
  if (stream.ok()) {
    ADD_FAILURE() << "Accept returned a stream for a bad hello";
  } else {
    refusal.server_error = std::move(stream).error();
    EXPECT_EQ(refusal.client_reason, refusal.server_error.message())
        << "the client learns exactly why";
  }
  return refusal;
}

Refusal RefuseHello(Listener& listener, RawClient& client) {
  return Refuse(listener, client, [&] { client.SendHello(listener.path()); });
}

class HandshakeTest : public testing::Test {
 protected:
  TempDir dir_;
  Listener listener_ = BindOrDie(dir_.Join("s.sock"));
};

TEST_F(HandshakeTest, RawClientWithGoodHelloIsWelcomed) {
  RawClient client;
  auto accepted = std::async(std::launch::async, [&] { return listener_.Accept(kWait); });
  client.SendHello(listener_.path());
  Result<Welcome> welcome = client.ReceiveWelcome();
  ASSERT_TRUE(welcome.ok()) << welcome.error().ToString();
  EXPECT_EQ(welcome->magic, kWelcomeMagic);
  EXPECT_EQ(welcome->refused, 0);
  EXPECT_EQ(welcome->version, kProtocolVersion);
  EXPECT_EQ(welcome->max_message_bytes, 1u << 20) << "the smaller of both limits";
  Result<Stream> server = accepted.get();
  ASSERT_TRUE(server.ok()) << server.error().ToString();

  Channel& channel = client.StartChannel(*welcome);
  std::vector<std::byte> payload = Pattern(300, 1);
  size_t offset = 0;
  ASSERT_EQ(channel.SendSome({.type = 2, .request_id = 8}, payload, &offset),
            Channel::SendStatus::kDone);
  Result<Message> received = server->Receive(DeadlineIn(kWait));
  ASSERT_TRUE(received.ok()) << received.error().ToString();
  EXPECT_EQ(received->header.request_id, 8u);
  EXPECT_TRUE(SameBytes(received->payload, payload));
}

TEST_F(HandshakeTest, WrongUidIsRefusedAndTheClientIsToldWhy) {
  TempDir dir;
  Listener strict = BindOrDie(dir.Join("s.sock"), ListenerOptions{.allowed_uid = ::getuid() + 1});
  auto accepted = std::async(std::launch::async, [&] { return strict.Accept(kWait); });
  Result<Stream> client = Stream::Connect(strict.path());
  Result<Stream> server = accepted.get();
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(server.error().message(), "uid " + std::to_string(::getuid())));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), ErrorCode::kPermissionDenied) << client.error().ToString();
  EXPECT_TRUE(Contains(client.error().message(),
                       "this server serves only uid " + std::to_string(::getuid() + 1)));
}

TEST_F(HandshakeTest, GarbageIsRefusedAndListenerKeepsAccepting) {
  RawClient oversized;
  std::vector<std::byte> noise = Pattern(100, 77);
  Refusal refusal =
      Refuse(listener_, oversized, [&] { oversized.Send(listener_.path(), noise, {}); });
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "oversized handshake message"));

  RawClient hello_sized;
  std::vector<std::byte> hello_noise = Pattern(sizeof(Hello), 78);
  refusal =
      Refuse(listener_, hello_sized, [&] { hello_sized.Send(listener_.path(), hello_noise, {}); });
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "handshake"));

  RawClient tiny;
  std::vector<std::byte> byte = Pattern(1, 79);
  refusal = Refuse(listener_, tiny, [&] { tiny.Send(listener_.path(), byte, {}); });
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "hello of 1 bytes, expected 48"));

  // A good client is still served.
  EchoServer server(listener_);
  Result<Stream> client = Stream::Connect(listener_.path());
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectEcho(*client, 1, Pattern(700, 1)));
  client->Close();
  EXPECT_EQ(server.Join().code(), ErrorCode::kUnavailable);
}

TEST_F(HandshakeTest, ClientThatHangsUpIsReportedAndListenerKeepsAccepting) {
  auto accepted = std::async(std::launch::async, [&] { return listener_.Accept(kWait); });
  {
    Result<UniqueFd> socket = ConnectUnix(listener_.path());
    ASSERT_TRUE(socket.ok());
  }  // Closed without a word.
  Result<Stream> none = accepted.get();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kUnavailable) << none.error().ToString();

  std::optional<Pair> pair = ConnectPair(listener_);
  ASSERT_TRUE(pair.has_value());
  pair->server.Close();
}

TEST_F(HandshakeTest, SilentClientTimesOut) {
  TempDir dir;
  Listener quick =
      BindOrDie(dir.Join("s.sock"), ListenerOptions{.handshake_timeout = milliseconds(10)});
  Result<UniqueFd> socket = ConnectUnix(quick.path());
  ASSERT_TRUE(socket.ok());
  Result<Stream> none = quick.Accept(kWait);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kTimeout) << none.error().ToString();
}

TEST_F(HandshakeTest, RefusesOtherProtocolVersions) {
  RawClient client;
  client.hello.min_version = 2;
  client.hello.max_version = 3;
  Refusal refusal = RefuseHello(listener_, client);
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "client speaks protocol versions 2..3"));
  EXPECT_TRUE(Contains(refusal.client_reason, "server speaks 1"));

  RawClient inverted;
  inverted.hello.min_version = 1;
  inverted.hello.max_version = 0;
  EXPECT_TRUE(Contains(RefuseHello(listener_, inverted).client_reason, "versions 1..0"));
}

TEST_F(HandshakeTest, RefusesBadHelloMagic) {
  RawClient client;
  client.hello.magic = kWelcomeMagic;
  EXPECT_TRUE(Contains(RefuseHello(listener_, client).client_reason, "bad hello magic"));
}

TEST_F(HandshakeTest, RefusesHelloWithOneDescriptor) {
  RawClient client;
  int fds[1] = {client.file_fd()};
  Refusal refusal = Refuse(listener_, client, [&] {
    client.Send(listener_.path(), std::as_bytes(std::span(&client.hello, 1)), fds);
  });
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "hello carries 1 descriptors, expected 2"));
}

TEST_F(HandshakeTest, RefusesUnsealedSharedFile) {
  RawClient client;
  ConnectionLayout layout{16, 16};
  for (unsigned flags : {MFD_CLOEXEC, MFD_CLOEXEC | MFD_ALLOW_SEALING}) {
    UniqueFd unsealed(::memfd_create("unsealed", flags));
    ASSERT_TRUE(unsealed.is_valid());
    ASSERT_EQ(::ftruncate(unsealed.get(), static_cast<off_t>(layout.bytes())), 0);
    int fds[2] = {unsealed.get(), client.eventfd()};
    Refusal refusal = Refuse(listener_, client, [&] {
      client.Send(listener_.path(), std::as_bytes(std::span(&client.hello, 1)), fds);
    });
    EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
    EXPECT_TRUE(Contains(refusal.client_reason, "not sealed against shrinking"));
  }
}

TEST_F(HandshakeTest, RefusesSharedFileThatIsNotAMemfd) {
  RawClient client;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  int fds[2] = {read_end.get(), client.eventfd()};
  Refusal refusal = Refuse(listener_, client, [&] {
    client.Send(listener_.path(), std::as_bytes(std::span(&client.hello, 1)), fds);
  });
  EXPECT_TRUE(Contains(refusal.client_reason, "not a memfd"));
}

TEST_F(HandshakeTest, RefusesBlockOutsideTheFile) {
  RawClient past_end;
  past_end.hello.block_offset = 4096;  // The file holds exactly one block, at offset 0.
  Refusal refusal = RefuseHello(listener_, past_end);
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "needs at least"));

  RawClient overlapping;
  overlapping.hello.block_offset = 64;  // Aligned, but the block runs past the end.
  EXPECT_TRUE(Contains(RefuseHello(listener_, overlapping).client_reason, "needs at least"));

  RawClient misaligned;
  misaligned.hello.block_offset = 8;
  EXPECT_TRUE(
      Contains(RefuseHello(listener_, misaligned).client_reason, "connection block at offset 8"));

  RawClient huge;
  huge.hello.block_offset = UINT64_MAX - 63;
  EXPECT_TRUE(Contains(RefuseHello(listener_, huge).client_reason, "connection block at offset"));
}

TEST_F(HandshakeTest, RefusesRingSizesThatAreNotPowersOfTwoInRange) {
  for (uint32_t cells : {0u, 2u, 12u, 17u, kMaxCellsPerRing * 2}) {
    SCOPED_TRACE(testing::Message() << cells << " cells");
    RawClient client;
    client.hello.s2c_cells = cells;
    Refusal refusal = RefuseHello(listener_, client);
    EXPECT_EQ(refusal.server_error.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(Contains(refusal.client_reason,
                         "ring of " + std::to_string(cells) + " cells; must be a power of two"));
  }
}

TEST_F(HandshakeTest, RefusesZeroMaximumMessageSize) {
  RawClient client;
  client.hello.max_message_bytes = 0;
  EXPECT_TRUE(Contains(RefuseHello(listener_, client).client_reason, "maximum message size of 0"));
}

// handshake.h: ReceiveHello checks that the descriptors are "a sealed memfd and an eventfd".
// The server later write()s to the second descriptor to wake the client; a pipe there can block
// the server's thread once it fills.
TEST_F(HandshakeTest, RefusesWakeDescriptorThatIsNotAnEventfd) {
  RawClient client;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  int fds[2] = {client.file_fd(), write_end.get()};
  Refusal refusal = Refuse(listener_, client, [&] {
    client.Send(listener_.path(), std::as_bytes(std::span(&client.hello, 1)), fds);
  });
  EXPECT_EQ(refusal.server_error.code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(refusal.client_reason, "eventfd"));
}

// A server-side Stream that waits for ring space must be woken when the client frees it. The raw
// client waits until the server has announced that wait (producer_waiting), then drains.
TEST_F(HandshakeTest, ServerWaitingForSpaceIsWokenWhenClientFreesIt) {
  RawClient client;
  auto accepted = std::async(std::launch::async, [&] { return listener_.Accept(kWait); });
  client.SendHello(listener_.path());
  Result<Welcome> welcome = client.ReceiveWelcome();
  ASSERT_TRUE(welcome.ok()) << welcome.error().ToString();
  Result<Stream> server = accepted.get();
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  Channel& channel = client.StartChannel(*welcome);

  const std::vector<std::byte> payload = Pattern(16 << 10, 4);
  auto sent = std::async(std::launch::async, [&] {
    return server->Send({.type = 2, .request_id = 3}, payload, DeadlineIn(kWait));
  });
  std::atomic_ref<uint32_t> producer_waiting(client.s2c().control->producer_waiting);
  const uint64_t give_up = DeadlineIn(milliseconds(500));
  bool received = false;
  while (!received && NowNs() < give_up) {
    const bool send_returned = sent.wait_for(milliseconds(0)) == std::future_status::ready;
    if (producer_waiting.load(std::memory_order_acquire) == 0 && !send_returned) {
      std::this_thread::yield();
      continue;
    }
    for (;;) {  // Drain everything that is there; our Release sees the waiter and wakes it.
      Channel::Received r = channel.Receive();
      if (r.status == Channel::ReceiveStatus::kEmpty) break;
      ASSERT_EQ(r.status, Channel::ReceiveStatus::kMessage) << channel.broken_reason();
      EXPECT_TRUE(SameBytes(r.message.payload, payload));
      channel.Consume();
      received = true;
      break;
    }
  }
  if (!received) client.CloseSocket();  // Unblocks the server's Send so the test can end.
  Status status = sent.get();
  EXPECT_TRUE(received) << "the server stayed asleep after the client freed ring space";
  EXPECT_TRUE(status.ok()) << status.ToString();
}

// A Welcome names the doorbell bit the client sets; the client must not trust a slot outside
// the doorbell file. slot + 1 wraps to 0 for UINT32_MAX.
TEST(StreamConnectTest, RefusesWelcomeWithSlotOutsideTheDoorbell) {
  TempDir dir;
  const std::string path = dir.Join("fake.sock");
  UniqueFd listening(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(listening.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listening.get(), 4), 0);

  auto fake_server = std::async(std::launch::async, [&] {
    UniqueFd socket(::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    Hello hello;
    Result<ReceivedPacket> packet =
        ReceiveWithFds(socket.get(), std::as_writable_bytes(std::span(&hello, 1)), kWait);
    if (!packet.ok()) return;
    Result<UniqueFd> doorbell = CreateSharedFile("fake-doorbell", DoorbellLayout::Bytes(1));
    UniqueFd worker_eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    Welcome welcome;
    welcome.version = kProtocolVersion;
    welcome.slot = UINT32_MAX;
    welcome.doorbell_bytes = static_cast<uint32_t>(DoorbellLayout::Bytes(1));
    welcome.max_message_bytes = 1u << 20;
    (void)SendWelcome(socket.get(), welcome, doorbell->get(), worker_eventfd.get());
  });  // The socket closes when the task ends, so the client's Close() returns at once.

  Result<Stream> client = Stream::Connect(path);
  fake_server.get();
  ASSERT_FALSE(client.ok()) << "accepted a doorbell slot 2^32-1 in a " << DoorbellLayout::Bytes(1)
                            << "-byte doorbell";
  EXPECT_EQ(client.error().code(), ErrorCode::kProtocol);
}

// ---- Socket files, locks and the runtime directory ----

TEST(ListenerTest, SecondListenerOnALivePathIsUnavailable) {
  TempDir dir;
  Listener live = BindOrDie(dir.Join("s.sock"));
  Result<Listener> second = Listener::Bind(dir.Join("s.sock"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(Contains(second.error().message(), "another lapce-ai server (pid " +
                                                     std::to_string(::getpid()) + ") is serving"))
      << second.error().message();
  // The live one is untouched.
  std::optional<Pair> pair = ConnectPair(live);
  ASSERT_TRUE(pair.has_value());
  pair->server.Close();
}

TEST(ListenerTest, StaleSocketFileIsReplaced) {
  TempDir dir;
  const std::string path = dir.Join("s.sock");
  {  // A socket inode left by a server that died: bound, never unlinked, nobody holds the lock.
    UniqueFd dead(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(dead.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  Result<Stream> refused = Stream::Connect(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);

  Listener listener = BindOrDie(path);
  std::optional<Pair> pair = ConnectPair(listener);
  ASSERT_TRUE(pair.has_value());
  pair->server.Close();
}

TEST(ListenerTest, RebindAfterListenerIsGone) {
  TempDir dir;
  const std::string path = dir.Join("s.sock");
  { Listener first = BindOrDie(path); }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed with its listener";
  EXPECT_NE(::access((path + ".lock").c_str(), F_OK), 0) << "and so is its lock file";
  Listener second = BindOrDie(path);
  std::optional<Pair> pair = ConnectPair(second);
  ASSERT_TRUE(pair.has_value());
  pair->server.Close();
}

TEST(ListenerTest, CreatesPrivateRuntimeDirAndSocket) {
  TempDir dir;
  const std::string runtime = dir.Join("run/lapce-ai");
  Listener listener = BindOrDie(runtime + "/s.sock");
  struct stat st;
  for (const std::string& created : {dir.Join("run"), runtime}) {
    ASSERT_EQ(::stat(created.c_str(), &st), 0) << created;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u) << created;
    EXPECT_EQ(st.st_uid, ::getuid());
  }
  ASSERT_EQ(::stat((runtime + "/s.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(ListenerTest, SocketPathTooLongIsInvalid) {
  TempDir dir;
  Result<Listener> listener = Listener::Bind(dir.Join(std::string(120, 'x')));
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(listener.error().message(), "ipc.runtime_dir"));
}

TEST(PrivateDirTest, TightensOurOwnOpenDirectory) {
  TempDir dir;
  const std::string open = dir.Join("open");
  ASSERT_EQ(::mkdir(open.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(open.c_str(), 0755), 0);  // Regardless of the umask.
  Status status = EnsurePrivateDir(open);
  ASSERT_TRUE(status.ok()) << status.ToString();
  struct stat st;
  ASSERT_EQ(::stat(open.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(PrivateDirTest, RefusesDirectoryOfAnotherUser) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  TempDir dir;
  const std::string foreign = dir.Join("foreign");
  ASSERT_EQ(::mkdir(foreign.c_str(), 0700), 0);
  ASSERT_EQ(::chown(foreign.c_str(), 12345, 12345), 0);
  Status status = EnsurePrivateDir(foreign);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(status.ToString(), "belongs to uid 12345"));
  // And a listener refuses to put its socket there.
  Result<Listener> listener = Listener::Bind(foreign + "/s.sock");
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(::access((foreign + "/s.sock").c_str(), F_OK), 0);
}

TEST(PrivateDirTest, RefusesNonDirectories) {
  TempDir dir;
  const std::string file = dir.Join("file");
  UniqueFd fd(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.is_valid());
  Status status = EnsurePrivateDir(file);
  EXPECT_EQ(status.code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Contains(status.ToString(), "is not a directory"));

  const std::string link = dir.Join("link");
  ASSERT_EQ(::symlink(dir.path().c_str(), link.c_str()), 0);
  status = EnsurePrivateDir(link);
  EXPECT_EQ(status.code(), ErrorCode::kPermissionDenied) << "a symlink is not followed";
  EXPECT_TRUE(Contains(status.ToString(), "is a symbolic link")) << status.ToString();
}

// A directory the user named for the socket is checked, never changed: `serve --socket
// /tmp/x.sock` run as root must not make /tmp private, nor a project directory.
TEST(PrivateDirTest, ChosenDirectoryIsNeverChanged) {
  TempDir dir;
  auto mode_of = [](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  const std::string readable = dir.Join("readable");
  ASSERT_EQ(::mkdir(readable.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(readable.c_str(), 0755), 0);
  Status status = EnsurePrivateDir(readable, SocketDir::kChosen);
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(mode_of(readable), 0755u);
  for (mode_t mode : {0777, 01777, 0775}) {
    const std::string shared = dir.Join("shared" + std::to_string(mode));
    ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(shared.c_str(), mode), 0);
    status = EnsurePrivateDir(shared, SocketDir::kChosen);
    EXPECT_EQ(status.code(), ErrorCode::kPermissionDenied) << mode;
    EXPECT_TRUE(Contains(status.ToString(), "may be written by other users")) << status.ToString();
    EXPECT_EQ(mode_of(shared), mode);
  }
  // A missing one is created private, as for kOwn.
  const std::string fresh = dir.Join("fresh/sub");
  ASSERT_TRUE(EnsurePrivateDir(fresh, SocketDir::kChosen).ok());
  EXPECT_EQ(mode_of(fresh), 0700u);
}

// Only a stale socket is replaced: a file at the socket path is an error, and is kept.
TEST(PrivateDirTest, AFileAtTheSocketPathIsNeverRemoved) {
  TempDir dir;
  const std::string path = dir.Join("notes.txt");
  {
    UniqueFd fd(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.is_valid());
    ASSERT_EQ(::write(fd.get(), "keep", 4), 4);
  }
  Result<Listener> listener = Listener::Bind(path);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(listener.error().message(), "is not a socket")) << listener.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 4);
  EXPECT_NE(::access((path + ".lock").c_str(), F_OK), 0) << "no lock file beside it either";
}

TEST(PrivateDirTest, RuntimeDirPrefersConfiguredPath) {
  EXPECT_EQ(RuntimeDir("/custom/dir"), "/custom/dir");
  EXPECT_FALSE(RuntimeDir("").empty());
}

}  // namespace
}  // namespace lai::ipc
