#include "rpc/stdio_transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "base/unique_fd.h"
#include "rpc/test_support.h"

namespace lai::rpc {
namespace {

using Json = nlohmann::json;
using test_support::Latch;
using test_support::ParseJson;
using namespace std::chrono_literals;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe MakePipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    ASSERT_GT(n, 0) << "write: " << std::strerror(errno);
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads one line from `fd` (without its newline), waiting at most kWait in total.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  std::string Next() {
    auto deadline = std::chrono::steady_clock::now() + test_support::kWait;
    for (;;) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "<timeout>";
      pollfd in = {fd_, POLLIN, 0};
      if (::poll(&in, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return "<eof>";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

// The agent side of a stdio connection; the test plays the client through raw pipe ends.
class StdioTest : public ::testing::Test {
 protected:
  void StartAgent(StdioOptions options = {}) {
    transport_ =
        std::make_unique<StdioTransport>(to_agent_.read.get(), from_agent_.write.get(), options);
    peer_ = std::make_unique<Peer>(*transport_, PeerOptions{.name = "agent"});
    peer_->HandleRequest("echo",
                         [](std::string_view params, const RequestContext&) -> Result<std::string> {
                           return std::string(params);
                         });
    peer_->OnClose([this] { closed_.CountDown(); });
    ASSERT_TRUE(transport_->Start(*peer_).ok());
  }
  void TearDown() override {
    if (transport_) transport_->Stop();
    peer_.reset();
    transport_.reset();
  }

  Pipe to_agent_ = MakePipe();
  Pipe from_agent_ = MakePipe();
  LineReader replies_{from_agent_.read.get()};
  std::unique_ptr<StdioTransport> transport_;
  std::unique_ptr<Peer> peer_;
  Latch closed_;
};

TEST_F(StdioTest, AnswersLinesToleratingCrlfAndBlankLines) {
  StartAgent();
  WriteAll(to_agent_.write.get(),
           "\n  \r\n"
           R"({"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":"x\ny"}})"
           "\r\n\n"
           R"({"jsonrpc":"2.0","id":"two","method":"echo","params":[2]})"
           "\n");
  // Requests run concurrently, so their responses may come in either order.
  std::map<std::string, Json> results;
  for (int n = 0; n < 2; ++n) {
    Json reply = ParseJson(replies_.Next());
    ASSERT_TRUE(reply.is_object());
    results[reply["id"].dump()] = reply["result"];
  }
  EXPECT_EQ(results["1"]["a"], "x\ny");
  EXPECT_EQ(results["\"two\""], Json::array({2}));
}

TEST_F(StdioTest, GarbageBytesGetParseErrorsAndTheLoopGoesOn) {
  StartAgent();
  const char raw[] = "\x00\x01\xff\xfe{]\"";
  std::string garbage(raw, sizeof raw - 1);  // Starts with a NUL byte.
  WriteAll(to_agent_.write.get(),
           garbage + "\n" + R"({"jsonrpc":"2.0","id":5,"method":"echo"})" + "\n");
  Json error = ParseJson(replies_.Next());
  EXPECT_EQ(error["error"]["code"], kParseError);
  EXPECT_TRUE(error["id"].is_null());
  EXPECT_EQ(ParseJson(replies_.Next())["id"], 5);
}

TEST_F(StdioTest, OverlongLineIsRejectedAndSkipped) {
  StartAgent({.max_line_bytes = 1000});
  std::string huge = R"({"jsonrpc":"2.0","id":1,"method":"echo","params":{"pad":")" +
                     std::string(200'000, 'x') + "\"}}\n";
  std::thread writer([&] {
    WriteAll(to_agent_.write.get(), huge);
    WriteAll(to_agent_.write.get(), R"({"jsonrpc":"2.0","id":2,"method":"echo","params":{}})"
                                    "\n");
  });
  Json error = ParseJson(replies_.Next());
  writer.join();
  EXPECT_EQ(error["error"]["code"], kInvalidRequest);
  EXPECT_EQ(error["id"], 1) << "the request is answered, or its client waits for ever";
  EXPECT_NE(error["error"]["message"].get<std::string>().find("exceeds the limit of 1000 bytes"),
            std::string::npos)
      << error.dump();
  EXPECT_EQ(ParseJson(replies_.Next())["id"], 2);
  EXPECT_EQ(transport_->skipped_lines(), 1u);
}

// A response too long to read fails the request it answers, at once, and nothing is sent back:
// an error with its id would answer a request of the client's own with the same number.
TEST_F(StdioTest, AnOverlongResponseFailsItsRequest) {
  StartAgent({.max_line_bytes = 1000});
  std::optional<Result<std::string>> outcome;
  std::thread asker([&] { outcome = peer_->Request("fs/read", "{}", {.timeout = 20s}); });
  Json asked = ParseJson(replies_.Next());
  ASSERT_EQ(asked["method"], "fs/read");
  auto sent_at = std::chrono::steady_clock::now();
  WriteAll(to_agent_.write.get(), R"({"jsonrpc":"2.0","id":)" + asked["id"].dump() +
                                      R"(,"result":{"content":")" + std::string(5000, 'x') +
                                      "\"}}\n");
  asker.join();
  ASSERT_TRUE(outcome.has_value());
  ASSERT_FALSE(outcome->ok());
  EXPECT_EQ(outcome->error().code(), ErrorCode::kResourceExhausted);
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, 10s) << "it waited for its timeout";
  // The next message the client gets answers its own request: nothing came before it.
  WriteAll(to_agent_.write.get(), R"({"jsonrpc":"2.0","id":1,"method":"echo","params":{}})"
                                  "\n");
  EXPECT_EQ(ParseJson(replies_.Next())["result"], Json::object());
}

// The id of a message whose start is all that was kept: the top level's only.
TEST(ReadMessageStartTest, FindsTheTopLevelIdAndKind) {
  auto id_of = [](std::string_view start) { return ReadMessageStart(start).id_json; };
  EXPECT_EQ(id_of(R"({"jsonrpc":"2.0","id":17,"method":"x","params":{"pad":"xx)"), "17");
  EXPECT_EQ(id_of(R"({ "id" : "a\"b", "method")"), R"("a\"b")");
  EXPECT_EQ(id_of(R"({"method":"x","params":{"id":3,"text":"\"id\":4"},"id":5})"), "5");
  EXPECT_EQ(id_of(R"({"method":"x","params":{"id":3,"text":"the line is cut he)"), "null");
  EXPECT_EQ(id_of(R"({"method":"x","text":"id","id")"), "null");
  EXPECT_EQ(id_of(R"({"id":12)"), "null");  // Maybe 123: not whole.
  EXPECT_EQ(id_of(R"({"id":null,"x":1})"), "null");
  EXPECT_EQ(id_of(""), "null");
  MessageStart request = ReadMessageStart(R"({"jsonrpc":"2.0","id":1,"method":"x","params":)");
  EXPECT_TRUE(request.has_method);
  EXPECT_FALSE(request.is_response);
  MessageStart response = ReadMessageStart(R"({"jsonrpc":"2.0","id":1,"result":{"content":"xx)");
  EXPECT_FALSE(response.has_method);
  EXPECT_TRUE(response.is_response);
  EXPECT_EQ(response.id_json, "1");
}

TEST_F(StdioTest, EndOfInputClosesThePeer) {
  StartAgent();
  WriteAll(to_agent_.write.get(), R"({"jsonrpc":"2.0","id":1,"method":"echo"})"
                                  "\n");
  EXPECT_EQ(ParseJson(replies_.Next())["id"], 1);
  to_agent_.write.Reset();
  EXPECT_TRUE(closed_.Wait()) << "stdin EOF did not close the peer";
  EXPECT_TRUE(peer_->is_closed());
}

TEST_F(StdioTest, WritingToAGoneReaderIsUnavailableNotAcrash) {
  StartAgent();
  from_agent_.read.Reset();
  Status sent = transport_->Send(R"({"jsonrpc":"2.0","method":"x"})");
  EXPECT_EQ(sent.code(), ErrorCode::kUnavailable) << sent.ToString();
  EXPECT_EQ(transport_->Send("{}").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(transport_->Send("{\n}").code(), ErrorCode::kInvalidArgument);
}

TEST(StdioPairTest, TwoPeersOverPipesTalkBothWays) {
  Pipe a_to_b = MakePipe();
  Pipe b_to_a = MakePipe();
  StdioTransport a_transport(b_to_a.read.get(), a_to_b.write.get());
  StdioTransport b_transport(a_to_b.read.get(), b_to_a.write.get());
  Peer a(a_transport, {.name = "a"});
  Peer b(b_transport, {.name = "b"});
  a.HandleRequest("whoami", [](std::string_view, const RequestContext&) -> Result<std::string> {
    return std::string(R"("a")");
  });
  b.HandleRequest(
      "whoami_and_ask", [&b](std::string_view, const RequestContext&) -> Result<std::string> {
        // A nested request back to the caller while its own request is pending.
        Result<std::string> other = b.Request("whoami", "", {.timeout = test_support::kWait});
        if (!other.ok()) return other.error();
        return R"({"me":"b","caller":)" + *other + "}";
      });
  ASSERT_TRUE(a_transport.Start(a).ok());
  ASSERT_TRUE(b_transport.Start(b).ok());
  Result<std::string> r = a.Request("whoami_and_ask", "{}", {.timeout = test_support::kWait});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ParseJson(*r), Json({{"me", "b"}, {"caller", "a"}}));
  a_transport.Stop();
  b_transport.Stop();
}

// A reader that went away fails the send with kUnavailable and never kills the process, whether
// the process ignores SIGPIPE (Send then skips masking it) or not.
TEST(StdioTransportSend, AReaderThatWentAwayIsAnErrorNotASignal) {
  for (bool ignore : {false, true}) {
    struct sigaction before = {};
    struct sigaction action = {};
    action.sa_handler = ignore ? SIG_IGN : SIG_DFL;
    ASSERT_EQ(::sigaction(SIGPIPE, &action, &before), 0);
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    ::close(out[0]);
    {
      StdioTransport transport(-1, out[1]);
      Status sent = transport.Send(R"({"jsonrpc":"2.0","method":"x"})");
      EXPECT_EQ(sent.code(), ErrorCode::kUnavailable) << "SIGPIPE ignored: " << ignore;
      EXPECT_EQ(transport.Send("{}").code(), ErrorCode::kUnavailable);
    }
    ::close(out[1]);
    sigset_t pending;
    sigpending(&pending);
    EXPECT_EQ(sigismember(&pending, SIGPIPE), 0) << "a SIGPIPE was left pending";
    ::sigaction(SIGPIPE, &before, nullptr);
  }
}

}  // namespace
}  // namespace lai::rpc
