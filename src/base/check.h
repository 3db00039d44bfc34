// LAI_CHECK / LAI_DCHECK: abort with a message when an invariant is broken. Thread-safe.
#pragma once

#include <sstream>

namespace lai::internal {

// Collects the streamed message and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Makes `cond ? (void)0 : Voidify() & stream` type-check.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace lai::internal

// Always on: LAI_CHECK(fd >= 0) << "socket " << path;
#define LAI_CHECK(cond)                 \
  (cond) ? (void)0                      \
         : ::lai::internal::Voidify() & \
               ::lai::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#ifdef NDEBUG
#define LAI_DCHECK(cond) \
  true ? (void)0 : ::lai::internal::Voidify() & ::lai::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()
#else
#define LAI_DCHECK(cond) LAI_CHECK(cond)
#endif
