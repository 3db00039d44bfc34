// Replaces the global allocation functions so lai::AllocationCount() counts. Linked (as an object
// library) into lapce-ai and the test binaries only; the aligned and nothrow forms forward here
// or are left to the C++ runtime.
#include <cstdlib>
#include <new>

#include "base/alloc_counter.h"

// Sanitizers replace the allocation functions themselves; under them the count stays off
// (IsCountingAllocations() is false and tests that need it skip).
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

namespace {
const bool kEnabled = (lai::internal::EnableAllocationCounting(), true);
}  // namespace

void* operator new(std::size_t size) {
  lai::internal::CountAllocation();
  if (size == 0) size = 1;
  for (;;) {
    if (void* p = std::malloc(size)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

#endif  // !__SANITIZE_ADDRESS__ && !__SANITIZE_THREAD__
