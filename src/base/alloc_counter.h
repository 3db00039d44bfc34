// Counts heap allocations made through global operator new, for the zero-allocation benchmark and
// tests. The count is process-wide; reading it is thread-safe and allocation-free.
#pragma once

#include <cstdint>

namespace lai {

// Allocations since process start. Only counts when alloc_counter.cc (which replaces the global
// operator new) is linked into the executable; lai::base always links it.
uint64_t AllocationCount();

}  // namespace lai
