#include "ipc/channel.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/unique_fd.h"
#include "ipc/shm.h"
#include "ipc/test_support.h"

namespace lai::ipc {
namespace {

using test_support::Contains;
using test_support::Pattern;
using test_support::SameBytes;

// Reads and resets an eventfd counter; 0 when nobody wrote it.
uint64_t TakeWakeups(int eventfd) {
  uint64_t count = 0;
  if (::read(eventfd, &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) {
    EXPECT_EQ(errno, EAGAIN);
    return 0;
  }
  return count;
}

// Both ends of one connection block in a memfd, in one process: `client` produces into c2s and
// consumes s2c, `server` the reverse. Each wakes the other through the other's eventfd.
class Link {
 public:
  explicit Link(uint32_t cells = 16, uint32_t max_message_bytes = 2u << 20,
                BufferPoolOptions server_pool = {})
      : layout_{cells, cells}, server_pool_(server_pool) {
    Result<UniqueFd> fd = CreateSharedFile("channel-test", layout_.bytes());
    LAI_CHECK(fd.ok()) << fd.error().ToString();
    Result<Mapping> mapping = MapOwnFile(fd->get(), layout_.bytes());
    LAI_CHECK(mapping.ok()) << mapping.error().ToString();
    mapping_ = std::move(mapping).value();
    client_eventfd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    server_eventfd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    c2s_salt_ = RandomU64();
    s2c_salt_ = RandomU64();
    client.emplace(c2s(), s2c(), max_message_bytes, client_pool_,
                   PeerWaker::ToClient(server_eventfd_.get()));
    server.emplace(s2c(), c2s(), max_message_bytes, server_pool_,
                   PeerWaker::ToClient(client_eventfd_.get()));
  }

  RingGeometry c2s() const { return layout_.C2s(mapping_.data(), c2s_salt_); }
  RingGeometry s2c() const { return layout_.S2c(mapping_.data(), s2c_salt_); }
  bool InBlock(const std::byte* p) const {
    return p >= mapping_.data() && p < mapping_.data() + layout_.bytes();
  }
  int client_eventfd() const { return client_eventfd_.get(); }
  BufferPool& server_pool() { return server_pool_; }
  int server_eventfd() const { return server_eventfd_.get(); }

  // Declared before the channels so they outlive them.
 private:
  ConnectionLayout layout_;
  Mapping mapping_;
  UniqueFd client_eventfd_;
  UniqueFd server_eventfd_;
  uint64_t c2s_salt_ = 0;
  uint64_t s2c_salt_ = 0;
  BufferPool client_pool_;
  BufferPool server_pool_;

 public:
  std::optional<Channel> client;
  std::optional<Channel> server;
};

// Sends `payload` client -> server in one thread, draining the server whenever the ring fills,
// and returns a copy of what the server received.
std::vector<std::byte> Transfer(Link& link, const FrameHeader& header,
                                std::span<const std::byte> payload,
                                FrameHeader* received = nullptr) {
  size_t offset = 0;
  bool sent = false;
  for (size_t round = 0; round < payload.size() + 10; ++round) {
    if (!sent) {
      Channel::SendStatus status = link.client->SendSome(header, payload, &offset);
      EXPECT_NE(status, Channel::SendStatus::kBroken);
      if (status == Channel::SendStatus::kBroken) return {};
      sent = status == Channel::SendStatus::kDone;
    }
    Channel::Received r = link.server->Receive();
    if (r.status == Channel::ReceiveStatus::kMessage) {
      EXPECT_TRUE(sent) << "message complete before it was sent";
      std::vector<std::byte> copy(r.message.payload.begin(), r.message.payload.end());
      if (received != nullptr) *received = r.message.header;
      link.server->Consume();
      return copy;
    }
    EXPECT_EQ(r.status, Channel::ReceiveStatus::kEmpty) << link.server->broken_reason();
    if (r.status != Channel::ReceiveStatus::kEmpty) return {};
  }
  ADD_FAILURE() << "no progress";
  return {};
}

TEST(ChannelTest, SingleFrameIsZeroCopy) {
  Link link;
  const FrameHeader header{.flags = kFlagMore | kFlagNoReply, .type = 17, .request_id = 42};
  std::span<std::byte> area = link.client->TryBeginMessage(header, 100);
  ASSERT_EQ(area.size(), 100u);
  EXPECT_TRUE(link.InBlock(area.data())) << "the payload area lies in the shared ring";
  std::vector<std::byte> payload = Pattern(100, 1);
  std::memcpy(area.data(), payload.data(), payload.size());
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kEmpty) << "not yet finished";
  link.client->FinishMessage();

  Channel::Received r = link.server->Receive();
  ASSERT_EQ(r.status, Channel::ReceiveStatus::kMessage) << link.server->broken_reason();
  EXPECT_EQ(r.message.payload.data(), area.data()) << "received in place, without a copy";
  EXPECT_TRUE(SameBytes(r.message.payload, payload));
  EXPECT_EQ(r.message.header.type, 17);
  EXPECT_EQ(r.message.header.request_id, 42u);
  EXPECT_EQ(r.message.header.message_bytes, 100u);
  EXPECT_EQ(r.message.header.flags, kFlagNoReply)
      << "kFlagMore is the transport's, not the caller's";
  link.server->Consume();
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kEmpty);
}

TEST(ChannelTest, TryBeginMessageRefusesWhatDoesNotFitOneFrame) {
  Link link;
  const uint32_t max_frame = link.client->max_frame_payload();
  EXPECT_EQ(max_frame, 8 * kCellBytes - kRecordPrefixBytes - kFrameHeaderBytes);
  EXPECT_EQ(link.client->TryBeginMessage({.type = 2}, max_frame + 1).data(), nullptr);
  std::span<std::byte> area = link.client->TryBeginMessage({.type = 2}, max_frame);
  ASSERT_EQ(area.size(), max_frame);
  link.client->FinishMessage();
  // Half the ring is in use; a second largest frame fits exactly, a third does not.
  ASSERT_EQ(link.client->TryBeginMessage({.type = 2}, max_frame).size(), max_frame);
  link.client->FinishMessage();
  EXPECT_FALSE(link.client->HasSpaceForFrame());
  // Refused is a null span (a granted 0-byte payload is empty too, but not null).
  EXPECT_EQ(link.client->TryBeginMessage({.type = 2}, 0).data(), nullptr) << "ring full";
}

TEST(ChannelTest, ZeroLengthMessage) {
  Link link;
  std::vector<std::byte> empty;
  FrameHeader got;
  std::vector<std::byte> received = Transfer(link, {.type = 3, .request_id = 5}, empty, &got);
  EXPECT_TRUE(received.empty());
  EXPECT_EQ(got.type, 3);
  EXPECT_EQ(got.message_bytes, 0u);
}

TEST(ChannelTest, FragmentedMessagesAroundTheFrameBoundary) {
  Link link;
  const size_t f = link.client->max_frame_payload();
  const size_t sizes[] = {1,     f - 1, f,    f + 1, 2 * f - 1, 2 * f,   2 * f + 1,
                          3 * f, 4096,  4097, 65536, 100'003,   1u << 20};
  uint64_t id = 1;
  for (size_t size : sizes) {
    SCOPED_TRACE(testing::Message() << size << " bytes");
    std::vector<std::byte> payload = Pattern(size, static_cast<uint32_t>(size));
    const FrameHeader header{.flags = kFlagResponse, .type = 2, .request_id = id++};
    FrameHeader got;
    std::vector<std::byte> received = Transfer(link, header, payload, &got);
    EXPECT_TRUE(SameBytes(received, payload));
    EXPECT_EQ(got.type, 2);
    EXPECT_EQ(got.request_id, header.request_id);
    EXPECT_EQ(got.message_bytes, size);
    EXPECT_EQ(got.flags, kFlagResponse);
  }
}

TEST(ChannelTest, FragmentsWhileTheRingIsPartlyFull) {
  Link link;
  // Leave a small message in the ring so the fragments start mid-ring and wrap.
  std::span<std::byte> area = link.client->TryBeginMessage({.type = 2, .request_id = 1}, 30);
  ASSERT_FALSE(area.empty());
  link.client->FinishMessage();
  std::vector<std::byte> payload = Pattern(3000, 9);
  size_t offset = 0;
  EXPECT_EQ(link.client->SendSome({.type = 2, .request_id = 2}, payload, &offset),
            Channel::SendStatus::kFull);
  EXPECT_GT(offset, 0u);
  EXPECT_LT(offset, payload.size());

  Channel::Received small = link.server->Receive();
  ASSERT_EQ(small.status, Channel::ReceiveStatus::kMessage);
  EXPECT_EQ(small.message.header.request_id, 1u);
  link.server->Consume();
  for (int round = 0; round < 100; ++round) {
    Channel::SendStatus status =
        link.client->SendSome({.type = 2, .request_id = 2}, payload, &offset);
    ASSERT_NE(status, Channel::SendStatus::kBroken);
    Channel::Received r = link.server->Receive();
    if (r.status == Channel::ReceiveStatus::kMessage) {
      EXPECT_EQ(status, Channel::SendStatus::kDone);
      EXPECT_EQ(r.message.header.request_id, 2u);
      EXPECT_TRUE(SameBytes(r.message.payload, payload));
      link.server->Consume();
      return;
    }
    ASSERT_EQ(r.status, Channel::ReceiveStatus::kEmpty) << link.server->broken_reason();
  }
  FAIL() << "message never completed";
}

TEST(ChannelTest, SendSomeRefusesMessageOverMaximum) {
  Link link(16, 1000);
  std::vector<std::byte> payload(1001);
  size_t offset = 0;
  EXPECT_EQ(link.client->SendSome({.type = 2}, payload, &offset), Channel::SendStatus::kBroken);
  EXPECT_EQ(offset, 0u);
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kEmpty) << "nothing was sent";
}

TEST(ChannelTest, SendSomeReportsHostileConsumer) {
  Link link;
  std::vector<std::byte> payload = Pattern(5000, 3);
  size_t offset = 0;
  ASSERT_EQ(link.client->SendSome({.type = 2}, payload, &offset), Channel::SendStatus::kFull);
  link.c2s().control->consumed = 1u << 30;  // Far beyond anything written.
  EXPECT_EQ(link.client->SendSome({.type = 2}, payload, &offset), Channel::SendStatus::kBroken);
}

TEST(ChannelTest, WakesParkedConsumerAndWaitingProducer) {
  Link link;
  // Consumer polling: no wake-up, no syscall.
  ASSERT_FALSE(link.client->TryBeginMessage({.type = 2}, 8).empty());
  link.client->FinishMessage();
  EXPECT_EQ(TakeWakeups(link.server_eventfd()), 0u);
  // Consumer parked: the publish writes its eventfd.
  link.server->SetParked(true);
  ASSERT_FALSE(link.client->TryBeginMessage({.type = 2}, 8).empty());
  link.client->FinishMessage();
  EXPECT_EQ(TakeWakeups(link.server_eventfd()), 1u);
  link.server->SetParked(false);

  // Fill the ring, announce the wait; the consumer freeing space wakes the producer.
  std::vector<std::byte> payload = Pattern(5000, 4);
  size_t offset = 0;
  ASSERT_EQ(link.client->SendSome({.type = 2}, payload, &offset), Channel::SendStatus::kFull);
  EXPECT_FALSE(link.client->PrepareToWaitForSpace());
  EXPECT_EQ(TakeWakeups(link.client_eventfd()), 0u);
  ASSERT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kMessage);
  link.server->Consume();
  // The check for a waiting producer costs a fence, so it is batched: it happens every few
  // releases, when the ring runs empty, or before the consumer waits itself.
  EXPECT_EQ(TakeWakeups(link.client_eventfd()), 0u);
  link.server->WakeWaitingProducer();
  EXPECT_EQ(TakeWakeups(link.client_eventfd()), 1u);
}

TEST(ChannelTest, DoorbellWakerRingsBitAndWakesOnlyASleepingWorker) {
  std::vector<uint64_t> bell_storage(DoorbellLayout::Bytes(128) / sizeof(uint64_t) + 1);
  std::byte* bell = reinterpret_cast<std::byte*>(bell_storage.data());
  UniqueFd worker_eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  PeerWaker waker = PeerWaker::ToServer(bell, 70, worker_eventfd.get());

  waker.Wake();
  EXPECT_EQ(DoorbellLayout::Bits(bell)[1], uint64_t{1} << 6);
  EXPECT_EQ(DoorbellLayout::Bits(bell)[0], 0u);
  EXPECT_EQ(TakeWakeups(worker_eventfd.get()), 0u) << "an awake worker scans the bits anyway";

  *DoorbellLayout::Sleeping(bell) = 1;
  waker.Wake();
  EXPECT_EQ(TakeWakeups(worker_eventfd.get()), 1u);
  EXPECT_EQ(*DoorbellLayout::Sleeping(bell), 0u) << "the waker takes the sleeping flag down";
  waker.Wake();
  EXPECT_EQ(TakeWakeups(worker_eventfd.get()), 0u) << "one eventfd write per sleep";
}

// ---- Malformed input: frames written by hand into the c2s ring ----

class Forger {
 public:
  explicit Forger(const RingGeometry& ring) : writer_(ring) {}

  // One record: a frame header (its message_bytes as given) and `piece_bytes` payload bytes.
  void Frame(FrameHeader header, size_t piece_bytes) {
    std::span<std::byte> body =
        writer_.TryClaim(static_cast<uint32_t>(kFrameHeaderBytes + piece_bytes));
    ASSERT_EQ(body.size(), kFrameHeaderBytes + piece_bytes);
    EncodeFrameHeader(header, body.data());
    std::memset(body.data() + kFrameHeaderBytes, 0x5a, piece_bytes);
    writer_.Commit();
  }
  void Raw(std::span<const std::byte> bytes) {
    std::span<std::byte> body = writer_.TryClaim(static_cast<uint32_t>(bytes.size()));
    ASSERT_EQ(body.size(), bytes.size());
    std::memcpy(body.data(), bytes.data(), bytes.size());
    writer_.Commit();
  }

 private:
  RingWriter writer_;
};

void ExpectBroken(Link& link, const std::string& words, bool bad_frame = true) {
  Channel::Received r = link.server->Receive();
  ASSERT_EQ(r.status, Channel::ReceiveStatus::kBroken);
  EXPECT_TRUE(link.server->is_broken());
  EXPECT_TRUE(Contains(link.server->broken_reason(), words));
  if (bad_frame) {
    EXPECT_TRUE(Contains(link.server->broken_reason(), "bad frame"));
  }
  // Sticky: the connection stays broken.
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kBroken);
}

TEST(ChannelTest, BrokenByFragmentOfAnotherMessage) {
  const FrameHeader first{.flags = kFlagMore, .type = 2, .message_bytes = 1000, .request_id = 1};
  FrameHeader others[] = {first, first, first};
  others[0].request_id = 2;
  others[1].type = 3;
  others[2].message_bytes = 999;
  for (const FrameHeader& other : others) {
    Link link;
    Forger forger(link.c2s());
    forger.Frame(first, 400);
    forger.Frame(other, 400);
    ExpectBroken(link, "different message arrived mid-message");
  }
}

TEST(ChannelTest, BrokenByFragmentsExceedingDeclaredLength) {
  Link link;
  Forger forger(link.c2s());
  forger.Frame({.flags = kFlagMore, .type = 2, .message_bytes = 500, .request_id = 1}, 400);
  forger.Frame({.flags = 0, .type = 2, .message_bytes = 500, .request_id = 1}, 200);
  ExpectBroken(link, "exceed the declared length 500");
}

TEST(ChannelTest, BrokenByMessageEndingEarly) {
  Link link;
  Forger forger(link.c2s());
  forger.Frame({.flags = kFlagMore, .type = 2, .message_bytes = 1000, .request_id = 1}, 400);
  forger.Frame({.flags = 0, .type = 2, .message_bytes = 1000, .request_id = 1}, 400);
  ExpectBroken(link, "ended after 800 of 1000 bytes");
}

TEST(ChannelTest, BrokenBySingleFrameWithWrongLength) {
  Link link;
  Forger forger(link.c2s());
  forger.Frame({.type = 2, .message_bytes = 10}, 5);
  ExpectBroken(link, "length 10 does not match the 5 payload bytes");
}

TEST(ChannelTest, BrokenByFirstFragmentCarryingWholeMessage) {
  Link link;
  Forger forger(link.c2s());
  forger.Frame({.flags = kFlagMore, .type = 2, .message_bytes = 100}, 100);
  ExpectBroken(link, "first fragment carries the whole message");
}

TEST(ChannelTest, BrokenByOversizedDeclaredLength) {
  Link link(16, 4096);
  Forger forger(link.c2s());
  forger.Frame({.flags = kFlagMore, .type = 2, .message_bytes = 4097}, 100);
  ExpectBroken(link, "message of 4097 bytes exceeds the maximum of 4096");
}

TEST(ChannelTest, BrokenByRecordShorterThanHeader) {
  Link link;
  Forger forger(link.c2s());
  std::vector<std::byte> bytes(kFrameHeaderBytes - 1);
  forger.Raw(bytes);
  ExpectBroken(link, "shorter than a frame header");
}

TEST(ChannelTest, BrokenByBadHeader) {
  Link link;
  Forger forger(link.c2s());
  std::vector<std::byte> bytes(kFrameHeaderBytes + 4);
  EncodeFrameHeader({.type = 2, .message_bytes = 4}, bytes.data());
  bytes[0] = std::byte{'X'};
  forger.Raw(bytes);
  ExpectBroken(link, "magic");
}

TEST(ChannelTest, BrokenByCorruptRingRecord) {
  Link link;
  RingGeometry ring = link.c2s();
  auto* prefix = reinterpret_cast<RecordPrefix*>(ring.cells);
  prefix->bytes = ring.max_body_bytes() + 1;
  prefix->seq = ring.salt ^ 1;
  ExpectBroken(link, "ring record length out of bounds");
}

TEST(ChannelTest, BrokenWhenPoolCanNeverHoldTheMessage) {
  // The connection allows 2 MiB but the pool only 64 KiB: retrying cannot help.
  Link link(16, 2u << 20, BufferPoolOptions{.max_message_bytes = 64u << 10});
  Forger forger(link.c2s());
  forger.Frame({.flags = kFlagMore, .type = 2, .message_bytes = 100'000}, 100);
  ExpectBroken(link, "100000 bytes requested", /*bad_frame=*/false);
}

TEST(ChannelTest, PoolExhaustionBlocksUntilBuffersFree) {
  // Room for one medium buffer only, and another connection sharing the pool holds it.
  Link link(16, 2u << 20, BufferPoolOptions{.budget_bytes = kMediumBufferBytes});
  Result<PooledBuffer> elsewhere = link.server_pool().Acquire(kMediumBufferBytes);
  ASSERT_TRUE(elsewhere.ok());
  std::vector<std::byte> payload = Pattern(6000, 2);

  size_t offset = 0;
  EXPECT_EQ(link.client->SendSome({.type = 2, .request_id = 2}, payload, &offset),
            Channel::SendStatus::kFull);
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kBlocked);
  EXPECT_EQ(link.server->Receive().status, Channel::ReceiveStatus::kBlocked);
  EXPECT_FALSE(link.server->is_broken());
  EXPECT_EQ(link.client->SendSome({.type = 2, .request_id = 2}, payload, &offset),
            Channel::SendStatus::kFull)
      << "back-pressure: the blocked fragment stays in the ring";

  elsewhere->Reset();
  for (int round = 0; round < 100; ++round) {
    ASSERT_NE(link.client->SendSome({.type = 2, .request_id = 2}, payload, &offset),
              Channel::SendStatus::kBroken);
    Channel::Received r = link.server->Receive();
    if (r.status == Channel::ReceiveStatus::kMessage) {
      EXPECT_EQ(r.message.header.request_id, 2u);
      EXPECT_TRUE(SameBytes(r.message.payload, payload));
      link.server->Consume();
      EXPECT_EQ(link.server_pool().stats().in_use_bytes, 0u) << "Consume returns the buffer";
      return;
    }
    ASSERT_EQ(r.status, Channel::ReceiveStatus::kEmpty) << link.server->broken_reason();
  }
  FAIL() << "the message never arrived";
}

TEST(ChannelTest, ReassembledMessageHoldsPoolBufferUntilConsumed) {
  Link link;
  std::vector<std::byte> payload = Pattern(5000, 1);
  size_t offset = 0;
  Channel::Received r{};
  for (int round = 0; round < 100 && r.status != Channel::ReceiveStatus::kMessage; ++round) {
    ASSERT_NE(link.client->SendSome({.type = 2}, payload, &offset), Channel::SendStatus::kBroken);
    r = link.server->Receive();
  }
  ASSERT_EQ(r.status, Channel::ReceiveStatus::kMessage);
  EXPECT_FALSE(link.InBlock(r.message.payload.data())) << "reassembled in a pooled buffer";
  EXPECT_EQ(link.server_pool().stats().in_use_bytes, kMediumBufferBytes);
  link.server->Consume();
  EXPECT_EQ(link.server_pool().stats().in_use_bytes, 0u);
}

}  // namespace
}  // namespace lai::ipc
