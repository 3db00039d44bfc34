#include "base/alloc_counter.h"

#include <atomic>

namespace lai {
namespace {
std::atomic<uint64_t> g_allocations{0};
std::atomic<bool> g_counting{false};
}  // namespace

uint64_t AllocationCount() { return g_allocations.load(std::memory_order_relaxed); }
bool IsCountingAllocations() { return g_counting.load(std::memory_order_relaxed); }

namespace internal {
void CountAllocation() { g_allocations.fetch_add(1, std::memory_order_relaxed); }
void EnableAllocationCounting() { g_counting.store(true, std::memory_order_relaxed); }
}  // namespace internal

}  // namespace lai
