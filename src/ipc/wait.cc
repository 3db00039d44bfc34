#include "ipc/wait.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace lai::ipc {

bool CanSpin() {
  static const bool can_spin = ::sysconf(_SC_NPROCESSORS_ONLN) > 1;
  return can_spin;
}

uint64_t NowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

double NsPerTick() {
  static const double ns_per_tick = [] {
    uint64_t ns0 = NowNs();
    uint64_t t0 = TickNow();
    while (NowNs() - ns0 < 2'000'000) CpuRelax();
    uint64_t ns1 = NowNs();
    uint64_t t1 = TickNow();
    return t1 > t0 ? static_cast<double>(ns1 - ns0) / static_cast<double>(t1 - t0) : 1.0;
  }();
  return ns_per_tick;
}

uint64_t CoarseNowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

SpinBudget::SpinBudget(std::chrono::nanoseconds min, std::chrono::nanoseconds max)
    : min_ns_(CanSpin() ? static_cast<uint64_t>(min.count()) : 0),
      max_ns_(CanSpin() ? static_cast<uint64_t>(max.count()) : 0),
      budget_ns_(max_ns_) {}

void SpinBudget::OnParked(uint64_t parked_ns) {
  if (parked_ns < 4 * max_ns_) {
    budget_ns_ = max_ns_;
  } else {
    budget_ns_ = std::max(min_ns_, budget_ns_ / 2);
  }
}

}  // namespace lai::ipc
