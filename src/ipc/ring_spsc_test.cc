// RingWriter and RingReader on two threads: a million variable-size records with integrity
// checks. Timing depends on the machine's load, hence the integration label.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ring.h"
#include "ipc/shm.h"
#include "ipc/wait.h"

namespace lai::ipc {
namespace {

constexpr uint64_t kRecords = 1'000'000;
constexpr uint64_t kGiveUpNs = 60'000'000'000;  // A hung thread fails the test instead of ctest.

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// Mostly small records, with one in eight anywhere up to the maximum.
uint32_t SizeOf(uint64_t index, uint32_t max_body_bytes) {
  uint64_t m = Mix(index);
  return static_cast<uint32_t>((m & 7) == 0 ? (m >> 8) % (max_body_bytes + 1) : (m >> 8) % 64);
}

// Record bodies are windows into one random table, starting at an offset derived from the record
// index, so filling and checking are a memcpy and a memcmp.
constexpr size_t kWindowStarts = 4096;
const std::vector<std::byte>& Table() {
  static const std::vector<std::byte> table = [] {
    std::vector<std::byte> bytes(kWindowStarts + (size_t{1} << 16));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(Mix(i));
    return bytes;
  }();
  return table;
}

const std::byte* Window(uint64_t index) { return Table().data() + Mix(index) % kWindowStarts; }

// The record index in the first 8 bytes (when it fits), then the record's window of the table.
void Fill(std::span<std::byte> body, uint64_t index) {
  size_t i = 0;
  if (body.size() >= sizeof(index)) {
    std::memcpy(body.data(), &index, sizeof(index));
    i = sizeof(index);
  }
  std::memcpy(body.data() + i, Window(index) + i, body.size() - i);
}

bool Check(std::span<const std::byte> body, uint64_t index) {
  size_t i = 0;
  if (body.size() >= sizeof(index)) {
    uint64_t stored;
    std::memcpy(&stored, body.data(), sizeof(stored));
    if (stored != index) return false;
    i = sizeof(index);
  }
  return std::memcmp(body.data() + i, Window(index) + i, body.size() - i) == 0;
}

void RunSpsc(uint32_t cells) {
  struct alignas(kCacheLineBytes) Line {
    std::byte bytes[kCacheLineBytes] = {};
  };
  std::vector<Line> lines(sizeof(RingControl) / kCacheLineBytes + cells);
  RingGeometry geometry{reinterpret_cast<RingControl*>(lines.data()),
                        reinterpret_cast<std::byte*>(lines.data()) + sizeof(RingControl), cells,
                        RandomU64()};
  const uint32_t max = geometry.max_body_bytes();
  ASSERT_LE(max, Table().size() - kWindowStarts);
  const uint64_t give_up = NowNs() + kGiveUpNs;
  std::atomic<bool> failed{false};

  std::thread producer([&] {
    RingWriter writer(geometry);
    for (uint64_t i = 0; i < kRecords && !failed.load(std::memory_order_relaxed); ++i) {
      const uint32_t size = SizeOf(i, max);
      std::span<std::byte> body;
      // A successful claim has a non-null body, even for 0 bytes.
      for (uint32_t spins = 0; (body = writer.TryClaim(size)).data() == nullptr; ++spins) {
        if (!writer.is_sane() || NowNs() > give_up || failed.load(std::memory_order_relaxed)) {
          failed = true;
          return;
        }
        if ((spins & 63) == 63) std::this_thread::yield();
        CpuRelax();
      }
      Fill(body, i);
      writer.Commit();
    }
  });

  RingReader reader(geometry);
  uint64_t bad_index = kRecords;
  std::string what;
  for (uint64_t i = 0; i < kRecords && !failed.load(std::memory_order_relaxed); ++i) {
    RingReader::Peeked peeked;
    for (uint32_t spins = 0; (peeked = reader.Peek()).status == RingReader::PeekStatus::kEmpty;
         ++spins) {
      if (NowNs() > give_up || failed.load(std::memory_order_relaxed)) break;
      if ((spins & 63) == 63) std::this_thread::yield();
      CpuRelax();
    }
    if (peeked.status != RingReader::PeekStatus::kRecord || peeked.body.size() != SizeOf(i, max) ||
        !Check(peeked.body, i)) {
      bad_index = i;
      what = "status " + std::to_string(static_cast<int>(peeked.status)) + ", " +
             std::to_string(peeked.body.size()) + " bytes (expected " +
             std::to_string(SizeOf(i, max)) + ") at position " + std::to_string(reader.position()) +
             (failed.load() ? ", producer gave up" : "");
      {
        const std::byte* cell = peeked.body.data() - kRecordPrefixBytes;
        uint64_t seq;
        uint32_t bytes;
        std::memcpy(&seq, cell, 8);
        std::memcpy(&bytes, cell + 8, 4);
        what += ", cell seq says position " + std::to_string((seq ^ geometry.salt) - 1) +
                ", cell bytes now " + std::to_string(bytes) + ", cell index " +
                std::to_string((cell - geometry.cells) / 64) + ", tail index " +
                std::to_string(reader.position() % cells);
      }
      if (peeked.body.size() >= 8) {
        uint64_t stored;
        std::memcpy(&stored, peeked.body.data(), 8);
        what += ", holds record " + std::to_string(stored);
      }
      failed = true;
      break;
    }
    reader.Release();
  }
  producer.join();
  EXPECT_FALSE(failed.load()) << "record " << bad_index << " of " << kRecords
                              << " was missing, late or damaged: " << what;
  EXPECT_EQ(reader.Peek().status, RingReader::PeekStatus::kEmpty);
}

TEST(RingSpscTest, MillionVariableSizeRecordsSmallRing) { RunSpsc(16); }

TEST(RingSpscTest, MillionVariableSizeRecordsLargerRing) { RunSpsc(64); }

}  // namespace
}  // namespace lai::ipc
