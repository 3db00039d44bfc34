// An in-process ipc::Server with handlers that fail, throw and stream, driven by a real client:
// errors reach the caller with their message and the connection stays usable; streamed items
// arrive in order; cancellation reaches the responder; shutdown never corrupts a reply in flight.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc/handshake.h"
#include "ipc/server.h"
#include "ipc/socket.h"
#include "ipc/wait.h"
#include "ipc_test_support.h"

namespace lai::ipc_test {
namespace {

constexpr uint16_t kEcho = static_cast<uint16_t>(ipc::MessageType::kEcho);
constexpr uint16_t kThrows = 16;
constexpr uint16_t kFails = 17;
constexpr uint16_t kHundredItems = 18;
constexpr uint16_t kUntilCancelled = 19;
constexpr uint16_t kStreamThrows = 20;
constexpr uint16_t kBigReply = 21;
constexpr uint16_t kUntilSendFails = 22;
constexpr uint16_t kTinyItems = 23;
constexpr uint16_t kTicker = 24;
constexpr uint16_t kSilent = 25;
constexpr uint16_t kRepliesBytes = 26;
constexpr uint32_t kTinyItemCount = 20'000;  // 80 KB of payload: far below the 1 MiB outbox.
constexpr uint32_t kBigReplyBytes = 8u << 20;
constexpr uint64_t kMaxEndlessItems = 2'000'000;  // Bound on the stream that waits for a cancel.

std::span<const std::byte> Bytes(const std::string& s) { return std::as_bytes(std::span(s)); }

uint32_t ItemIndex(std::span<const std::byte> payload) {
  uint32_t index = UINT32_MAX;
  if (payload.size() == sizeof(index)) std::memcpy(&index, payload.data(), sizeof(index));
  return index;
}

class IpcHandlers : public ::testing::Test {
 protected:
  void SetUp() override {
    // A modest buffer budget (the default is 256 MiB) keeps what a test can make it hold small.
    // A generous drain timeout: the shutdown test checks that queued output is delivered, not how
    // fast a loaded machine moves 2 MiB through a 1 KiB ring.
    server_ = std::make_unique<ipc::Server>(
        ipc::ServerOptions{.socket_path = SocketPath(),
                           .buffer_budget_bytes = 32u << 20,
                           .drain_timeout = std::chrono::milliseconds(10'000)});
    ipc::RegisterBuiltinHandlers(*server_);
    server_->Handle(kThrows, "throws", [](const ipc::Message&, ipc::Reply&) -> Status {
      throw std::runtime_error("boom: the handler exploded");
    });
    server_->Handle(kFails, "fails", [](const ipc::Message& m, ipc::Reply&) -> Status {
      return Error(ErrorCode::kInvalidArgument,
                   "fails: bad input '" + std::string(AsText(m.payload)) + "'");
    });
    // Streaming handlers answer from a thread of their own.
    auto on_thread = [this](void (IpcHandlers::*body)(std::shared_ptr<ipc::Responder>)) {
      return [this, body](const ipc::Message&, std::shared_ptr<ipc::Responder> responder) {
        Spawn([this, body, responder] { (this->*body)(responder); });
      };
    };
    server_->HandleStream(kHundredItems, "hundred", on_thread(&IpcHandlers::HundredItems));
    server_->HandleStream(kUntilCancelled, "until-cancelled",
                          on_thread(&IpcHandlers::UntilCancelled));
    server_->HandleStream(kUntilSendFails, "until-send-fails",
                          on_thread(&IpcHandlers::UntilSendFails));
    server_->HandleStream(kTinyItems, "tiny-items", on_thread(&IpcHandlers::TinyItems));
    server_->HandleStream(kTicker, "ticker", on_thread(&IpcHandlers::Ticker));
    server_->HandleStream(kSilent, "silent", on_thread(&IpcHandlers::Silent));
    server_->HandleStream(kStreamThrows, "stream-throws",
                          [](const ipc::Message&, std::shared_ptr<ipc::Responder>) {
                            throw std::runtime_error("stream handler exploded");
                          });
    // Replies 8 MiB, or 2 MiB when asked with "2MiB".
    server_->Handle(kBigReply, "big", [this](const ipc::Message& m, ipc::Reply& reply) -> Status {
      uint32_t bytes = AsText(m.payload) == "2MiB" ? 2u << 20 : kBigReplyBytes;
      ASSIGN_OR_RETURN(std::span<std::byte> out, reply.Reserve(bytes));
      FillPattern(out, bytes);
      reply.Commit();
      big_reply_committed_.store(true);
      return OkStatus();
    });
    // Replies with as many bytes as the request's text says, through Reply::Send.
    server_->Handle(kRepliesBytes, "replies-bytes",
                    [](const ipc::Message& m, ipc::Reply& reply) -> Status {
                      std::vector<std::byte> payload(std::stoul(std::string(AsText(m.payload))),
                                                     std::byte{0x6b});
                      return reply.Send(payload);
                    });
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    client_ = std::make_unique<ipc::Client>(DefaultClientOptions(SocketPath()));
  }

  void TearDown() override {
    client_.reset();
    server_->Shutdown();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
    server_.reset();
  }

  // Items 0..98, then item 99 as the final frame.
  void HundredItems(std::shared_ptr<ipc::Responder> responder) {
    for (uint32_t i = 0; i < 99; ++i) {
      if (!responder->Send(std::as_bytes(std::span(&i, 1))).ok()) return;
    }
    uint32_t last = 99;
    (void)responder->Finish(std::as_bytes(std::span(&last, 1)));
  }

  // Items until cancelled (or kMaxEndlessItems, or 10 s), then "stopped". It sends only while
  // the client has granted credit, so items never pile up in the server's outbox.
  void UntilCancelled(std::shared_ptr<ipc::Responder> responder) {
    uint64_t sent = 0;
    Status status;
    uint64_t deadline = ipc::NowNs() + 10'000'000'000;
    while (sent < kMaxEndlessItems && !responder->is_cancelled() && ipc::NowNs() < deadline) {
      {
        std::unique_lock lock(mutex_);
        // Wakes now and then to look at is_cancelled(), which nobody notifies.
        if (!credit_.wait_for(lock, milliseconds(1), [&] { return sent < credits_; })) continue;
      }
      uint32_t index = static_cast<uint32_t>(sent);
      status = responder->Send(std::as_bytes(std::span(&index, 1)));
      if (!status.ok()) break;
      ++sent;
    }
    bool cancelled = responder->is_cancelled();
    Status finished = responder->Finish(Bytes("stopped"));
    Done(status, finished, sent, cancelled);
  }

  void GrantCredits(uint64_t up_to) {
    {
      std::lock_guard lock(mutex_);
      credits_ = up_to;
    }
    credit_.notify_all();
  }

  // An item every 5 ms until cancelled (at most 5 s), then "stopped".
  void Ticker(std::shared_ptr<ipc::Responder> responder) {
    uint64_t deadline = ipc::NowNs() + 5'000'000'000;
    for (uint32_t i = 0; !responder->is_cancelled() && ipc::NowNs() < deadline; ++i) {
      if (!responder->Send(std::as_bytes(std::span(&i, 1))).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    (void)responder->Finish(Bytes("stopped"));
  }

  // Nothing until cancelled (at most 5 s), then "stopped".
  void Silent(std::shared_ptr<ipc::Responder> responder) {
    uint64_t deadline = ipc::NowNs() + 5'000'000'000;
    while (!responder->is_cancelled() && ipc::NowNs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    (void)responder->Finish(Bytes("stopped"));
  }

  // Items until Send fails (the client went away).
  void UntilSendFails(std::shared_ptr<ipc::Responder> responder) {
    Status status;
    uint64_t sent = 0;
    for (; sent < kMaxEndlessItems && status.ok(); ++sent) {
      uint32_t index = static_cast<uint32_t>(sent);
      status = responder->Send(std::as_bytes(std::span(&index, 1)));
    }
    Done(status, OkStatus(), sent, responder->is_cancelled());
  }

  // kTinyItemCount 4-byte items, then "done".
  void TinyItems(std::shared_ptr<ipc::Responder> responder) {
    Status status;
    uint32_t i = 0;
    for (; i < kTinyItemCount && status.ok(); ++i) {
      status = responder->Send(std::as_bytes(std::span(&i, 1)));
      if (status.ok()) tiny_items_sent_.store(i + 1);
    }
    Status finished = responder->Finish(Bytes("done"));
    Done(status, finished, tiny_items_sent_.load(), responder->is_cancelled());
  }

  void Done(const Status& send, const Status& finish, uint64_t sent, bool cancelled) {
    std::lock_guard lock(mutex_);
    send_error_ = send.code();
    send_status_ = send.ToString();
    finish_status_ = finish.ToString();
    items_sent_ = sent;
    saw_cancel_ = cancelled;
    stream_done_ = true;
    done_.notify_all();
  }

  std::string SocketPath() const { return dir_.File("engine.sock"); }

  // Handler threads are joined in TearDown.
  void Spawn(std::function<void()> body) {
    std::lock_guard lock(mutex_);
    threads_.emplace_back(std::move(body));
  }

  void ExpectEchoWorks() {
    std::string text = "still working";
    Result<ipc::Response> r = client_->Call(kEcho, Bytes(text));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(AsText(r->payload), text);
  }

  TempDir dir_;
  std::unique_ptr<ipc::Server> server_;
  std::unique_ptr<ipc::Client> client_;
  std::atomic<bool> big_reply_committed_{false};
  std::atomic<uint32_t> tiny_items_sent_{0};

  std::mutex mutex_;
  std::condition_variable done_;
  std::condition_variable credit_;
  uint64_t credits_ = 0;                   // Guarded by mutex_. Items UntilCancelled may send.
  std::vector<std::thread> threads_;       // Guarded by mutex_.
  bool stream_done_ = false;               // Guarded by mutex_.
  bool saw_cancel_ = false;                // Guarded by mutex_.
  ErrorCode send_error_ = ErrorCode::kOk;  // Guarded by mutex_.
  std::string send_status_;                // Guarded by mutex_.
  std::string finish_status_;              // Guarded by mutex_.
  uint64_t items_sent_ = 0;                // Guarded by mutex_.
};

TEST_F(IpcHandlers, ThrowingHandlerBecomesAnErrorReplyAndTheServerKeepsServing) {
  for (int i = 0; i < 3; ++i) {
    Result<ipc::Response> r = client_->Call(kThrows, Bytes("x"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
    EXPECT_NE(r.error().message().find("boom: the handler exploded"), std::string::npos)
        << r.error().ToString();
    ExpectEchoWorks();
  }
  EXPECT_EQ(client_->reconnect_count(), 0u);
}

TEST_F(IpcHandlers, HandlerErrorReachesTheClientWithCodeAndMessage) {
  Result<ipc::Response> r = client_->Call(kFails, Bytes("42"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "fails: bad input '42'");
  ExpectEchoWorks();

  Result<ipc::Response> unknown = client_->Call(99, Bytes("?"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.error().message().find("no handler for message type 99"), std::string::npos);
  ExpectEchoWorks();

  Result<ipc::Response> stream_throws = client_->Call(kStreamThrows, {});
  ASSERT_FALSE(stream_throws.ok());
  EXPECT_EQ(stream_throws.error().code(), ErrorCode::kInternal);
  EXPECT_NE(stream_throws.error().message().find("stream handler exploded"), std::string::npos)
      << stream_throws.error().ToString();
  ExpectEchoWorks();
  EXPECT_EQ(client_->reconnect_count(), 0u);
}

// A reply larger than the connection's agreed limit fails with an error that says so; a reply
// at the limit arrives whole; the connection goes on serving either way.
TEST_F(IpcHandlers, AReplyOverTheConnectionsLimitIsAnErrorAndOneAtTheLimitArrives) {
  ipc::ClientOptions options = DefaultClientOptions(SocketPath());
  options.stream.max_message_bytes = 64u << 10;
  ipc::Client small(options);
  ASSERT_TRUE(small.Connect().ok());

  Result<ipc::Response> over = small.Call(kRepliesBytes, Bytes(std::to_string((64u << 10) + 1)));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(over.error().message().find("reply of 65537 bytes exceeds the connection's maximum "
                                        "of 65536"),
            std::string::npos)
      << over.error().ToString();

  for (uint32_t bytes : {64u, 64u << 10}) {
    Result<ipc::Response> r = small.Call(kRepliesBytes, Bytes(std::to_string(bytes)));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_EQ(r->payload.size(), bytes);
    EXPECT_EQ(r->payload.front(), std::byte{0x6b});
    EXPECT_EQ(r->payload.back(), std::byte{0x6b});
  }
  EXPECT_EQ(small.reconnect_count(), 0u);
}

// A burst larger than one visit handles (64 messages) on a connection the worker does not watch:
// the rest is handled without the client sending anything more. The requests are all in the ring
// before the worker (asleep, woken by the first) gets to them.
TEST_F(IpcHandlers, ABurstBeyondOneVisitIsHandledWhole) {
  ipc::ClientOptions options = DefaultClientOptions(SocketPath());
  options.stream.ring_bytes = 64u << 10;  // Room for 500 small requests and their replies.
  ipc::Client burst(options);
  ASSERT_TRUE(burst.Connect().ok());
  constexpr int kRequests = 300;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kRequests; ++i) {
    Result<uint64_t> id = burst.Send(kEcho, Bytes(std::to_string(i)));
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    ids.push_back(*id);
  }
  for (int i = 0; i < kRequests; ++i) {
    Result<ipc::Response> r = burst.Next(ids[i], milliseconds(5'000));
    ASSERT_TRUE(r.ok()) << "reply " << i << ": " << r.error().ToString();
    EXPECT_EQ(AsText(r->payload), std::to_string(i));
  }
}

// The checksum service reads every byte, also of a message fragmented across many ring records.
TEST_F(IpcHandlers, ChecksumAnswersTheSumOfThePayloadItReceived) {
  constexpr uint16_t kChecksum = static_cast<uint16_t>(ipc::MessageType::kChecksum);
  for (size_t bytes : {size_t{0}, size_t{13}, size_t{64}, size_t{100'003}}) {
    std::vector<std::byte> payload(bytes);
    for (size_t i = 0; i < bytes; ++i) payload[i] = static_cast<std::byte>(i * 131 + 7);
    Result<ipc::Response> r = client_->Call(kChecksum, payload);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_EQ(r->payload.size(), sizeof(uint64_t));
    uint64_t sum;
    std::memcpy(&sum, r->payload.data(), sizeof(sum));
    EXPECT_EQ(sum, ipc::PayloadChecksum(payload)) << bytes << " bytes";
  }
}

// A receive for a request whose final reply was taken fails at once, saying so (it waited out
// its whole timeout, then blamed the peer); an id never sent is refused as before.
TEST_F(IpcHandlers, ReceivingAfterTheFinalReplyFailsAtOnce) {
  const std::vector<std::byte> payload(3, std::byte{'a'});
  Result<uint64_t> id = client_->Send(kEcho, payload);
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  Result<ipc::Response> reply = client_->Next(*id, milliseconds(5'000));
  ASSERT_TRUE(reply.ok()) << reply.error().ToString();
  EXPECT_TRUE(reply->is_final);
  auto started = std::chrono::steady_clock::now();
  Result<ipc::Response> again = client_->Next(*id, milliseconds(5'000));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(again.error().message(),
            "request " + std::to_string(*id) + " has had its final reply already");
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(1'000));
  EXPECT_EQ(client_->Next(*id + 1, milliseconds(5'000)).error().code(),
            ErrorCode::kInvalidArgument);
  Result<ipc::Response> call = client_->Call(kEcho, payload);  // The connection is fine.
  ASSERT_TRUE(call.ok()) << call.error().ToString();
}

// A notification runs its handler but nothing comes back, however large the reply it discards
// (1 MiB is past the worker's scratch space); the next call gets its own answer.
TEST_F(IpcHandlers, NotificationsRunTheirHandlerAndAnswerNothing) {
  for (uint32_t bytes : {0u, 64u, 1u << 20}) {
    Status sent = client_->Notify(kRepliesBytes, Bytes(std::to_string(bytes)));
    ASSERT_TRUE(sent.ok()) << sent.ToString();
  }
  Result<ipc::Response> r = client_->Call(kRepliesBytes, Bytes("5"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->payload.size(), 5u);
  // The worker counts a request after its reply is on its way: wait (boundedly) for the last.
  ipc::TypeSnapshot totals;
  for (int i = 0; i < 2000 && totals.requests < 4; ++i) {
    if (i != 0) std::this_thread::sleep_for(milliseconds(1));
    totals = server_->metrics().Collect().types[kRepliesBytes];
  }
  EXPECT_EQ(totals.requests, 4u);
  EXPECT_EQ(totals.errors, 0u);
  EXPECT_EQ(client_->reconnect_count(), 0u);
}

// Back-to-back requests are timed in runs of one type (one clock read per run): the counts stay
// exact per type, however the types alternate, and the time is counted.
TEST_F(IpcHandlers, RequestsHandledBackToBackAreEachCounted) {
  for (int i = 0; i < 300; ++i) {
    uint16_t type = (i / 7) % 2 == 0 ? kEcho : kFails;
    ASSERT_TRUE(client_->Notify(type, Bytes("x")).ok());
  }
  ASSERT_TRUE(client_->Call(kEcho, Bytes("end")).ok());
  ipc::MetricsSnapshot totals;
  for (int i = 0; i < 2000 && totals.types[kEcho].requests + totals.types[kFails].requests < 301;
       ++i) {
    if (i != 0) std::this_thread::sleep_for(milliseconds(1));
    totals = server_->metrics().Collect();
  }
  const ipc::TypeSnapshot& echo = totals.types[kEcho];
  const ipc::TypeSnapshot& fails = totals.types[kFails];
  EXPECT_EQ(echo.requests, 153u + 1u);
  EXPECT_EQ(fails.requests, 147u);
  EXPECT_EQ(fails.errors, 147u);
  EXPECT_EQ(echo.latency.count, echo.requests);
  EXPECT_GT(echo.latency.sum_ns, 0u);
  EXPECT_GT(fails.latency.sum_ns, 0u);
}

TEST_F(IpcHandlers, StreamedItemsFromAnotherThreadArriveInOrderWithOneFinalFrame) {
  for (int round = 0; round < 2; ++round) {
    Result<uint64_t> id = client_->Send(kHundredItems, {});
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    for (uint32_t i = 0; i < 100; ++i) {
      Result<ipc::Response> r = client_->Next(*id, milliseconds(5'000));
      ASSERT_TRUE(r.ok()) << "item " << i << ": " << r.error().ToString();
      EXPECT_EQ(r->request_id, *id);
      EXPECT_EQ(ItemIndex(r->payload), i);
      ASSERT_EQ(r->is_final, i == 99) << "item " << i;
    }
    ExpectEchoWorks();
  }
}

TEST_F(IpcHandlers, FramesForAnotherRequestDoNotKeepATimedOutWaitAlive) {
  Result<uint64_t> ticker = client_->Send(kTicker, {});
  ASSERT_TRUE(ticker.ok()) << ticker.error().ToString();
  Result<uint64_t> silent = client_->Send(kSilent, {});
  ASSERT_TRUE(silent.ok()) << silent.error().ToString();

  auto start = std::chrono::steady_clock::now();
  Result<ipc::Response> r = client_->Next(*silent, milliseconds(200));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok()) << "the silent request was answered";
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout) << r.error().ToString();
  // At most twice the timeout, with room for a loaded machine; the ticker runs for 5 s.
  EXPECT_LT(waited, milliseconds(2'000));

  // The ticker's items that arrived meanwhile were kept for their own Next, in order.
  for (uint32_t i = 0; i < 3; ++i) {
    r = client_->Next(*ticker, milliseconds(5'000));
    ASSERT_TRUE(r.ok()) << "item " << i << ": " << r.error().ToString();
    EXPECT_EQ(ItemIndex(r->payload), i);
  }
  ASSERT_TRUE(client_->Cancel(*ticker).ok());
  ASSERT_TRUE(client_->Cancel(*silent).ok());
  ExpectEchoWorks();
}

// A Call that times out is abandoned: the server is told to stop, and the frames still coming
// for it are dropped as they arrive instead of being kept until the connection closes.
TEST_F(IpcHandlers, ATimedOutCallIsCancelledAndItsLateFramesAreNotKept) {
  Result<ipc::Response> r = client_->Call(kUntilCancelled, {}, milliseconds(100));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout) << r.error().ToString();
  {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(done_.wait_for(lock, milliseconds(10'000), [&] { return stream_done_; }));
    EXPECT_TRUE(saw_cancel_) << "the server was told to stop";
  }
  ExpectEchoWorks();  // Reads past the abandoned request's final "stopped" frame.
  EXPECT_EQ(client_->stashed_frames(), 0u);
}

TEST_F(IpcHandlers, CancelMidStreamReachesTheResponderAndEndsWithAFinalFrame) {
  constexpr uint64_t kCreditAhead = 64;
  GrantCredits(kCreditAhead);
  Result<uint64_t> id = client_->Send(kUntilCancelled, {});
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  uint32_t expected = 0;
  for (; expected < 10; ++expected) {
    Result<ipc::Response> r = client_->Next(*id, milliseconds(5'000));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_FALSE(r->is_final);
    ASSERT_EQ(ItemIndex(r->payload), expected);
    GrantCredits(expected + 1 + kCreditAhead);
  }
  ASSERT_TRUE(client_->Cancel(*id).ok());

  // Items already queued still arrive, in order, then the final frame.
  bool final_seen = false;
  std::string receive_error;
  for (uint64_t frames = 0; frames <= kMaxEndlessItems && !final_seen; ++frames) {
    Result<ipc::Response> r = client_->Next(*id, milliseconds(5'000));
    if (!r.ok()) {
      receive_error = r.error().ToString();
      break;
    }
    if (r->is_final) {
      EXPECT_EQ(AsText(r->payload), "stopped");
      final_seen = true;
    } else {
      ASSERT_EQ(ItemIndex(r->payload), expected);
      ++expected;
      GrantCredits(expected + kCreditAhead);
    }
  }
  std::unique_lock lock(mutex_);
  ASSERT_TRUE(done_.wait_for(lock, milliseconds(5'000), [&] { return stream_done_; }));
  EXPECT_TRUE(final_seen) << "after " << expected << " items: " << receive_error
                          << "; the handler's last Send: " << send_status_
                          << "; its Finish: " << finish_status_;
  EXPECT_TRUE(saw_cancel_) << "the responder never saw the cancellation; it sent " << items_sent_
                           << " items (the bound is " << kMaxEndlessItems << ")";
  EXPECT_TRUE(send_error_ == ErrorCode::kOk || send_error_ == ErrorCode::kCancelled)
      << "Send failed: " << send_status_;
  EXPECT_EQ(finish_status_, "ok");
  if (final_seen) {
    EXPECT_EQ(items_sent_, expected);
  }
  lock.unlock();
  if (final_seen) ExpectEchoWorks();
}

// Responder::Send applies back-pressure by blocking: it must not fail for tiny items that stay
// far below the outbox limit, and the stream still gets its final frame. The client reads nothing
// until the handler is done, has made no progress for 200 ms (blocked), or 2 s have passed.
TEST_F(IpcHandlers, StreamOfManyTinyItemsReachesALateReaderWhole) {
  Result<uint64_t> id = client_->Send(kTinyItems, {});
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  uint32_t last_seen = 0;
  uint64_t last_progress = ipc::NowNs();
  PollUntil(
      [&] {
        uint32_t sent = tiny_items_sent_.load();
        if (sent != last_seen) {
          last_seen = sent;
          last_progress = ipc::NowNs();
        }
        std::lock_guard lock(mutex_);
        return stream_done_ || ipc::NowNs() - last_progress > 200'000'000;
      },
      milliseconds(2'000));

  uint32_t received = 0;
  bool final_seen = false;
  std::string receive_error;
  while (!final_seen && received <= kTinyItemCount) {
    Result<ipc::Response> r = client_->Next(*id, milliseconds(2'000));
    if (!r.ok()) {
      receive_error = r.error().ToString();
      break;
    }
    if (r->is_final) {
      final_seen = true;
    } else {
      ASSERT_EQ(ItemIndex(r->payload), received);
      ++received;
    }
  }
  std::unique_lock lock(mutex_);
  ASSERT_TRUE(done_.wait_for(lock, milliseconds(5'000), [&] { return stream_done_; }));
  EXPECT_EQ(send_status_, "ok") << "after " << items_sent_ << " items";
  EXPECT_EQ(finish_status_, "ok");
  EXPECT_TRUE(final_seen) << "after " << received << " items: " << receive_error;
  EXPECT_EQ(received, kTinyItemCount);
}

// A client that goes away mid-stream: the responder's next Send fails (the handler thread is
// released even while blocked on a full outbox) and the server keeps serving others.
TEST_F(IpcHandlers, ClientClosingMidStreamReleasesTheStreamingHandler) {
  Result<uint64_t> id = client_->Send(kUntilSendFails, {});
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  for (uint32_t i = 0; i < 5; ++i) {
    Result<ipc::Response> r = client_->Next(*id, milliseconds(5'000));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_EQ(ItemIndex(r->payload), i);
  }
  client_->Close();
  {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(done_.wait_for(lock, milliseconds(5'000), [&] { return stream_done_; }))
        << "the handler is still sending to a closed connection";
    EXPECT_TRUE(send_error_ == ErrorCode::kUnavailable || send_error_ == ErrorCode::kCancelled)
        << "Send failed with code " << static_cast<int>(send_error_);
  }
  ipc::Client other(DefaultClientOptions(SocketPath()));
  Result<Health> health = QueryHealth(other);
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->connections, 1u);
}

// Shutdown while a reply larger than the ring is half-way out: the client gets the whole reply
// or kUnavailable, never a reply spliced with the shutdown frame.
TEST_F(IpcHandlers, ShutdownDuringALargeReplyNeverCorruptsIt) {
  std::optional<Result<ipc::Response>> outcome;
  std::vector<std::byte> expected(kBigReplyBytes);
  FillPattern(expected, kBigReplyBytes);
  bool intact = false;
  std::thread caller([&] {
    outcome = client_->Call(kBigReply, {}, milliseconds(10'000));
    if (outcome->ok()) {
      intact = (*outcome)->payload.size() == expected.size() &&
               std::memcmp((*outcome)->payload.data(), expected.data(), expected.size()) == 0;
    }
  });
  ASSERT_TRUE(PollUntil([&] { return big_reply_committed_.load(); }, milliseconds(10'000)));
  server_->Shutdown();
  caller.join();
  ASSERT_TRUE(outcome.has_value());
  if (outcome->ok()) {
    EXPECT_TRUE(intact) << "the reply arrived altered";
  } else {
    EXPECT_EQ(outcome->error().code(), ErrorCode::kUnavailable) << outcome->error().ToString();
  }
}

// Graceful shutdown flushes what is queued: a 2 MiB reply waiting in the outbox when Shutdown()
// starts reaches a client that keeps reading, well within the 1 s drain timeout.
TEST_F(IpcHandlers, ShutdownDeliversAQueuedReplyWithinTheDrainTimeout) {
  Result<uint64_t> id = client_->Send(kBigReply, Bytes("2MiB"));
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  // The client reads nothing until the shutdown has begun, so the reply is still queued then.
  ASSERT_TRUE(PollUntil([&] { return big_reply_committed_.load(); }, milliseconds(10'000)));
  uint64_t shutdown_started = ipc::NowNs();
  std::thread stopper([&] { server_->Shutdown(); });
  Result<ipc::Response> r = client_->Next(*id, milliseconds(10'000));
  uint64_t received = ipc::NowNs();
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.error().ToString() << " after "
                      << (received - shutdown_started) / 1'000'000 << " ms";
  std::vector<std::byte> expected(2u << 20);
  FillPattern(expected, expected.size());
  ASSERT_EQ(r->payload.size(), expected.size());
  EXPECT_EQ(std::memcmp(r->payload.data(), expected.data(), expected.size()), 0);
}

// A client that has not received since learns at once that the server stopped: is_connected()
// reads false (an editor showing the engine's state need not send to find out), and its next
// receive says why.
TEST_F(IpcHandlers, AStoppedServerReadsAsDisconnectedBeforeAnyReceive) {
  ASSERT_TRUE(client_->Call(kEcho, Bytes("hi")).ok());
  EXPECT_TRUE(client_->is_connected());
  server_->Shutdown();
  EXPECT_FALSE(client_->is_connected());
  Result<ipc::Response> r = client_->Call(kEcho, Bytes("hi"), milliseconds(2'000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
}

// server.max_connections: the connection over the limit is refused with a message naming the
// limit; once one closes, a newcomer gets in.
TEST(IpcServerLimits, AClientThatNeverSaysHelloHoldsUpOnlyItself) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ipc::Server server(
      ipc::ServerOptions{.socket_path = path, .handshake_timeout = milliseconds(3'000)});
  ipc::RegisterBuiltinHandlers(server);
  ASSERT_TRUE(server.Start().ok());
  Result<UniqueFd> silent = ipc::ConnectUnix(path);
  ASSERT_TRUE(silent.ok()) << silent.error().ToString();

  // Clients behind it connect and are served while it waits (one after another, each handshake
  // took its turn behind the silent one's whole timeout before).
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    ipc::Client client(DefaultClientOptions(path));
    ASSERT_TRUE(client.Connect().ok());
    Result<ipc::Response> echo = client.Call(kEcho, Bytes("behind"));
    ASSERT_TRUE(echo.ok()) << echo.error().ToString();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1'500));

  // The silent one is refused once its own handshake time is up: a refusal, then end of stream.
  ipc::Welcome refusal{};
  Result<ipc::ReceivedPacket> answer = ipc::ReceiveWithFds(
      silent->get(), std::as_writable_bytes(std::span(&refusal, 1)), milliseconds(10'000));
  ASSERT_TRUE(answer.ok()) << answer.error().ToString();
  EXPECT_EQ(answer->bytes, sizeof(refusal));
  EXPECT_NE(refusal.refused, 0);
  EXPECT_EQ(refusal.error_code, static_cast<uint32_t>(ErrorCode::kTimeout)) << refusal.reason;
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(2'000));
  server.Shutdown();
}

TEST(IpcServerLimits, ConnectionOverTheLimitIsRefusedUntilOneCloses) {
  TempDir dir;
  const std::string path = dir.File("engine.sock");
  ipc::Server server(ipc::ServerOptions{.socket_path = path, .max_connections = 3});
  ipc::RegisterBuiltinHandlers(server);
  ASSERT_TRUE(server.Start().ok());
  std::vector<std::unique_ptr<ipc::Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<ipc::Client>(DefaultClientOptions(path)));
    ASSERT_TRUE(clients.back()->Connect().ok());
  }
  ipc::Client extra(DefaultClientOptions(path));
  Status refused = extra.Connect();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), ErrorCode::kResourceExhausted) << refused.ToString();
  EXPECT_NE(refused.ToString().find("max_connections"), std::string::npos) << refused.ToString();

  clients.front()->Close();
  Status admitted;
  PollUntil(
      [&] {
        ipc::Client newcomer(DefaultClientOptions(path));
        admitted = newcomer.Connect();
        return admitted.ok();
      },
      milliseconds(5'000));
  EXPECT_TRUE(admitted.ok()) << admitted.ToString();
  Result<Health> health = QueryHealth(*clients.back());
  ASSERT_TRUE(health.ok());
  EXPECT_LE(health->connections, 3u);
  server.Shutdown();
}

}  // namespace
}  // namespace lai::ipc_test
