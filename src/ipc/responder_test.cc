// Responder's non-blocking sends (TrySend/TryFinish) and its cancel callback (OnCancel), against
// a real Server and Client in this process.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ipc/client.h"
#include "ipc/server.h"
#include "ipc/test_support.h"

namespace lai::ipc {
namespace {

using test_support::kWait;
using SendResult = Responder::SendResult;

constexpr uint16_t kHeld = 200;  // A stream handler that hands its Responder to the test.

std::span<const std::byte> Bytes(const std::string& text) { return std::as_bytes(std::span(text)); }

class ResponderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.socket_path = dir_.Join("s.sock");
    server_ = std::make_unique<Server>(options);
    server_->HandleStream(kHeld, "held", [this](const Message&, std::shared_ptr<Responder> r) {
      {
        std::lock_guard lock(mutex_);
        held_ = std::move(r);
      }
      changed_.notify_all();
    });
    RegisterBuiltinHandlers(*server_);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    ClientOptions client_options;
    client_options.socket_path = options.socket_path;
    client_options.request_timeout = kWait;
    client_ = std::make_unique<Client>(client_options);
  }

  void TearDown() override {
    client_.reset();
    server_->Shutdown();
  }

  // Sends a kHeld request and waits for the handler to publish its Responder.
  std::shared_ptr<Responder> Open(uint64_t* id) {
    Result<uint64_t> sent = client_->Send(kHeld, {});
    EXPECT_TRUE(sent.ok());
    if (!sent.ok()) return nullptr;
    *id = *sent;
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kWait, [&] { return held_ != nullptr; });
    return std::move(held_);
  }

  test_support::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::shared_ptr<Responder> held_;  // Guarded by mutex_.
};

TEST_F(ResponderTest, TrySendIsFullWhenTheClientDoesNotReadAndLosesNothing) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  const std::string item(16384, 'x');
  int sent = 0;
  SendResult result = SendResult::kSent;
  for (int i = 0; i < 20'000 && result == SendResult::kSent; ++i) {
    result = responder->TrySend(Bytes(item));
    if (result == SendResult::kSent) ++sent;
  }
  ASSERT_EQ(result, SendResult::kFull) << "the outbox never filled after " << sent << " items";
  ASSERT_GT(sent, 0);
  // The final reply is sent (blocking) once the client reads; every item arrives once, in order.
  std::future<Status> finished =
      std::async(std::launch::async, [&] { return responder->Finish(Bytes("end")); });
  int received = 0;
  for (;;) {
    Result<Response> r = client_->Next(id, kWait);
    ASSERT_TRUE(r.ok()) << r.error().message();
    if (r->is_final) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(r->payload.data()), r->payload.size()),
                "end");
      break;
    }
    EXPECT_EQ(r->payload.size(), item.size());
    ++received;
  }
  EXPECT_EQ(received, sent);
  EXPECT_TRUE(finished.get().ok());
  EXPECT_EQ(responder->TrySend(Bytes(item)), SendResult::kClosed);  // Already answered.
}

// A Responder on another thread writes the client's ring itself (or queues when it is full)
// while the worker answers synchronous requests on the same connection: every frame arrives
// whole, and the stream's items in order.
TEST_F(ResponderTest, ItemsFromAnotherThreadInterleaveWithSyncRepliesInOrder) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  constexpr int kItems = 3000;
  std::future<Status> sender = std::async(std::launch::async, [&]() -> Status {
    for (int i = 0; i < kItems; ++i) {
      // Sizes from a few bytes to several ring records, so some items are fragmented.
      std::string item = "item-" + std::to_string(i) + ":" + std::string(i % 7 * 300, 'y');
      RETURN_IF_ERROR(responder->Send(Bytes(item)));
    }
    return responder->Finish(Bytes("end"));
  });
  int next_item = 0;
  bool finished = false;
  for (int call = 0; !finished; ++call) {
    if (call < 400) {
      std::string echo = "echo-" + std::to_string(call) + std::string(call % 5 * 500, 'e');
      Result<Response> reply =
          client_->Call(static_cast<uint16_t>(MessageType::kEcho), Bytes(echo), kWait);
      ASSERT_TRUE(reply.ok()) << reply.error().message();
      ASSERT_EQ(
          std::string(reinterpret_cast<const char*>(reply->payload.data()), reply->payload.size()),
          echo);
    }
    for (int k = 0; k < 10 && !finished; ++k) {
      Result<Response> r = client_->Next(id, kWait);
      ASSERT_TRUE(r.ok()) << r.error().message();
      std::string text(reinterpret_cast<const char*>(r->payload.data()), r->payload.size());
      if (r->is_final) {
        EXPECT_EQ(text, "end");
        finished = true;
        break;
      }
      ASSERT_EQ(text,
                "item-" + std::to_string(next_item) + ":" + std::string(next_item % 7 * 300, 'y'));
      ++next_item;
    }
  }
  EXPECT_EQ(next_item, kItems);
  EXPECT_TRUE(sender.get().ok());
}

// Empty items and an empty final reply take the same path as others (straight into the ring when
// nothing is queued before them) and arrive in order among them; an empty synchronous reply, the
// one a handler that answers nothing gets, arrives too.
TEST_F(ResponderTest, EmptyItemsAndAnEmptyFinalReplyArriveInOrder) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  const std::vector<std::string> items = {"a", "", "b", ""};
  for (const std::string& item : items) ASSERT_TRUE(responder->Send(Bytes(item)).ok());
  ASSERT_TRUE(responder->Finish({}).ok());
  for (const std::string& item : items) {
    Result<Response> r = client_->Next(id, kWait);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_FALSE(r->is_final);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(r->payload.data()), r->payload.size()),
              item);
  }
  Result<Response> last = client_->Next(id, kWait);
  ASSERT_TRUE(last.ok()) << last.error().message();
  EXPECT_TRUE(last->is_final);
  EXPECT_TRUE(last->payload.empty());

  Result<Response> echoed = client_->Call(static_cast<uint16_t>(MessageType::kEcho), {});
  ASSERT_TRUE(echoed.ok()) << echoed.error().message();
  EXPECT_TRUE(echoed->payload.empty());
}

// Metrics count what replies send: a synchronous reply's bytes, and a streamed reply's items
// and final frame (sent from another thread) once it ends, with an error when it fails.
TEST_F(ResponderTest, MetricsCountSentBytesAndStreamFailures) {
  const uint16_t echo = static_cast<uint16_t>(MessageType::kEcho);
  std::string hello = "hello";
  ASSERT_TRUE(client_->Call(echo, Bytes(hello)).ok());
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  std::thread other([&] {
    ASSERT_TRUE(responder->Send(Bytes("abc")).ok());
    ASSERT_TRUE(responder->Send(Bytes("de")).ok());
    ASSERT_TRUE(responder->Finish(Bytes("f")).ok());
  });
  other.join();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client_->Next(id, kWait).ok());
  {
    std::lock_guard lock(mutex_);
    held_.reset();
  }
  responder.reset();
  EXPECT_EQ(server_->metrics().Collect().types[kHeld].sent_bytes, 6u);  // abc, de, f.
  uint64_t failed_id = 0;
  std::shared_ptr<Responder> failing = Open(&failed_id);
  ASSERT_NE(failing, nullptr);
  ASSERT_TRUE(failing->Fail(Error(ErrorCode::kUnavailable, "no")).ok());
  EXPECT_FALSE(client_->Next(failed_id, kWait).ok());

  MetricsSnapshot totals = server_->metrics().Collect();
  EXPECT_EQ(totals.types[echo].sent_bytes, hello.size());
  EXPECT_EQ(totals.types[echo].errors, 0u);
  // (kHeld's request count is the worker's, recorded once the handler returns: not waited for.)
  EXPECT_GT(totals.types[kHeld].sent_bytes, 6u);  // And the error's payload.
  EXPECT_EQ(totals.types[kHeld].errors, 1u);
}

// A request the client cancelled ends with an error reply (kCancelled) that is not counted as a
// failure of the service: the client asked for it (errors_total counted every stopped completion).
TEST_F(ResponderTest, ACancelledRequestIsNotCountedAsAnError) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  std::promise<void> cancelled;
  responder->OnCancel([&] { cancelled.set_value(); });
  ASSERT_TRUE(client_->Cancel(id).ok());
  ASSERT_EQ(cancelled.get_future().wait_for(kWait), std::future_status::ready);
  ASSERT_TRUE(responder->Fail(Error(ErrorCode::kCancelled, "the client cancelled it")).ok());
  Result<Response> r = client_->Next(id, kWait);
  while (r.ok() && !r->is_final) r = client_->Next(id, kWait);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled) << r.error().message();
  EXPECT_EQ(server_->metrics().Collect().types[kHeld].errors, 0u);

  // Without a cancel, the same reply is the service's failure.
  uint64_t failed_id = 0;
  std::shared_ptr<Responder> failing = Open(&failed_id);
  ASSERT_NE(failing, nullptr);
  ASSERT_TRUE(failing->Fail(Error(ErrorCode::kCancelled, "gave up")).ok());
  EXPECT_FALSE(client_->Next(failed_id, kWait).ok());
  EXPECT_EQ(server_->metrics().Collect().types[kHeld].errors, 1u);
}

TEST_F(ResponderTest, TryFinishThenTrySendIsClosed) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  EXPECT_EQ(responder->TrySend(Bytes("a")), SendResult::kSent);
  EXPECT_EQ(responder->TryFinish(Bytes("b")), SendResult::kSent);
  EXPECT_EQ(responder->TrySend(Bytes("c")), SendResult::kClosed);
  EXPECT_EQ(responder->TryFinish(Bytes("d")), SendResult::kClosed);
  Result<Response> first = client_->Next(id, kWait);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->is_final);
  Result<Response> last = client_->Next(id, kWait);
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->is_final);
}

TEST_F(ResponderTest, CancelRunsTheCallbackOnceAndTrySendIsCancelled) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  std::promise<void> called;
  std::atomic<int> calls{0};
  responder->OnCancel([&] {
    if (calls.fetch_add(1) == 0) called.set_value();
  });
  EXPECT_EQ(responder->TrySend(Bytes("a")), SendResult::kSent);
  ASSERT_TRUE(client_->Cancel(id).ok());
  ASSERT_EQ(called.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(responder->is_cancelled());
  EXPECT_EQ(responder->TrySend(Bytes("b")), SendResult::kCancelled);
  // A second cancel does not run the callback again.
  ASSERT_TRUE(client_->Cancel(id).ok());
  // A callback set after the cancel runs at once, on this thread.
  bool late = false;
  responder->OnCancel([&] { late = true; });
  EXPECT_TRUE(late);
  // The final reply still goes out.
  EXPECT_EQ(responder->TryFinish(Bytes("stopped")), SendResult::kSent);
  Result<Response> r = client_->Next(id, kWait);
  while (r.ok() && !r->is_final) r = client_->Next(id, kWait);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(ResponderTest, DisconnectRunsTheCallbackAndTrySendIsClosed) {
  uint64_t id = 0;
  std::shared_ptr<Responder> responder = Open(&id);
  ASSERT_NE(responder, nullptr);
  std::promise<void> called;
  responder->OnCancel([&] { called.set_value(); });
  client_->Close();
  ASSERT_EQ(called.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(responder->TrySend(Bytes("a")), SendResult::kCancelled);  // Disconnect cancels too.
  EXPECT_EQ(responder->TryFinish(Bytes("b")), SendResult::kClosed);
  EXPECT_EQ(responder->TryFail(Error(ErrorCode::kInternal, "x")), SendResult::kClosed);
}

}  // namespace
}  // namespace lai::ipc
