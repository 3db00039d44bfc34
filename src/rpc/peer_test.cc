#include "rpc/peer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "rpc/test_support.h"

namespace lai::rpc {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using test_support::Latch;
using test_support::ParseJson;
using test_support::QueueTransport;
using test_support::RecordingTransport;

// Two peers wired back to back through queue transports (each with its own reader thread).
class PeerPairTest : public ::testing::Test {
 protected:
  PeerPairTest() : a_(to_b_, {.name = "a"}), b_(to_a_, {.name = "b"}) {
    to_b_.Connect(b_);
    to_a_.Connect(a_);
  }
  ~PeerPairTest() override {
    a_.Close();
    b_.Close();
    to_a_.Stop();
    to_b_.Stop();
  }

  QueueTransport to_b_;
  QueueTransport to_a_;
  Peer a_;
  Peer b_;
};

Result<std::string> AddHandler(std::string_view params, const RequestContext&) {
  Json p = Json::parse(params);
  return Json{{"sum", p["x"].get<int>() + p["y"].get<int>()}}.dump();
}

TEST_F(PeerPairTest, RequestsAndResponsesBothWays) {
  a_.HandleRequest("a/add", AddHandler);
  b_.HandleRequest("b/add", AddHandler);
  Result<std::string> from_b = a_.Request("b/add", R"({"x":2,"y":3})");
  ASSERT_TRUE(from_b.ok()) << from_b.error().ToString();
  EXPECT_EQ(*from_b, R"({"sum":5})");
  Result<std::string> from_a = b_.Request("a/add", R"({"x":40,"y":2})");
  ASSERT_TRUE(from_a.ok()) << from_a.error().ToString();
  EXPECT_EQ(*from_a, R"({"sum":42})");
}

TEST_F(PeerPairTest, ConcurrentRequestsFromBothSides) {
  a_.HandleRequest("add", AddHandler);
  b_.HandleRequest("add", AddHandler);
  constexpr int kThreads = 2;
  constexpr int kRequests = 20;
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreads; ++t) {
    Peer& caller = t % 2 == 0 ? a_ : b_;
    threads.emplace_back([&caller, &correct, t] {
      for (int i = 0; i < kRequests; ++i) {
        Result<std::string> r = caller.Request("add", Json{{"x", t}, {"y", i}}.dump(),
                                               {.timeout = test_support::kWait});
        if (r.ok() && Json::parse(*r)["sum"] == t + i) ++correct;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(correct.load(), 2 * kThreads * kRequests);
}

TEST_F(PeerPairTest, BlockedHandlerDoesNotHoldUpOtherRequests) {
  Latch entered, release;
  b_.HandleRequest("slow", [&](std::string_view, const RequestContext&) -> Result<std::string> {
    entered.CountDown();
    release.Wait();
    return std::string(R"("slow done")");
  });
  b_.HandleRequest("fast", [](std::string_view, const RequestContext&) -> Result<std::string> {
    return std::string(R"("fast done")");
  });
  Result<std::string> slow = Error(ErrorCode::kInternal, "not run");
  std::thread slow_caller([&] { slow = a_.Request("slow", "", {.timeout = test_support::kWait}); });
  ASSERT_TRUE(entered.Wait());
  Result<std::string> fast = a_.Request("fast", "", {.timeout = test_support::kWait});
  ASSERT_TRUE(fast.ok()) << fast.error().ToString();
  EXPECT_EQ(*fast, R"("fast done")");
  EXPECT_FALSE(release.is_done());  // The slow handler is still blocked.
  release.CountDown();
  slow_caller.join();
  ASSERT_TRUE(slow.ok()) << slow.error().ToString();
  EXPECT_EQ(*slow, R"("slow done")");
}

TEST_F(PeerPairTest, CancellingARequestReachesTheHandler) {
  Latch entered, saw_cancel;
  b_.HandleRequest("wait",
                   [&](std::string_view, const RequestContext& context) -> Result<std::string> {
                     Latch cancelled;
                     uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
                     entered.CountDown();
                     bool was_cancelled = cancelled.Wait();
                     context.cancel.RemoveCallback(id);
                     if (!was_cancelled) return std::string("\"never cancelled\"");
                     saw_cancel.CountDown();
                     return Error(ErrorCode::kCancelled, "wait was cancelled");
                   });
  CancelSignal cancel;
  std::thread canceller([&] {
    if (entered.Wait()) cancel.Cancel();
  });
  Result<std::string> r =
      a_.Request("wait", "{}", {.timeout = test_support::kWait, .cancel = &cancel});
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled) << r.error().ToString();
  EXPECT_TRUE(saw_cancel.Wait()) << "the handler never saw $/cancel_request";
}

TEST_F(PeerPairTest, TimeoutCancelsTheHandlerToo) {
  Latch saw_cancel;
  b_.HandleRequest("hang",
                   [&](std::string_view, const RequestContext& context) -> Result<std::string> {
                     Latch cancelled;
                     uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
                     if (cancelled.Wait()) saw_cancel.CountDown();
                     context.cancel.RemoveCallback(id);
                     return Error(ErrorCode::kCancelled, "hang cancelled");
                   });
  Result<std::string> r = a_.Request("hang", "", {.timeout = milliseconds(20)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  EXPECT_NE(r.error().message().find("no response within 20 ms"), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(saw_cancel.Wait());
}

TEST_F(PeerPairTest, HandlerErrorsReachTheCallerWithMappedCodes) {
  b_.HandleRequest("missing", [](std::string_view, const RequestContext&) -> Result<std::string> {
    return Error(ErrorCode::kNotFound, "session 'x' not found");
  });
  Result<std::string> r = a_.Request("missing", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "missing: session 'x' not found (JSON-RPC error -32002)");
  Result<std::string> unknown = a_.Request("nope", "{}");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(unknown.error().message(), "nope: Method not found: nope (JSON-RPC error -32601)");
}

TEST_F(PeerPairTest, AsyncRequestAndNotificationsInOrder) {
  std::vector<int> seen;
  Latch all_seen;
  b_.HandleNotification("tick", [&](std::string_view params) {
    seen.push_back(Json::parse(params)["n"].get<int>());
    if (seen.size() == 100) all_seen.CountDown();
  });
  for (int n = 0; n < 100; ++n) ASSERT_TRUE(a_.Notify("tick", Json{{"n", n}}.dump()).ok());
  ASSERT_TRUE(all_seen.Wait());
  for (int n = 0; n < 100; ++n) ASSERT_EQ(seen[n], n);

  b_.HandleRequest("add", AddHandler);
  Latch answered;
  std::string result;
  int64_t id = a_.RequestAsync("add", R"({"x":1,"y":1})", [&](Result<std::string> r) {
    result = r.ok() ? *r : r.error().ToString();
    answered.CountDown();
  });
  EXPECT_GT(id, 0);
  ASSERT_TRUE(answered.Wait());
  EXPECT_EQ(result, R"({"sum":2})");
}

TEST_F(PeerPairTest, CloseFailsPendingRequestsAndRunsOnClose) {
  Latch entered;
  b_.HandleRequest("never",
                   [&](std::string_view, const RequestContext& context) -> Result<std::string> {
                     entered.CountDown();
                     Latch cancelled;
                     uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
                     cancelled.Wait();
                     context.cancel.RemoveCallback(id);
                     return Error(ErrorCode::kCancelled, "never cancelled");
                   });
  std::atomic<int> on_close_calls{0};
  a_.OnClose([&] { ++on_close_calls; });
  Result<std::string> r = std::string();
  std::thread caller([&] { r = a_.Request("never", "{}"); });  // No deadline: only Close ends it.
  ASSERT_TRUE(entered.Wait());
  a_.Close();
  caller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("peer closed"), std::string::npos) << r.error().message();
  a_.Close();
  EXPECT_EQ(on_close_calls.load(), 1);
  Result<std::string> after = a_.Request("never", "{}");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(a_.Notify("x", "").code(), ErrorCode::kUnavailable);
}

TEST_F(PeerPairTest, OutgoingParamsAreValidatedAndSentOnOneLine) {
  Result<std::string> bad = a_.Request("x", "not json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a_.Notify("x", "42").code(), ErrorCode::kInvalidArgument);

  b_.HandleRequest(
      "pretty", [](std::string_view params, const RequestContext&) -> Result<std::string> {
        return Json::parse(params).dump(2);  // Multi-line JSON from a careless handler.
      });
  Result<std::string> r = a_.Request("pretty", "{\n  \"text\": \"line1\\nline2\"\n}");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->find('\n'), std::string::npos) << *r;
  EXPECT_EQ(Json::parse(*r)["text"], "line1\nline2");
}

// ---- One peer fed raw text; its replies recorded ----

class PeerRawTest : public ::testing::Test {
 protected:
  PeerRawTest() : peer_(sent_, {.name = "raw"}) {
    peer_.HandleRequest("echo",
                        [](std::string_view params, const RequestContext&) -> Result<std::string> {
                          return std::string(params);
                        });
    peer_.HandleRequest("fail",
                        [](std::string_view params, const RequestContext&) -> Result<std::string> {
                          std::string code = Json::parse(params)["code"];
                          if (code == "invalid")
                            return Error(ErrorCode::kInvalidArgument, "\"path\" must be absolute");
                          if (code == "cancelled") return Error(ErrorCode::kCancelled, "stopped");
                          if (code == "not_json") return std::string("{oops");
                          return Error(ErrorCode::kIo, "disk on fire");
                        });
  }

  // Feeds `message` and returns the next reply, parsed.
  Json Reply(std::string_view message) {
    size_t index = sent_.size();
    peer_.OnMessage(message);
    return ParseJson(sent_.At(index));
  }

  RecordingTransport sent_;
  Peer peer_;
};

TEST_F(PeerRawTest, GarbageIsAParseErrorWithNullId) {
  Json reply = Reply("\x01\x02garbage{{");
  EXPECT_EQ(reply["jsonrpc"], "2.0");
  EXPECT_TRUE(reply["id"].is_null());
  EXPECT_EQ(reply["error"]["code"], kParseError);
  EXPECT_NE(reply["error"]["message"].get<std::string>().find("Parse error"), std::string::npos);
  EXPECT_EQ(Reply("\xff\xfe")["error"]["code"], kParseError);
  EXPECT_EQ(Reply(R"({"jsonrpc":"2.0","id":1,"method":"echo")")["error"]["code"], kParseError);
}

TEST_F(PeerRawTest, InvalidRequests) {
  Json batch = Reply(R"([{"jsonrpc":"2.0","id":1,"method":"echo"}])");
  EXPECT_EQ(batch["error"]["code"], kInvalidRequest);
  EXPECT_NE(batch["error"]["message"].get<std::string>().find("batches are not supported"),
            std::string::npos);
  Json version = Reply(R"({"jsonrpc":"1.0","id":7,"method":"echo"})");
  EXPECT_EQ(version["error"]["code"], kInvalidRequest);
  EXPECT_EQ(version["id"], 7);
  EXPECT_EQ(version["error"]["message"], "Invalid Request: \"jsonrpc\" must be \"2.0\"");
  EXPECT_EQ(Reply(R"({"id":7,"method":"echo"})")["error"]["code"], kInvalidRequest);
  for (const char* id : {"1.5", "{}", "[1]", "true", "null"}) {
    Json bad_id = Reply(std::string(R"({"jsonrpc":"2.0","method":"echo","id":)") + id + "}");
    EXPECT_EQ(bad_id["error"]["code"], kInvalidRequest) << id;
    EXPECT_TRUE(bad_id["id"].is_null()) << id;
    EXPECT_NE(bad_id["error"]["message"].get<std::string>().find("\"id\" must be"),
              std::string::npos);
  }
  EXPECT_EQ(Reply(R"({"jsonrpc":"2.0","id":1,"method":5})")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(Reply(R"({"jsonrpc":"2.0","id":1,"method":"echo","params":3})")["error"]["code"],
            kInvalidRequest);
  EXPECT_EQ(Reply(R"({"jsonrpc":"2.0","id":1})")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(Reply("42")["error"]["code"], kInvalidRequest);
}

TEST_F(PeerRawTest, UnknownMethodIsMethodNotFound) {
  Json reply = Reply(R"({"jsonrpc":"2.0","id":3,"method":"_lapce/unknown"})");
  EXPECT_EQ(reply["id"], 3);
  EXPECT_EQ(reply["error"]["code"], kMethodNotFound);
  EXPECT_EQ(reply["error"]["message"], "Method not found: _lapce/unknown");
}

TEST_F(PeerRawTest, IdsAreEchoedExactly) {
  Json text_id = Reply(R"({"jsonrpc":"2.0","id":"req-\u00e9-1","method":"echo","params":{"a":1}})");
  EXPECT_EQ(text_id["id"], "req-\u00e9-1");
  EXPECT_EQ(text_id["result"], Json({{"a", 1}}));
  std::string raw = sent_.At(sent_.size() - 1);
  EXPECT_NE(raw.find(R"("id":"req-\u00e9-1")"), std::string::npos) << raw;  // Byte for byte.
  size_t index = sent_.size();
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":9007199254740993,"method":"echo","params":[]})");
  EXPECT_NE(sent_.At(index).find(R"("id":9007199254740993,)"), std::string::npos);
  Json negative = Reply(R"({"jsonrpc":"2.0","id":-4,"method":"echo"})");
  EXPECT_EQ(negative["id"], -4);
  EXPECT_TRUE(negative["result"].is_null());  // No params: the handler saw "null".
}

TEST_F(PeerRawTest, HandlerErrorsMapToRpcCodes) {
  Json invalid = Reply(R"({"jsonrpc":"2.0","id":1,"method":"fail","params":{"code":"invalid"}})");
  EXPECT_EQ(invalid["error"]["code"], kInvalidParams);
  EXPECT_EQ(invalid["error"]["message"], "Invalid params: \"path\" must be absolute");
  Json cancelled =
      Reply(R"({"jsonrpc":"2.0","id":2,"method":"fail","params":{"code":"cancelled"}})");
  EXPECT_EQ(cancelled["error"]["code"], kRequestCancelled);
  Json io = Reply(R"({"jsonrpc":"2.0","id":3,"method":"fail","params":{"code":"io"}})");
  EXPECT_EQ(io["error"]["code"], kInternalError);
  EXPECT_EQ(io["error"]["message"], "disk on fire");
  Json not_json = Reply(R"({"jsonrpc":"2.0","id":4,"method":"fail","params":{"code":"not_json"}})");
  EXPECT_EQ(not_json["error"]["code"], kInternalError);
  EXPECT_NE(not_json["error"]["message"].get<std::string>().find("not JSON"), std::string::npos);
}

TEST_F(PeerRawTest, NotificationsAndStrayResponsesGetNoReply) {
  peer_.OnMessage(R"({"jsonrpc":"2.0","method":"unknown/notification","params":{}})");
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":77,"result":{}})");   // We never sent id 77.
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":"s","result":{}})");  // We never send string ids.
  peer_.OnMessage(R"({"jsonrpc":"2.0","method":"$/cancel_request","params":{"id":12345}})");
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})");
  // A request after them is the first thing answered.
  Json reply = Reply(R"({"jsonrpc":"2.0","id":"last","method":"echo","params":{}})");
  EXPECT_EQ(reply["id"], "last");
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(PeerRawTest, CancelRequestWithStringIdReachesItsHandler) {
  Latch entered, cancelled;
  peer_.HandleRequest("wait",
                      [&](std::string_view, const RequestContext& context) -> Result<std::string> {
                        uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
                        entered.CountDown();
                        bool was_cancelled = cancelled.Wait();
                        context.cancel.RemoveCallback(id);
                        if (!was_cancelled) return std::string("\"not cancelled\"");
                        return Error(ErrorCode::kCancelled, "wait cancelled");
                      });
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":"w1","method":"wait"})");
  ASSERT_TRUE(entered.Wait());
  EXPECT_EQ(peer_.active_requests(), 1u);
  peer_.OnMessage(R"({"jsonrpc":"2.0","method":"$/cancel_request","params":{"id":"w1"}})");
  Json reply = ParseJson(sent_.At(0));
  EXPECT_EQ(reply["id"], "w1");
  EXPECT_EQ(reply["error"]["code"], kRequestCancelled);
}

TEST_F(PeerRawTest, CancelRequestWithAcpRequestIdReachesItsHandler) {
  Latch entered, cancelled;
  peer_.HandleRequest("wait",
                      [&](std::string_view, const RequestContext& context) -> Result<std::string> {
                        uint64_t id = context.cancel.AddCallback([&] { cancelled.CountDown(); });
                        entered.CountDown();
                        bool was_cancelled = cancelled.Wait();
                        context.cancel.RemoveCallback(id);
                        if (!was_cancelled) return std::string("\"not cancelled\"");
                        return Error(ErrorCode::kCancelled, "wait cancelled");
                      });
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":7,"method":"wait"})");
  ASSERT_TRUE(entered.Wait());
  peer_.OnMessage(R"({"jsonrpc":"2.0","method":"$/cancel_request","params":{"requestId":7}})");
  Json reply = ParseJson(sent_.At(0));
  EXPECT_EQ(reply["id"], 7);
  EXPECT_EQ(reply["error"]["code"], kRequestCancelled);
}

TEST_F(PeerRawTest, ResponsesCompleteOutgoingRequests) {
  Latch done;
  Result<std::string> outcome = std::string();
  int64_t id = peer_.RequestAsync("session/request_permission", R"({"options":[]})",
                                  [&](Result<std::string> r) {
                                    outcome = std::move(r);
                                    done.CountDown();
                                  });
  Json sent = ParseJson(sent_.At(0));
  EXPECT_EQ(sent["id"], id);
  EXPECT_EQ(sent["method"], "session/request_permission");
  peer_.OnMessage(Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"outcome", "allow"}}}}.dump());
  ASSERT_TRUE(done.Wait());
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, R"({"outcome":"allow"})");
}

// The other side closed its end after sending: a request that was waiting for a handler is still
// answered (its cancel signal set, so a long one would stop), our own request can get no response
// and fails at once, and the peer closes once the last answer is out.
TEST_F(PeerRawTest, EndOfInputAnswersWhatWasReceivedThenCloses) {
  Latch release;
  Latch closed;
  std::atomic<bool> saw_cancel{false};
  peer_.HandleRequest("slow", [&](std::string_view, const RequestContext& context) {
    release.Wait();
    saw_cancel = context.cancel.is_cancelled();
    return Result<std::string>(std::string(R"({"done":true})"));
  });
  peer_.OnClose([&] { closed.CountDown(); });
  Result<std::string> ours = std::string();
  Latch ours_done;
  peer_.RequestAsync("fs/read_text_file", R"({"path":"/x"})", [&](Result<std::string> r) {
    ours = std::move(r);
    ours_done.CountDown();
  });
  peer_.OnMessage(R"({"jsonrpc":"2.0","id":7,"method":"slow","params":{}})");
  peer_.EndOfInput();
  ASSERT_TRUE(ours_done.Wait());
  ASSERT_FALSE(ours.ok());
  EXPECT_EQ(ours.error().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(peer_.is_closed()) << "closed before the received request was answered";
  release.CountDown();
  ASSERT_TRUE(closed.Wait());
  EXPECT_TRUE(saw_cancel.load());
  Json answer = ParseJson(sent_.At(1));  // After our own request.
  EXPECT_EQ(answer["id"], 7);
  EXPECT_EQ(answer["result"]["done"], true);
  // Nothing more can be asked of the other side.
  Result<std::string> late = peer_.Request("fs/read_text_file", R"({"path":"/y"})");
  EXPECT_EQ(late.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace lai::rpc
