// Counts heap allocations made through global operator new, for the zero-allocation benchmark and
// tests. The count is process-wide; reading it is thread-safe and allocation-free.
#pragma once

#include <cstdint>

namespace lai {

// Allocations since process start, or 0 when the executable does not link the counting
// operator new (target lai::alloc_hooks: our executables do; libraries never force it on others).
uint64_t AllocationCount();
bool IsCountingAllocations();

namespace internal {
void CountAllocation();
void EnableAllocationCounting();
}  // namespace internal

}  // namespace lai
