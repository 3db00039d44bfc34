#include "ipc/ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "ipc/shm.h"

namespace lai::ipc {
namespace {

// A ring on a plain, cache-line-aligned heap buffer: RingControl followed by the cells.
class TestRing {
 public:
  explicit TestRing(uint32_t cells, uint64_t salt = RandomU64())
      : lines_(sizeof(RingControl) / kCacheLineBytes + cells) {
    geometry_.control = reinterpret_cast<RingControl*>(lines_.data());
    geometry_.cells = reinterpret_cast<std::byte*>(lines_.data()) + sizeof(RingControl);
    geometry_.cell_count = cells;
    geometry_.salt = salt;
  }

  const RingGeometry& geometry() const { return geometry_; }
  RingControl& control() { return *geometry_.control; }
  RecordPrefix& PrefixAt(uint64_t position) {
    return *reinterpret_cast<RecordPrefix*>(geometry_.cells +
                                            (position % geometry_.cell_count) * kCellBytes);
  }
  // Forges a published record prefix at `position`, as a broken producer would.
  void Forge(uint64_t position, uint32_t bytes) {
    RecordPrefix& prefix = PrefixAt(position);
    prefix.bytes = bytes;
    prefix.reserved = 0;
    prefix.seq = geometry_.salt ^ (position + 1);
  }

 private:
  struct alignas(kCacheLineBytes) Line {
    std::byte bytes[kCacheLineBytes] = {};
  };
  std::vector<Line> lines_;
  RingGeometry geometry_;
};

std::byte PatternByte(uint64_t key, size_t i) {
  return static_cast<std::byte>((key * 131 + i * 7 + (i >> 8)) & 0xff);
}

void Fill(std::span<std::byte> body, uint64_t key) {
  for (size_t i = 0; i < body.size(); ++i) body[i] = PatternByte(key, i);
}

// Index of the first byte that differs from the pattern, or -1.
ptrdiff_t FirstMismatch(std::span<const std::byte> body, uint64_t key) {
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != PatternByte(key, i)) return static_cast<ptrdiff_t>(i);
  }
  return -1;
}

// TryClaim refuses with a null span; a granted claim is non-null even for a 0-byte body.
bool Refused(std::span<std::byte> claim) { return claim.data() == nullptr; }

// Body size of a record that takes exactly `cells` cells.
uint32_t BodyForCells(uint32_t cells) {
  return static_cast<uint32_t>(cells * kCellBytes - kRecordPrefixBytes);
}

// Writes one record filled with the pattern for `key`; fails the test when it does not fit.
void Write(RingWriter& writer, uint32_t bytes, uint64_t key) {
  std::span<std::byte> body = writer.TryClaim(bytes);
  // A refused claim is a null span; a granted one is non-null even for 0 bytes.
  ASSERT_NE(body.data(), nullptr) << "claim of " << bytes << " bytes at " << writer.position();
  ASSERT_EQ(body.size(), bytes);
  Fill(body, key);
  writer.Commit();
}

// Reads one record and checks its size and pattern.
void Read(RingReader& reader, uint32_t bytes, uint64_t key) {
  RingReader::Peeked peeked = reader.Peek();
  ASSERT_EQ(peeked.status, RingReader::PeekStatus::kRecord) << "at " << reader.position();
  ASSERT_EQ(peeked.body.size(), bytes);
  ASSERT_EQ(FirstMismatch(peeked.body, key), -1) << "record " << key;
  reader.Release();
  (void)reader.CheckProducerWaiting();
}

TEST(RingTest, GeometryLimits) {
  TestRing ring(16);
  EXPECT_EQ(ring.geometry().max_body_bytes(), 8 * kCellBytes - kRecordPrefixBytes);
  EXPECT_EQ(TestRing(4).geometry().max_body_bytes(), 2 * kCellBytes - kRecordPrefixBytes);
  EXPECT_EQ(CellsForBody(0), 1u);
  EXPECT_EQ(CellsForBody(BodyForCells(1)), 1u);
  EXPECT_EQ(CellsForBody(BodyForCells(1) + 1), 2u);
  EXPECT_EQ(RingWriter(ring.geometry()).max_body_bytes(), ring.geometry().max_body_bytes());
}

TEST(RingTest, EmptyRingHasNoRecord) {
  TestRing ring(8);
  RingReader reader(ring.geometry());
  EXPECT_FALSE(reader.HasRecord());
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
  EXPECT_EQ(reader.position(), 0u);
}

TEST(RingTest, SingleRecordRoundTrip) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());

  std::span<std::byte> body = writer.TryClaim(5);
  ASSERT_EQ(body.size(), 5u);
  std::memcpy(body.data(), "hello", 5);
  // Claimed but not committed: invisible to the consumer.
  EXPECT_FALSE(reader.HasRecord());
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
  writer.Commit();
  EXPECT_EQ(writer.position(), 1u);

  EXPECT_TRUE(reader.HasRecord());
  RingReader::Peeked peeked = reader.Peek();
  ASSERT_EQ(peeked.status, RingReader::PeekStatus::kRecord);
  ASSERT_EQ(peeked.body.size(), 5u);
  EXPECT_EQ(std::memcmp(peeked.body.data(), "hello", 5), 0);
  // Peek does not consume.
  EXPECT_EQ(reader.Peek().body.data(), peeked.body.data());
  EXPECT_EQ(ring.control().consumed, 0u);

  reader.Release();
  EXPECT_EQ(reader.position(), 1u);
  EXPECT_EQ(ring.control().consumed, 1u);
  EXPECT_FALSE(reader.HasRecord());
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
}

TEST(RingTest, ZeroByteRecord) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  std::span<std::byte> body = writer.TryClaim(0);
  EXPECT_FALSE(Refused(body)) << "granted, though the span is empty";
  EXPECT_TRUE(body.empty());
  writer.Commit();
  EXPECT_EQ(writer.position(), 1u) << "a record takes at least one cell";
  RingReader::Peeked peeked = reader.Peek();
  ASSERT_EQ(peeked.status, RingReader::PeekStatus::kRecord);
  EXPECT_EQ(peeked.body.size(), 0u);
  reader.Release();
  EXPECT_EQ(reader.position(), 1u);
}

TEST(RingTest, FullRingRefusesClaimUntilConsumerFreesSpace) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  for (uint64_t i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, BodyForCells(1), i));

  EXPECT_TRUE(Refused(writer.TryClaim(0)));
  EXPECT_FALSE(writer.HasSpaceFor(0));
  EXPECT_EQ(writer.position(), 8u);
  // Announcing the wait while still full: false, and the flag is up for the consumer.
  EXPECT_FALSE(writer.PrepareToWaitForSpace(0));
  EXPECT_EQ(ring.control().producer_waiting, 1u);

  // The consumer frees one cell and checks for a waiter: it is told to wake the producer, and the
  // flag comes down.
  ASSERT_NO_FATAL_FAILURE(Read(reader, BodyForCells(1), 0));
  EXPECT_EQ(ring.control().producer_waiting, 0u);
  EXPECT_TRUE(writer.HasSpaceFor(0));
  EXPECT_FALSE(writer.HasSpaceFor(BodyForCells(1) + 1));  // Two cells do not fit yet.
  ASSERT_NO_FATAL_FAILURE(Write(writer, 0, 8));
  EXPECT_TRUE(Refused(writer.TryClaim(0)));

  for (uint64_t i = 1; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Read(reader, BodyForCells(1), i));
  ASSERT_NO_FATAL_FAILURE(Read(reader, 0, 8));
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
}

// A large ring publishes its read position every sixteenth of the ring, and at once when the
// consumer finds it empty, checks for a waiting producer or parks; a small one at every release.
TEST(RingTest, ReleasesArePublishedEverySixteenthOfALargeRingAndWhenIdle) {
  TestRing ring(64);  // Publishes every 4 cells.
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  for (uint64_t i = 0; i < 11; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, BodyForCells(1), i));
  auto release_one = [&] {
    ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
    reader.Release();
  };
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_EQ(ring.control().consumed, 0u);
  ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_EQ(ring.control().consumed, 4u);
  ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_FALSE(reader.CheckProducerWaiting());
  EXPECT_EQ(ring.control().consumed, 5u);
  ASSERT_NO_FATAL_FAILURE(release_one());
  reader.SetParked(true);
  EXPECT_EQ(ring.control().consumed, 6u);
  reader.SetParked(false);
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_EQ(ring.control().consumed, 6u);
  ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_EQ(ring.control().consumed, 10u);
  ASSERT_NO_FATAL_FAILURE(release_one());
  EXPECT_EQ(ring.control().consumed, 10u);
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
  EXPECT_EQ(ring.control().consumed, 11u);
  // The producer sees the whole ring free again.
  EXPECT_TRUE(writer.HasSpaceFor(BodyForCells(32)));

  TestRing small(16);  // Publishes at every release.
  RingWriter small_writer(small.geometry());
  RingReader small_reader(small.geometry());
  ASSERT_NO_FATAL_FAILURE(Write(small_writer, BodyForCells(2), 0));
  ASSERT_NO_FATAL_FAILURE(Write(small_writer, BodyForCells(1), 1));
  ASSERT_EQ(small_reader.Peek().status, RingReader::PeekStatus::kRecord);
  small_reader.Release();
  EXPECT_EQ(small.control().consumed, 2u);
}

TEST(RingTest, PrepareToWaitForSpaceSeesSpaceFreedBeforeTheAnnouncement) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  for (uint64_t i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, BodyForCells(2), i));
  ASSERT_TRUE(Refused(writer.TryClaim(0)));

  // The consumer frees space after the failed claim but before the producer announces its wait:
  // it sees no waiter, so it will not wake anyone. The re-check must catch it.
  RingReader::Peeked peeked = reader.Peek();
  ASSERT_EQ(peeked.status, RingReader::PeekStatus::kRecord);
  reader.Release();
  EXPECT_FALSE(reader.CheckProducerWaiting());
  EXPECT_TRUE(writer.PrepareToWaitForSpace(BodyForCells(2)));
  EXPECT_FALSE(writer.PrepareToWaitForSpace(BodyForCells(2) + 1));  // Three cells do not fit.
  ASSERT_NO_FATAL_FAILURE(Write(writer, BodyForCells(2), 4));
}

TEST(RingTest, CommitReportsParkedConsumer) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  EXPECT_EQ(ring.control().consumer_state, kConsumerPolling);

  ASSERT_FALSE(Refused(writer.TryClaim(1)));
  EXPECT_FALSE(writer.Commit()) << "a polling consumer needs no wake-up";

  reader.SetParked(true);
  EXPECT_EQ(ring.control().consumer_state, kConsumerParked);
  ASSERT_FALSE(Refused(writer.TryClaim(1)));
  EXPECT_TRUE(writer.Commit()) << "a parked consumer must be woken";
  // The producer does not clear the state: every commit while parked asks for a wake-up.
  ASSERT_FALSE(Refused(writer.TryClaim(1)));
  EXPECT_TRUE(writer.Commit());

  reader.SetParked(false);
  EXPECT_EQ(ring.control().consumer_state, kConsumerPolling);
  ASSERT_FALSE(Refused(writer.TryClaim(1)));
  EXPECT_FALSE(writer.Commit());
}

TEST(RingTest, CheckProducerWaitingReportsAndClearsWaitingProducer) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  for (uint64_t i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, 1, i));

  ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
  reader.Release();
  EXPECT_EQ(ring.control().consumed, 1u) << "a release publishes the read position at once";
  EXPECT_FALSE(reader.CheckProducerWaiting()) << "no producer waits";

  ring.control().producer_waiting = 1;
  ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
  reader.Release();
  EXPECT_TRUE(reader.CheckProducerWaiting());
  EXPECT_EQ(ring.control().producer_waiting, 0u);

  ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
  reader.Release();
  EXPECT_FALSE(reader.CheckProducerWaiting()) << "one wake-up per announced wait";
}

// Puts head and tail of a fresh ring at `offset` by passing one-cell records through it.
void AdvanceTo(RingWriter& writer, RingReader& reader, uint64_t offset) {
  for (uint64_t i = 0; i < offset; ++i) {
    ASSERT_NO_FATAL_FAILURE(Write(writer, 0, i));
    ASSERT_NO_FATAL_FAILURE(Read(reader, 0, i));
  }
}

TEST(RingTest, WrapsWithPadRecordAtEveryOffset) {
  constexpr uint32_t kCells = 16;
  for (uint32_t offset = 0; offset < kCells; ++offset) {
    for (uint32_t cells = 1; cells <= kCells / 2; ++cells) {
      // The smallest and the largest body that takes `cells` cells.
      const uint32_t smallest = cells == 1 ? 0 : BodyForCells(cells - 1) + 1;
      for (uint32_t bytes : {smallest, BodyForCells(cells)}) {
        SCOPED_TRACE(testing::Message() << "offset " << offset << ", " << bytes << " bytes");
        TestRing ring(kCells);
        RingWriter writer(ring.geometry());
        RingReader reader(ring.geometry());
        ASSERT_NO_FATAL_FAILURE(AdvanceTo(writer, reader, offset));

        const bool crosses_end = offset + cells > kCells;
        const uint32_t pad = crosses_end ? kCells - offset : 0;
        ASSERT_TRUE(writer.HasSpaceFor(bytes));
        ASSERT_NO_FATAL_FAILURE(Write(writer, bytes, offset));
        EXPECT_EQ(writer.position(), offset + pad + cells);
        if (crosses_end) {
          EXPECT_EQ(ring.PrefixAt(offset).bytes, kPadRecord);
          EXPECT_EQ(ring.PrefixAt(offset + pad).bytes, bytes);
        }
        ASSERT_NO_FATAL_FAILURE(Read(reader, bytes, offset));
        EXPECT_EQ(reader.position(), writer.position());
        EXPECT_EQ(ring.control().consumed, writer.position());
        EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
      }
    }
  }
}

TEST(RingTest, PadIsSkippedBeforeItsRecordIsCommitted) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  ASSERT_NO_FATAL_FAILURE(AdvanceTo(writer, reader, 6));

  std::span<std::byte> body = writer.TryClaim(BodyForCells(3));  // Needs a 2-cell pad first.
  ASSERT_FALSE(body.empty());
  // The pad is published at once; the consumer passes it and still finds nothing. Having found
  // the ring empty it publishes its position, past the pad: those cells are free again.
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
  EXPECT_EQ(ring.control().consumed, 8u);
  Fill(body, 42);
  writer.Commit();
  ASSERT_NO_FATAL_FAILURE(Read(reader, BodyForCells(3), 42));
  EXPECT_EQ(ring.control().consumed, 11u);
}

TEST(RingTest, MaxBodyBytesBoundary) {
  TestRing ring(16);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  const uint32_t max = writer.max_body_bytes();

  EXPECT_TRUE(Refused(writer.TryClaim(max + 1))) << "over the maximum, even in an empty ring";
  EXPECT_TRUE(Refused(writer.TryClaim(UINT32_MAX)));
  EXPECT_EQ(writer.position(), 0u);
  ASSERT_NO_FATAL_FAILURE(Write(writer, max, 1));
  ASSERT_NO_FATAL_FAILURE(Write(writer, max, 2));  // Exactly fills the ring.
  EXPECT_TRUE(Refused(writer.TryClaim(0)));
  ASSERT_NO_FATAL_FAILURE(Read(reader, max, 1));
  ASSERT_NO_FATAL_FAILURE(Read(reader, max, 2));
  EXPECT_TRUE(writer.is_sane());
}

TEST(RingTest, EverySizeRoundTripsWithContent) {
  TestRing ring(16);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  const uint32_t max = writer.max_body_bytes();
  // Two records in flight, so the ring wraps at ever-changing offsets.
  for (uint32_t size = 0; size <= max; ++size) {
    const uint32_t partner = (size * 37) % (max + 1);
    ASSERT_NO_FATAL_FAILURE(Write(writer, size, size));
    if (writer.HasSpaceFor(partner)) {
      ASSERT_NO_FATAL_FAILURE(Write(writer, partner, size + 100000));
      ASSERT_NO_FATAL_FAILURE(Read(reader, size, size));
      ASSERT_NO_FATAL_FAILURE(Read(reader, partner, size + 100000));
    } else {
      ASSERT_NO_FATAL_FAILURE(Read(reader, size, size));
    }
  }
  EXPECT_EQ(reader.position(), writer.position());
  EXPECT_GT(writer.position(), 16u * 100) << "the ring wrapped many times";
}

// Lays out one lap of an 8-cell ring so the consumer ends at position 9 (cell 1) while the cell
// still holds the payload of the first lap's record. That payload carries the value a record at
// position 9 would have in its seq word if the salt were zero.
RingReader::Peeked PeekStalePayload(uint64_t salt) {
  constexpr uint64_t kNextLapPosition = 9;  // Cell 1, second lap.
  TestRing ring(8, salt);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());

  std::span<std::byte> body = writer.TryClaim(BodyForCells(3));  // Cells 0..2.
  EXPECT_FALSE(body.empty());
  std::memset(body.data(), 0, body.size());
  const size_t cell1 = kCellBytes - kRecordPrefixBytes;  // Body offset where cell 1 begins.
  const uint64_t unsalted_seq = kNextLapPosition + 1;
  const uint32_t plausible_bytes = 20;
  std::memcpy(body.data() + cell1, &unsalted_seq, sizeof(unsalted_seq));
  std::memcpy(body.data() + cell1 + 8, &plausible_bytes, sizeof(plausible_bytes));
  writer.Commit();
  Write(writer, BodyForCells(3), 1);  // Cells 3..5.
  Write(writer, BodyForCells(2), 2);  // Cells 6..7: the ring is full.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
    reader.Release();
  }
  Write(writer, 0, 3);  // Cell 0 of the second lap; cell 1 keeps the first lap's payload.
  Read(reader, 0, 3);
  EXPECT_EQ(reader.position(), kNextLapPosition);
  return reader.Peek();
}

TEST(RingTest, SaltKeepsStalePayloadFromLookingLikeARecord) {
  // Why the salt exists: with a zero salt the consumer takes the stale payload for a record.
  RingReader::Peeked fooled = PeekStalePayload(0);
  EXPECT_EQ(fooled.status, RingReader::PeekStatus::kRecord);
  EXPECT_EQ(fooled.body.size(), 20u);

  for (int i = 0; i < 1000; ++i) {
    uint64_t salt = RandomU64();
    if (salt == 0) continue;
    ASSERT_EQ(PeekStalePayload(salt).status, RingReader::PeekStatus::kEmpty) << "salt " << salt;
  }
}

// The seq words of positions p and p + k·cells differ only in their low bits, salt or not. A stale
// prefix whose low byte a later record's payload overwrote (the body ended 1 byte into that cell)
// must not pass for the record of a later lap, whatever that byte is.
TEST(RingTest, PartlyOverwrittenStalePrefixIsNotARecord) {
  for (int trial = 0; trial < 100; ++trial) {
    const uint64_t salt = RandomU64();
    SCOPED_TRACE(testing::Message() << "salt " << salt);
    TestRing ring(8, salt);
    RingWriter writer(ring.geometry());
    RingReader reader(ring.geometry());
    // Lap 0: a one-cell record at every position; cell 1 gets seq = salt ^ 2.
    for (uint64_t i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, 20, i));
    for (uint64_t i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Read(reader, 20, i));
    // Lap 1: a record in cells 0..1 whose last body byte lands on cell 1's seq low byte, chosen
    // to be the low byte the seq of position 17 (cell 1, lap 2) will have.
    const uint32_t spill = BodyForCells(1) + 1;
    std::span<std::byte> body = writer.TryClaim(spill);
    ASSERT_EQ(body.size(), spill);
    std::memset(body.data(), 0, body.size());
    body[spill - 1] = static_cast<std::byte>((salt ^ 18) & 0xff);
    writer.Commit();
    ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
    reader.Release();
    // Positions 10..16 take cells 2..7 and 0, leaving cell 1 alone.
    for (uint64_t i = 10; i < 17; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, 20, i));
    for (uint64_t i = 10; i < 17; ++i) ASSERT_NO_FATAL_FAILURE(Read(reader, 20, i));
    ASSERT_EQ(reader.position(), 17u);
    ASSERT_EQ(writer.position(), 17u);
    // Nothing was written at position 17.
    ASSERT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
  }
}

TEST(RingTest, CorruptLengthOverMaximum) {
  TestRing ring(8);
  RingReader reader(ring.geometry());
  ring.Forge(0, ring.geometry().max_body_bytes() + 1);
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kCorrupt);
  ring.Forge(0, kPadRecord - 1);
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kCorrupt);
  ring.Forge(0, ring.geometry().max_body_bytes());  // The largest legal length is fine.
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
}

TEST(RingTest, CorruptPadAtIndexZero) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  ring.Forge(0, kPadRecord);
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kCorrupt);

  // Also on a later lap.
  TestRing lapped(8);
  RingWriter lapped_writer(lapped.geometry());
  RingReader lapped_reader(lapped.geometry());
  ASSERT_NO_FATAL_FAILURE(AdvanceTo(lapped_writer, lapped_reader, 8));
  lapped.Forge(8, kPadRecord);
  EXPECT_EQ(lapped_reader.Peek().status, RingReader::PeekStatus::kCorrupt);
}

TEST(RingTest, CorruptRecordCrossingTheEnd) {
  for (uint32_t offset = 5; offset < 8; ++offset) {
    SCOPED_TRACE(testing::Message() << "offset " << offset);
    TestRing ring(8);
    RingWriter writer(ring.geometry());
    RingReader reader(ring.geometry());
    ASSERT_NO_FATAL_FAILURE(AdvanceTo(writer, reader, offset));
    // A legal length whose cells would run past the last cell.
    uint32_t cells = 8 - offset + 1;
    ring.Forge(offset, BodyForCells(cells));
    EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kCorrupt);
    // One cell shorter ends exactly at the last cell: legal.
    ring.Forge(offset, BodyForCells(cells - 1));
    EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kRecord);
  }
}

TEST(RingTest, ConsumedBeyondHeadMakesWriterInsane) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  ASSERT_NO_FATAL_FAILURE(Write(writer, 0, 0));
  ASSERT_NO_FATAL_FAILURE(Write(writer, 0, 1));
  ASSERT_TRUE(writer.is_sane());

  ring.control().consumed = 3;  // Only two cells were ever written.
  EXPECT_FALSE(writer.HasSpaceFor(0));
  EXPECT_FALSE(writer.is_sane());
  // Sticky: a claim fails even once the value looks plausible again.
  ring.control().consumed = 2;
  EXPECT_TRUE(Refused(writer.TryClaim(0)));
  EXPECT_FALSE(writer.is_sane());
}

TEST(RingTest, ConsumedGoingBackwardsMakesWriterInsane) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  RingReader reader(ring.geometry());
  for (uint64_t i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, 0, i));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(Read(reader, 0, i));
  ASSERT_TRUE(writer.HasSpaceFor(BodyForCells(4)));  // The writer has now seen consumed == 4.
  ASSERT_TRUE(writer.is_sane());

  ring.control().consumed = 2;
  EXPECT_FALSE(writer.HasSpaceFor(0));
  EXPECT_FALSE(writer.is_sane());
}

TEST(RingTest, HostileConsumedIsNoticedWhenTheWriterNeedsSpace) {
  TestRing ring(8);
  RingWriter writer(ring.geometry());
  for (uint64_t i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(Write(writer, 0, i));
  ring.control().consumed = UINT64_MAX;
  // The ring is full from the writer's cached view, so the claim re-reads `consumed`.
  EXPECT_TRUE(Refused(writer.TryClaim(0)));
  EXPECT_FALSE(writer.is_sane());
}

}  // namespace
}  // namespace lai::ipc
