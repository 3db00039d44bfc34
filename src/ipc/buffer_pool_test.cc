#include "ipc/buffer_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace lai::ipc {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

size_t CapacityFor(BufferPool& pool, size_t size) {
  Result<PooledBuffer> buffer = pool.Acquire(size);
  EXPECT_TRUE(buffer.ok()) << buffer.error().ToString();
  if (!buffer.ok()) return 0;
  EXPECT_EQ(buffer->span().size(), buffer->capacity());
  EXPECT_EQ(buffer->span().data(), buffer->data());
  EXPECT_FALSE(buffer->is_empty());
  return buffer->capacity();
}

TEST(BufferPoolTest, PicksSmallestSizeClass) {
  BufferPool pool(BufferPoolOptions{});
  EXPECT_EQ(CapacityFor(pool, 0), kSmallBufferBytes);
  EXPECT_EQ(CapacityFor(pool, 1), kSmallBufferBytes);
  EXPECT_EQ(CapacityFor(pool, 4096), kSmallBufferBytes);
  EXPECT_EQ(CapacityFor(pool, 4097), kMediumBufferBytes);
  EXPECT_EQ(CapacityFor(pool, 65536), kMediumBufferBytes);
  EXPECT_EQ(CapacityFor(pool, 65537), kLargeBufferBytes);
  EXPECT_EQ(CapacityFor(pool, kMiB), kLargeBufferBytes);
  EXPECT_EQ(CapacityFor(pool, kMiB + 1), kMiB + 1);  // Huge: exact.
  EXPECT_EQ(CapacityFor(pool, 10 * kMiB), 10 * kMiB);
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
}

TEST(BufferPoolTest, ReusesReleasedBufferOfSameClass) {
  BufferPool pool(BufferPoolOptions{});
  std::byte* first_storage = nullptr;
  {
    Result<PooledBuffer> first = pool.Acquire(100);
    ASSERT_TRUE(first.ok());
    first_storage = first->data();
    EXPECT_EQ(pool.stats().in_use_bytes, kSmallBufferBytes);
    EXPECT_EQ(pool.stats().misses, 1u);
  }
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
  EXPECT_EQ(pool.stats().cached_bytes, kSmallBufferBytes);

  Result<PooledBuffer> second = pool.Acquire(4000);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->data(), first_storage);
  BufferPool::Stats stats = pool.stats();
  EXPECT_EQ(stats.acquires, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.cached_bytes, 0u);

  // Another class does not take it.
  Result<PooledBuffer> medium = pool.Acquire(5000);
  ASSERT_TRUE(medium.ok());
  EXPECT_EQ(pool.stats().misses, 2u);
}

TEST(BufferPoolTest, RefusesOverBudgetAndRecoversAfterRelease) {
  BufferPool pool(BufferPoolOptions{.budget_bytes = kMiB, .max_message_bytes = kMiB});
  std::vector<PooledBuffer> held;
  for (int i = 0; i < 16; ++i) {
    Result<PooledBuffer> buffer = pool.Acquire(kMediumBufferBytes);
    ASSERT_TRUE(buffer.ok()) << i << ": " << buffer.error().ToString();
    held.push_back(std::move(buffer).value());
  }
  EXPECT_EQ(pool.stats().in_use_bytes, kMiB);

  Result<PooledBuffer> refused = pool.Acquire(65536);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(refused.error().message(),
            "buffer pool: 65536 bytes requested, 1048576 of 1048576 budget in use");
  Result<PooledBuffer> refused_small = pool.Acquire(10);
  ASSERT_FALSE(refused_small.ok());
  EXPECT_EQ(refused_small.error().message(),
            "buffer pool: 10 bytes requested (4096 with size-class rounding), 1048576 of 1048576 "
            "budget in use");
  EXPECT_EQ(pool.stats().refusals, 2u);
  EXPECT_EQ(pool.stats().acquires, 16u);

  held.pop_back();
  Result<PooledBuffer> retried = pool.Acquire(65536);
  ASSERT_TRUE(retried.ok()) << retried.error().ToString();
  EXPECT_EQ(pool.stats().misses, 16u);  // Got the released buffer back.
  EXPECT_EQ(pool.stats().in_use_bytes, kMiB);
}

TEST(BufferPoolTest, RejectsRequestsAboveMaxMessageSize) {
  BufferPool pool(BufferPoolOptions{});
  Result<PooledBuffer> buffer = pool.Acquire(10 * kMiB + 1);
  ASSERT_FALSE(buffer.ok());
  EXPECT_EQ(buffer.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(buffer.error().message(),
            "buffer pool: 10485761 bytes requested, more than the 10485760-byte maximum message "
            "size");
  EXPECT_EQ(pool.stats().refusals, 0u);
}

TEST(BufferPoolTest, RejectsRequestsThatCanNeverFitTheBudget) {
  BufferPool pool(BufferPoolOptions{.budget_bytes = kMiB});
  Result<PooledBuffer> buffer = pool.Acquire(2 * kMiB);
  ASSERT_FALSE(buffer.ok());
  EXPECT_EQ(buffer.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(buffer.error().message(),
            "buffer pool: 2097152 bytes requested, more than the whole 1048576-byte budget");
}

TEST(BufferPoolTest, CachesAtMostCachedPerClass) {
  BufferPool pool(BufferPoolOptions{.cached_per_class = 2});
  {
    std::vector<PooledBuffer> held;
    for (int i = 0; i < 5; ++i) held.push_back(std::move(pool.Acquire(100)).value());
  }
  EXPECT_EQ(pool.stats().cached_bytes, 2 * kSmallBufferBytes);
  EXPECT_EQ(pool.stats().misses, 5u);
  {
    std::vector<PooledBuffer> held;
    for (int i = 0; i < 5; ++i) held.push_back(std::move(pool.Acquire(100)).value());
  }
  EXPECT_EQ(pool.stats().misses, 8u);  // Two came from the cache.
  EXPECT_EQ(pool.stats().cached_bytes, 2 * kSmallBufferBytes);
}

TEST(BufferPoolTest, CachesOnlyTheLargestHugeBuffer) {
  BufferPool pool(BufferPoolOptions{});
  {
    PooledBuffer two = std::move(pool.Acquire(2 * kMiB)).value();
    PooledBuffer three = std::move(pool.Acquire(3 * kMiB)).value();
  }
  EXPECT_EQ(pool.stats().cached_bytes, 3 * kMiB);
  EXPECT_EQ(pool.stats().misses, 2u);

  Result<PooledBuffer> reused = pool.Acquire(2 * kMiB + 5);
  ASSERT_TRUE(reused.ok());
  EXPECT_EQ(reused->capacity(), 3 * kMiB);
  EXPECT_EQ(pool.stats().misses, 2u);
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
  EXPECT_EQ(pool.stats().in_use_bytes, 3 * kMiB);

  // Too small a cached buffer is kept, and a fresh exact one allocated.
  reused->Reset();
  Result<PooledBuffer> bigger = pool.Acquire(4 * kMiB);
  ASSERT_TRUE(bigger.ok());
  EXPECT_EQ(bigger->capacity(), 4 * kMiB);
  EXPECT_EQ(pool.stats().misses, 3u);
  EXPECT_EQ(pool.stats().cached_bytes, 3 * kMiB);
}

TEST(BufferPoolTest, CachesNothingWhenCachedPerClassIsZero) {
  BufferPool pool(BufferPoolOptions{.cached_per_class = 0});
  CapacityFor(pool, 100);
  CapacityFor(pool, 2 * kMiB);
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
}

TEST(BufferPoolTest, MovedHandleReleasesOnce) {
  BufferPool pool(BufferPoolOptions{});
  PooledBuffer a = std::move(pool.Acquire(100)).value();
  PooledBuffer b = std::move(a);
  EXPECT_TRUE(a.is_empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified.
  EXPECT_EQ(a.capacity(), 0u);
  EXPECT_EQ(b.capacity(), kSmallBufferBytes);
  EXPECT_EQ(pool.stats().in_use_bytes, kSmallBufferBytes);

  PooledBuffer c = std::move(pool.Acquire(kMiB)).value();
  EXPECT_EQ(pool.stats().in_use_bytes, kSmallBufferBytes + kMiB);
  c = std::move(b);  // Returns c's large buffer.
  EXPECT_EQ(pool.stats().in_use_bytes, kSmallBufferBytes);
  EXPECT_EQ(pool.stats().cached_bytes, kMiB);
  c.Reset();
  c.Reset();
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
  EXPECT_EQ(pool.stats().cached_bytes, kMiB + kSmallBufferBytes);
}

TEST(BufferPoolDeathTest, PoolMustOutliveItsBuffers) {
  EXPECT_DEATH(
      {
        auto pool = std::make_unique<BufferPool>(BufferPoolOptions{});
        PooledBuffer buffer = std::move(pool->Acquire(1)).value();
        pool.reset();
      },
      "still in use");
}

// Four threads acquire, fill, check and release buffers of all classes under a tight budget,
// retrying on refusal; no buffer is ever shared between two holders.
TEST(BufferPoolTest, ConcurrentAcquireAndReleaseKeepBuffersPrivate) {
  constexpr int kThreads = 4;
  constexpr uint32_t kIterations = 500;
  constexpr size_t kHugeSize = kMiB + kMiB / 2;
  BufferPool pool(BufferPoolOptions{
      .budget_bytes = 4 * kMiB, .max_message_bytes = 2 * kMiB, .cached_per_class = 4});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::latch start(kThreads);

  auto work = [&](int thread_index) {
    const auto fill = static_cast<std::byte>(0x11 * (thread_index + 1));
    const std::vector<std::byte> expected(kHugeSize, fill);
    uint32_t random = 12345u + static_cast<uint32_t>(thread_index);
    start.arrive_and_wait();
    for (uint32_t i = 0; i < kIterations; ++i) {
      random = random * 1664525u + 1013904223u;
      size_t size = 8 + random % kMediumBufferBytes;
      if (i % 10 == 0) size = 300 * 1024;
      if (i % 100 == 0) size = kHugeSize;

      Result<PooledBuffer> buffer = pool.Acquire(size);
      while (!buffer.ok()) {
        ASSERT_EQ(buffer.error().code(), ErrorCode::kResourceExhausted)
            << buffer.error().ToString();
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "starved";
        std::this_thread::yield();
        buffer = pool.Acquire(size);
      }
      ASSERT_GE(buffer->capacity(), size);
      std::byte* data = buffer->data();
      std::memset(data, static_cast<int>(fill), size);
      std::memcpy(data, &i, sizeof(i));
      std::this_thread::yield();  // Give other threads a chance to scribble, were it shared.
      uint32_t stored = 0;
      std::memcpy(&stored, data, sizeof(stored));
      ASSERT_EQ(stored, i);
      ASSERT_EQ(std::memcmp(data + sizeof(i), expected.data(), size - sizeof(i)), 0)
          << "thread " << thread_index << " iteration " << i;
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (std::thread& thread : threads) thread.join();

  BufferPool::Stats stats = pool.stats();
  EXPECT_EQ(stats.in_use_bytes, 0u);
  EXPECT_EQ(stats.acquires, size_t{kThreads} * kIterations);
  EXPECT_LE(stats.cached_bytes,
            4 * (kSmallBufferBytes + kMediumBufferBytes + kLargeBufferBytes) + kHugeSize);
  EXPECT_LE(stats.misses, stats.acquires);
}

}  // namespace
}  // namespace lai::ipc
