// The client against the fake provider server on loopback: streaming, reuse, timeouts, drops,
// cancellation, proxies. Timing-dependent, hence labelled integration.
#include "http/client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "testing/fake_provider_server.h"

namespace lai::http {
namespace {

using lai::testing::FakeProviderServer;
using lai::testing::FakeResponse;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{10'000};  // Bound for every blocking wait in these tests.

constexpr const char* kProxyVariables[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                           "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

// Proxy variables of the machine running the tests must not route loopback traffic elsewhere.
class NoProxyEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    for (const char* name : kProxyVariables) ::unsetenv(name);
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new NoProxyEnvironment);

// Records what one transfer's handlers saw.
class Collector {
 public:
  Handlers MakeHandlers() {
    Handlers h;
    h.on_headers = [this](int status, const std::vector<Header>& headers) {
      std::lock_guard lock(mutex_);
      status_ = status;
      headers_ = headers;
      ++header_calls_;
    };
    h.on_data = [this](std::string_view chunk) {
      std::lock_guard lock(mutex_);
      body_.append(chunk);
      ++data_calls_;
      changed_.notify_all();
    };
    h.on_complete = [this](Status status) {
      std::lock_guard lock(mutex_);
      EXPECT_FALSE(result_.has_value()) << "on_complete ran twice";
      result_ = std::move(status);
      completed_at_ = Clock::now();
      changed_.notify_all();
    };
    return h;
  }

  // Waits for on_complete; returns its status (kInternal "not completed" on timeout).
  Status Wait(milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return result_.has_value(); })) {
      return Error(ErrorCode::kInternal, "test: transfer did not complete in time");
    }
    return *result_;
  }
  bool WaitForBody(size_t bytes, milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return body_.size() >= bytes; });
  }

  int status() {
    std::lock_guard lock(mutex_);
    return status_;
  }
  std::vector<Header> headers() {
    std::lock_guard lock(mutex_);
    return headers_;
  }
  std::string body() {
    std::lock_guard lock(mutex_);
    return body_;
  }
  int data_calls() {
    std::lock_guard lock(mutex_);
    return data_calls_;
  }
  int header_calls() {
    std::lock_guard lock(mutex_);
    return header_calls_;
  }
  Clock::time_point completed_at() {
    std::lock_guard lock(mutex_);
    return completed_at_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int status_ = 0;
  std::vector<Header> headers_;
  std::string body_;
  int data_calls_ = 0;
  int header_calls_ = 0;
  std::optional<Status> result_;
  Clock::time_point completed_at_;
};

FakeResponse Sse(std::vector<std::string> chunks) {
  FakeResponse r;
  r.headers.push_back({"Content-Type", "text/event-stream"});
  r.body_chunks = std::move(chunks);
  return r;
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = FakeProviderServer::Start();
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = *std::move(server);
    auto client = Client::Create();
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = *std::move(client);
  }

  Request Post(std::string path, std::string body = "{}") {
    Request r;
    r.url = server_->base_url() + path;
    r.body = std::move(body);
    r.headers.push_back({"Content-Type", "application/json"});
    return r;
  }

  std::unique_ptr<FakeProviderServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, StreamsResponseAndSendsRequest) {
  FakeResponse response = Sse({"data: {\"a\":1}\n\n", "data: [DONE]\n\n"});
  response.headers.push_back({"X-Request-Id", "req_42"});
  server_->Enqueue("/v1/chat/completions", response);
  Request request = Post("/v1/chat/completions?beta=true", R"({"model":"m","stream":true})");
  request.headers.push_back({"Authorization", "Bearer sk-test"});
  Collector c;
  client_->Start(request, c.MakeHandlers());
  ASSERT_TRUE(c.Wait().ok()) << c.Wait().ToString();
  EXPECT_EQ(c.status(), 200);
  EXPECT_EQ(c.header_calls(), 1);
  EXPECT_EQ(FindHeader(c.headers(), "x-request-id"), "req_42");
  EXPECT_EQ(FindHeader(c.headers(), "CONTENT-TYPE"), "text/event-stream");
  EXPECT_EQ(FindHeader(c.headers(), "missing"), "");
  EXPECT_EQ(c.body(), "data: {\"a\":1}\n\ndata: [DONE]\n\n");

  std::vector<lai::testing::RecordedRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/v1/chat/completions?beta=true");
  EXPECT_EQ(seen[0].body, R"({"model":"m","stream":true})");
  EXPECT_EQ(FindHeader(seen[0].headers, "authorization"), "Bearer sk-test");
  EXPECT_EQ(FindHeader(seen[0].headers, "Expect"), "");
  EXPECT_EQ(FindHeader(seen[0].headers, "Accept-Encoding"), "");  // Identity for SSE.
}

TEST_F(ClientTest, ErrorStatusBodyArrivesThroughOnData) {
  Collector c;
  client_->Start(Post("/nothing/here"), c.MakeHandlers());
  ASSERT_TRUE(c.Wait().ok());
  EXPECT_EQ(c.status(), 404);
  EXPECT_NE(c.body().find("no scripted response"), std::string::npos);
}

TEST_F(ClientTest, LargeRequestBodyIsSentWithoutExpectContinue) {
  std::string big(200'000, 'x');
  auto reply = Fetch(*client_, Post("/big", big), milliseconds(5000));
  ASSERT_TRUE(reply.ok()) << reply.error().ToString();
  ASSERT_TRUE(server_->WaitForRequests(1, kWait));
  EXPECT_EQ(server_->requests()[0].body.size(), big.size());
}

TEST_F(ClientTest, FiftyConcurrentStreamsShareABoundedPool) {
  constexpr int kStreams = 50;
  std::vector<std::string> chunks;
  for (int i = 0; i < 20; ++i) chunks.push_back("data: {\"n\":" + std::to_string(i) + "}\n\n");
  std::string expected;
  for (const std::string& s : chunks) expected += s;
  server_->SetDefault(Sse(chunks));
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < kStreams; ++i) {
    collectors.push_back(std::make_unique<Collector>());
    client_->Start(Post("/v1/stream/" + std::to_string(i)), collectors.back()->MakeHandlers());
  }
  for (auto& c : collectors) {
    Status s = c->Wait();
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(c->status(), 200);
    EXPECT_EQ(c->body(), expected);
  }
  EXPECT_EQ(server_->requests().size(), static_cast<size_t>(kStreams));
  // Default ClientOptions: at most 8 connections per host, reused across requests.
  EXPECT_LE(server_->connections_accepted(), 8);
}

// Streams to one HTTP/1.1 host run side by side (up to the per-host limit): none waits for
// another's response to finish.
TEST_F(ClientTest, ConcurrentStreamsDoNotWaitForEachOther) {
  constexpr int kStreams = 8;
  FakeResponse stalled = Sse({"data: a\n\n", "data: b\n\n"});
  stalled.fault.stall_after_bytes = 9;
  stalled.fault.stall_for = milliseconds(20'000);
  server_->SetDefault(stalled);
  Collector c[kStreams];
  std::vector<Client::TransferId> ids;
  for (Collector& each : c) {
    ids.push_back(client_->Start(Post("/v1/stream", std::string(4000, 'x')), each.MakeHandlers()));
  }
  for (Collector& each : c) EXPECT_TRUE(each.WaitForBody(9, milliseconds(5000)));
  EXPECT_EQ(server_->connections_accepted(), kStreams);
  for (Client::TransferId id : ids) client_->Cancel(id);
  for (Collector& each : c) EXPECT_EQ(each.Wait().code(), ErrorCode::kCancelled);
}

TEST_F(ClientTest, SequentialRequestsReuseOneConnection) {
  for (int i = 0; i < 5; ++i) {
    auto reply = Fetch(*client_, Post("/v1/x"));
    ASSERT_TRUE(reply.ok()) << reply.error().ToString();
    EXPECT_EQ(reply->status, 404);
  }
  EXPECT_EQ(server_->connections_accepted(), 1);
}

TEST_F(ClientTest, ConnectionRefusedFailsFastAsUnavailable) {
  // A port that was just free: bind, read the port, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  const std::string host = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  Request r;
  r.url = "http://" + host + "/v1/messages?key=secret";
  Clock::time_point start = Clock::now();
  auto reply = Fetch(*client_, r);
  ASSERT_FALSE(reply.ok());
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_EQ(reply.error().code(), ErrorCode::kUnavailable) << reply.error().ToString();
  EXPECT_NE(reply.error().message().find("'" + host + "'"), std::string::npos)
      << reply.error().message();
  EXPECT_EQ(reply.error().message().find("secret"), std::string::npos);
}

TEST_F(ClientTest, FirstByteTimeoutNamesTimeoutAndHost) {
  FakeResponse slow = Sse({"data: late\n\n"});
  slow.fault.headers_delay = milliseconds(5000);
  server_->Enqueue("/slow", slow);
  Request r = Post("/slow?key=secret");
  r.first_byte_timeout = milliseconds(200);
  Collector c;
  Clock::time_point start = Clock::now();
  client_->Start(r, c.MakeHandlers());
  Status s = c.Wait();
  ASSERT_EQ(s.code(), ErrorCode::kTimeout) << s.ToString();
  EXPECT_GE(c.completed_at() - start, milliseconds(200));
  EXPECT_LT(c.completed_at() - start, milliseconds(2000));
  const std::string& message = s.error().message();
  EXPECT_NE(message.find("first-byte timeout"), std::string::npos) << message;
  EXPECT_NE(message.find("200 ms"), std::string::npos) << message;
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos);
  EXPECT_EQ(message.find("secret"), std::string::npos);
  EXPECT_EQ(c.header_calls(), 0);
}

// Transfers queued behind the per-host connection limit start their first-byte clock only when
// their request is sent.
TEST_F(ClientTest, QueuedTransfersStartFirstByteClockWhenSent) {
  auto one_connection = Client::Create({.max_connections_per_host = 1});
  ASSERT_TRUE(one_connection.ok());
  FakeResponse slow = Sse({"data: a\n\n"});
  slow.fault.headers_delay = milliseconds(250);
  server_->SetDefault(slow);
  Request r = Post("/queued");
  r.first_byte_timeout = milliseconds(600);
  Collector c[3];
  for (Collector& each : c) (*one_connection)->Start(r, each.MakeHandlers());
  for (Collector& each : c) {
    Status s = each.Wait();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(server_->connections_accepted(), 1);
}

TEST_F(ClientTest, IdleTimeoutDuringStallKeepsEarlierData) {
  FakeResponse stalled = Sse({"data: a\n\n", "data: b\n\n"});
  stalled.fault.stall_after_bytes = 9;
  stalled.fault.stall_for = milliseconds(5000);
  server_->Enqueue("/stall", stalled);
  Request r = Post("/stall");
  r.idle_timeout = milliseconds(200);
  Collector c;
  client_->Start(r, c.MakeHandlers());
  Status s = c.Wait();
  ASSERT_EQ(s.code(), ErrorCode::kTimeout) << s.ToString();
  EXPECT_NE(s.error().message().find("idle timeout"), std::string::npos) << s.ToString();
  EXPECT_EQ(c.status(), 200);
  EXPECT_EQ(c.body(), "data: a\n\n");
  EXPECT_TRUE(server_->WaitForConnectionsClosed(1, kWait));
}

// The idle clock starts with the response, however long the first-byte timeout: a response that
// begins late and then stalls is caught by the (shorter) idle timeout.
TEST_F(ClientTest, IdleTimeoutAppliesToAResponseThatStartedLate) {
  FakeResponse late = Sse({"data: a\n\n", "data: b\n\n"});
  late.fault.headers_delay = milliseconds(300);
  late.fault.stall_after_bytes = 9;
  late.fault.stall_for = milliseconds(5000);
  server_->Enqueue("/late", late);
  Request r = Post("/late");
  r.first_byte_timeout = milliseconds(60'000);
  r.idle_timeout = milliseconds(200);
  Collector c;
  Clock::time_point start = Clock::now();
  client_->Start(r, c.MakeHandlers());
  Status s = c.Wait();
  ASSERT_EQ(s.code(), ErrorCode::kTimeout) << s.ToString();
  EXPECT_NE(s.error().message().find("idle timeout"), std::string::npos) << s.ToString();
  EXPECT_LT(c.completed_at() - start, milliseconds(2000));
  EXPECT_EQ(c.body(), "data: a\n\n");
}

TEST_F(ClientTest, DropMidStreamIsAnErrorAfterPartialData) {
  for (bool chunked : {true, false}) {
    FakeResponse dropped = Sse({"data: first\n\n", "data: second\n\n"});
    dropped.chunked = chunked;
    dropped.fault.drop_after_bytes = 17;
    server_->Enqueue("/drop", dropped);
    Collector c;
    client_->Start(Post("/drop"), c.MakeHandlers());
    Status s = c.Wait();
    EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << "chunked=" << chunked << " " << s.ToString();
    EXPECT_EQ(c.body(), "data: first\n\ndata") << "chunked=" << chunked;
  }
}

TEST_F(ClientTest, CancelMidStreamFreesTheTransferAndConnection) {
  FakeResponse stalled = Sse({"data: a\n\n", "data: b\n\n"});
  stalled.fault.stall_after_bytes = 9;
  stalled.fault.stall_for = milliseconds(20'000);
  server_->Enqueue("/stall", stalled);
  Collector c;
  Client::TransferId id = client_->Start(Post("/stall"), c.MakeHandlers());
  ASSERT_TRUE(c.WaitForBody(9));
  Clock::time_point cancelled_at = Clock::now();
  client_->Cancel(id);
  Status s = c.Wait();
  EXPECT_EQ(s.code(), ErrorCode::kCancelled) << s.ToString();
  EXPECT_LT(c.completed_at() - cancelled_at, milliseconds(500));
  // The server notices the closed connection during its stall.
  EXPECT_TRUE(server_->WaitForConnectionsClosed(1, kWait));
  client_->Cancel(id);  // Cancelling a finished transfer is harmless.
}

TEST_F(ClientTest, CancelFromInsideOnDataStopsAtOnce) {
  server_->Enqueue("/many", Sse({"data: 1\n\n", "data: 2\n\n", "data: 3\n\n"}));
  std::mutex gate;
  Client::TransferId id = 0;
  int data_calls = 0;
  Collector c;
  Handlers h = c.MakeHandlers();
  h.on_data = [&, inner = h.on_data](std::string_view chunk) {
    inner(chunk);
    ++data_calls;
    std::lock_guard lock(gate);  // Held only while Start() returns the id below.
    client_->Cancel(id);
  };
  {
    std::lock_guard lock(gate);
    id = client_->Start(Post("/many"), h);
  }
  Status s = c.Wait();
  EXPECT_EQ(s.code(), ErrorCode::kCancelled) << s.ToString();
  EXPECT_EQ(data_calls, 1);
  EXPECT_TRUE(server_->WaitForConnectionsClosed(1, kWait));
}

TEST_F(ClientTest, SlowDripDeliversEveryByte) {
  std::string body;
  for (int i = 0; i < 10; ++i) body += "data: {\"i\":" + std::to_string(i) + "}\n\n";
  FakeResponse drip = Sse({body});
  drip.fault.drip = true;
  drip.fault.chunk_delay = milliseconds(1);
  server_->Enqueue("/drip", drip);
  Request r = Post("/drip");
  r.idle_timeout = milliseconds(2000);
  Collector c;
  client_->Start(r, c.MakeHandlers());
  Status s = c.Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.body(), body);
  EXPECT_GT(c.data_calls(), 10);  // Arrived in many pieces.
}

TEST_F(ClientTest, DestroyingTheClientCancelsTransfers) {
  FakeResponse stalled = Sse({"data: a\n\n"});
  stalled.fault.headers_delay = milliseconds(20'000);
  server_->Enqueue("/stall", stalled);
  Collector c;
  client_->Start(Post("/stall"), c.MakeHandlers());
  ASSERT_TRUE(server_->WaitForRequests(1, kWait));
  client_.reset();
  EXPECT_EQ(c.Wait(milliseconds(0)).code(), ErrorCode::kCancelled);
}

TEST_F(ClientTest, InvalidRequestsAreRejected) {
  Request bad_url;
  bad_url.url = "not a url";
  auto reply = Fetch(*client_, bad_url);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kInvalidArgument) << reply.error().ToString();

  Request ftp;
  ftp.url = "ftp://127.0.0.1/x";
  reply = Fetch(*client_, ftp);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kInvalidArgument) << reply.error().ToString();

  Request injected = Post("/x");
  injected.headers.push_back({"X-Key", "secret\r\nEvil: yes"});
  reply = Fetch(*client_, injected);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(reply.error().message().find("secret"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 0u);
}

TEST_F(ClientTest, FetchEnforcesTotalTimeoutAndBodyLimit) {
  FakeResponse stalled = Sse({"data: a\n\n", "data: b\n\n"});
  stalled.fault.stall_after_bytes = 9;
  stalled.fault.stall_for = milliseconds(20'000);
  server_->Enqueue("/stall", stalled);
  auto reply = Fetch(*client_, Post("/stall"), milliseconds(300));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kTimeout) << reply.error().ToString();

  server_->Enqueue("/big", Sse({std::string(5000, 'x')}));
  reply = Fetch(*client_, Post("/big"), milliseconds(5000), /*max_body_bytes=*/1000);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kResourceExhausted) << reply.error().ToString();
}

// Proxy variables are read by libcurl per transfer; these tests set them and restore them.
class ClientProxyTest : public ClientTest {
 protected:
  void TearDown() override {
    for (const char* name : kProxyVariables) ::unsetenv(name);
  }
};

TEST_F(ClientProxyTest, UpperCaseHttpsProxyIsUsed) {
  ::setenv("HTTPS_PROXY", server_->base_url().c_str(), 1);
  Request r;
  r.method = "GET";
  r.url = "https://api.provider.invalid/v1/models";
  auto reply = Fetch(*client_, r);
  // The fake server answers CONNECT with 404, so the tunnel fails: but it was asked.
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code(), ErrorCode::kUnavailable) << reply.error().ToString();
  ASSERT_EQ(server_->requests().size(), 1u);
  EXPECT_EQ(server_->requests()[0].method, "CONNECT");
  EXPECT_EQ(server_->requests()[0].path, "api.provider.invalid:443");
}

// A request that fails through a proxy from the environment says so: the bare message named a
// port the user never gave. Not the proxy's password; not when NO_PROXY sends it direct.
TEST_F(ClientProxyTest, AFailureThroughAProxyNamesIt) {
  ::setenv("http_proxy", "http://user:secret@127.0.0.1:1", 1);
  Request r;
  r.method = "GET";
  r.url = "http://api.provider.invalid/v1/models";
  auto reply = Fetch(*client_, r);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(
      reply.error().message().find(" (through the proxy http://127.0.0.1:1, from http_proxy)"),
      std::string::npos)
      << reply.error().message();
  EXPECT_EQ(reply.error().message().find("secret"), std::string::npos);
  ::setenv("NO_PROXY", ".invalid", 1);
  reply = Fetch(*client_, r);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().message().find("through the proxy"), std::string::npos)
      << reply.error().message();
}

TEST_F(ClientProxyTest, HttpProxyAndNoProxy) {
  ::setenv("http_proxy", server_->base_url().c_str(), 1);
  Request r;
  r.method = "GET";
  r.url = "http://api.provider.invalid/v1/models";
  auto reply = Fetch(*client_, r);
  ASSERT_TRUE(reply.ok()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 404);  // The fake server's default, reached as a proxy.
  ASSERT_EQ(server_->requests().size(), 1u);
  EXPECT_EQ(server_->requests()[0].path, "http://api.provider.invalid/v1/models");

  // NO_PROXY bypasses the (now unreachable) proxy for loopback.
  ::setenv("http_proxy", "http://127.0.0.1:1", 1);
  ::setenv("NO_PROXY", "localhost,127.0.0.1", 1);
  auto direct = Fetch(*client_, Post("/direct"));
  ASSERT_TRUE(direct.ok()) << direct.error().ToString();
  ASSERT_EQ(server_->requests().size(), 2u);
  EXPECT_EQ(server_->requests()[1].path, "/direct");
}

}  // namespace
}  // namespace lai::http
