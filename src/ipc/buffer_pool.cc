#include "ipc/buffer_pool.h"

#include <algorithm>
#include <new>
#include <string>
#include <utility>

#include "base/check.h"

namespace lai::ipc {
namespace {

constexpr std::array<size_t, 3> kClassBytes = {kSmallBufferBytes, kMediumBufferBytes,
                                               kLargeBufferBytes};
constexpr size_t kHugeClass = kClassBytes.size();

// Index into kClassBytes, or kHugeClass.
size_t ClassForSize(size_t size) {
  for (size_t i = 0; i < kClassBytes.size(); ++i) {
    if (size <= kClassBytes[i]) return i;
  }
  return kHugeClass;
}

// Capacities are exactly a class size, or above kLargeBufferBytes for huge buffers.
size_t ClassForCapacity(size_t capacity) {
  size_t size_class = ClassForSize(capacity);
  LAI_DCHECK(size_class == kHugeClass || capacity == kClassBytes[size_class])
      << "buffer pool: foreign capacity " << capacity;
  return size_class;
}

std::string RequestText(size_t size, size_t capacity) {
  std::string text = "buffer pool: " + std::to_string(size) + " bytes requested";
  if (capacity != size) text += " (" + std::to_string(capacity) + " with size-class rounding)";
  return text;
}

}  // namespace

PooledBuffer::PooledBuffer(PooledBuffer&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      storage_(std::move(other.storage_)),
      capacity_(std::exchange(other.capacity_, 0)) {}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::exchange(other.pool_, nullptr);
    storage_ = std::move(other.storage_);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

void PooledBuffer::Reset() {
  if (pool_ == nullptr) return;
  std::exchange(pool_, nullptr)->Release(std::move(storage_), std::exchange(capacity_, 0));
}

BufferPool::BufferPool(BufferPoolOptions options) : options_(options) {
  // No more buffers of a class can ever be free than fit in the budget at once.
  for (size_t i = 0; i < kClassBytes.size(); ++i) {
    free_buffers_[i].reserve(
        std::min(options_.cached_per_class, options_.budget_bytes / kClassBytes[i]));
  }
}

BufferPool::~BufferPool() {
  std::lock_guard lock(mutex_);
  LAI_CHECK(stats_.in_use_bytes == 0) << "buffer pool destroyed with " << stats_.in_use_bytes
                                      << " bytes still in use; the pool must outlive its buffers";
}

Result<PooledBuffer> BufferPool::Acquire(size_t size) {
  if (size > options_.max_message_bytes) {
    return Error(ErrorCode::kInvalidArgument, RequestText(size, size) + ", more than the " +
                                                  std::to_string(options_.max_message_bytes) +
                                                  "-byte maximum message size");
  }
  const size_t size_class = ClassForSize(size);
  size_t capacity = size_class == kHugeClass ? size : kClassBytes[size_class];
  if (capacity > options_.budget_bytes) {
    return Error(ErrorCode::kInvalidArgument,
                 RequestText(size, capacity) + ", more than the whole " +
                     std::to_string(options_.budget_bytes) + "-byte budget");
  }

  std::unique_ptr<std::byte[]> storage;
  {
    std::lock_guard lock(mutex_);
    if (size_class == kHugeClass) {
      // Reuse the cached huge buffer when it is big enough and its (larger) capacity still fits
      // the budget; otherwise leave it cached for a later, smaller request.
      if (free_huge_buffer_ != nullptr && free_huge_capacity_ >= size &&
          stats_.in_use_bytes + free_huge_capacity_ <= options_.budget_bytes) {
        capacity = std::exchange(free_huge_capacity_, 0);
        storage = std::move(free_huge_buffer_);
        stats_.cached_bytes -= capacity;
      }
    } else if (stats_.in_use_bytes + capacity <= options_.budget_bytes &&
               !free_buffers_[size_class].empty()) {
      storage = std::move(free_buffers_[size_class].back());
      free_buffers_[size_class].pop_back();
      stats_.cached_bytes -= capacity;
    }
    if (stats_.in_use_bytes + capacity > options_.budget_bytes) {
      ++stats_.refusals;
      return Error(ErrorCode::kResourceExhausted,
                   RequestText(size, capacity) + ", " + std::to_string(stats_.in_use_bytes) +
                       " of " + std::to_string(options_.budget_bytes) + " budget in use");
    }
    stats_.in_use_bytes += capacity;
    ++stats_.acquires;
    if (storage == nullptr) ++stats_.misses;
  }

  if (storage == nullptr) {
    // Outside the lock: large allocations may mmap and fault pages in.
    storage.reset(new (std::nothrow) std::byte[capacity]);
    if (storage == nullptr) {
      std::lock_guard lock(mutex_);
      stats_.in_use_bytes -= capacity;
      --stats_.acquires;
      --stats_.misses;
      return Error(ErrorCode::kResourceExhausted, RequestText(size, capacity) + ": out of memory");
    }
  }
  return PooledBuffer(*this, std::move(storage), capacity);
}

void BufferPool::Release(std::unique_ptr<std::byte[]> storage, size_t capacity) {
  const size_t size_class = ClassForCapacity(capacity);
  {
    std::lock_guard lock(mutex_);
    LAI_CHECK(stats_.in_use_bytes >= capacity)
        << "buffer pool: releasing " << capacity << " bytes, " << stats_.in_use_bytes << " in use";
    stats_.in_use_bytes -= capacity;
    if (size_class == kHugeClass) {
      // Keep one huge buffer, the larger of the cached and the released one.
      if (options_.cached_per_class > 0 && capacity > free_huge_capacity_) {
        stats_.cached_bytes += capacity - free_huge_capacity_;
        std::swap(storage, free_huge_buffer_);
        free_huge_capacity_ = capacity;
      }
    } else {
      auto& free_list = free_buffers_[size_class];
      // The reserved capacity is checked too so push_back never allocates under the lock.
      if (free_list.size() < options_.cached_per_class && free_list.size() < free_list.capacity()) {
        free_list.push_back(std::move(storage));
        stats_.cached_bytes += capacity;
      }
    }
  }
  // Whatever `storage` still owns (a surplus buffer) is freed here, outside the lock.
}

BufferPool::Stats BufferPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace lai::ipc
