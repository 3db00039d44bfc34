// BufferPool: a bounded pool of byte buffers in size classes, used to reassemble IPC messages
// that arrive in fragments, and PooledBuffer, the move-only handle that returns one on release.
// BufferPool is thread-safe; a PooledBuffer is thread-compatible.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "base/result.h"

namespace lai::ipc {

// Capacities of the cached size classes. Requests above kLargeBufferBytes are "huge" and get a
// buffer of exactly the requested size.
inline constexpr size_t kSmallBufferBytes = size_t{4} << 10;
inline constexpr size_t kMediumBufferBytes = size_t{64} << 10;
inline constexpr size_t kLargeBufferBytes = size_t{1} << 20;

struct BufferPoolOptions {
  // Cap on the total capacity of buffers handed out and not yet released. Cached free buffers
  // do not count against it (they are bounded by cached_per_class instead).
  size_t budget_bytes = size_t{64} << 20;
  // Largest request Acquire() accepts.
  size_t max_message_bytes = size_t{10} << 20;
  // Free buffers kept for reuse per size class; the huge class keeps at most one (the largest).
  size_t cached_per_class = 8;
};

class BufferPool;

// Owns one buffer from a BufferPool and gives it back on destruction or Reset(). Move-only.
// The contents are uninitialised when acquired. Thread-compatible.
class PooledBuffer {
 public:
  // An empty handle: data() == nullptr, capacity() == 0.
  PooledBuffer() = default;
  PooledBuffer(PooledBuffer&& other) noexcept;
  PooledBuffer& operator=(PooledBuffer&& other) noexcept;
  ~PooledBuffer() { Reset(); }

  std::byte* data() { return storage_.get(); }
  const std::byte* data() const { return storage_.get(); }
  // At least the size passed to Acquire(): the size class, or the exact size for huge buffers.
  size_t capacity() const { return capacity_; }
  std::span<std::byte> span() { return {storage_.get(), capacity_}; }
  std::span<const std::byte> span() const { return {storage_.get(), capacity_}; }
  bool is_empty() const { return storage_ == nullptr; }

  // Returns the buffer to its pool now; the handle becomes empty. No-op when already empty.
  void Reset();

 private:
  friend class BufferPool;
  PooledBuffer(BufferPool& pool, std::unique_ptr<std::byte[]> storage, size_t capacity)
      : pool_(&pool), storage_(std::move(storage)), capacity_(capacity) {}

  BufferPool* pool_ = nullptr;  // Null when empty.
  std::unique_ptr<std::byte[]> storage_;
  size_t capacity_ = 0;
};

// Hands out buffers of at least a requested size, reusing freed ones of the same size class,
// and refuses requests that would take the in-use total over the budget.
// The pool must outlive every PooledBuffer it hands out (checked when the pool is destroyed).
// Thread-safe: one mutex, held only for bookkeeping (never while allocating or freeing).
class BufferPool {
 public:
  struct Stats {
    size_t in_use_bytes = 0;  // Capacity of buffers handed out and not yet released.
    size_t cached_bytes = 0;  // Capacity of free buffers kept for reuse.
    size_t acquires = 0;      // Successful Acquire() calls.
    size_t misses = 0;        // Acquires that had to allocate.
    size_t refusals = 0;      // Acquires refused with kResourceExhausted for the budget.
  };

  explicit BufferPool(BufferPoolOptions options = {});
  // Precondition: every PooledBuffer from this pool has been released.
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Returns a buffer of at least `size` bytes (a size of 0 gets a small buffer). Errors:
  //   kResourceExhausted when the budget is in use ("buffer pool: 65536 bytes requested, 1048576
  //     of 1048576 budget in use"): apply back-pressure and retry after buffers are released;
  //     also when the system is out of memory;
  //   kInvalidArgument when size > max_message_bytes, or when its buffer would exceed the whole
  //     budget (retrying cannot succeed).
  Result<PooledBuffer> Acquire(size_t size);

  Stats stats() const;
  const BufferPoolOptions& options() const { return options_; }

 private:
  friend class PooledBuffer;

  static constexpr size_t kCachedClassCount = 3;  // Small, medium, large.

  // Called by PooledBuffer with the storage it owned.
  void Release(std::unique_ptr<std::byte[]> storage, size_t capacity);

  // Immutable after construction.
  const BufferPoolOptions options_;

  mutable std::mutex mutex_;
  // Guarded by mutex_. Each free list is reserved up front, so Release() never allocates.
  std::array<std::vector<std::unique_ptr<std::byte[]>>, kCachedClassCount> free_buffers_;
  std::unique_ptr<std::byte[]> free_huge_buffer_;
  size_t free_huge_capacity_ = 0;
  Stats stats_;
};

}  // namespace lai::ipc
