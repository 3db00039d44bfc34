// Bounded, adaptive spinning before a thread parks. Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>

namespace lai::ipc {

// True when more than one CPU is online; spinning on a single CPU only delays the peer.
bool CanSpin();

// Monotonic nanoseconds (CLOCK_MONOTONIC through the vDSO).
uint64_t NowNs();

// Monotonic nanoseconds at the kernel tick's resolution (a few ms), but nearly free to read
// (CLOCK_MONOTONIC_COARSE): for "has it been long" checks on hot paths.
uint64_t CoarseNowNs();

// A cheap timestamp for measuring short intervals on one thread: the CPU's constant-rate counter
// (x86 TSC, aarch64 CNTVCT), or NowNs() elsewhere. Convert with NsPerTick().
inline uint64_t TickNow() {
#if defined(__x86_64__)
  return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
  uint64_t ticks;
  asm volatile("mrs %0, cntvct_el0" : "=r"(ticks));
  return ticks;
#else
  return NowNs();
#endif
}

// Nanoseconds per TickNow() tick, calibrated against CLOCK_MONOTONIC on first use (~2 ms).
double NsPerTick();

// One CPU-friendly pause (x86 `pause`, aarch64 `yield`).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long to spin before parking, adapted to how quickly the peer answers: a park that ended
// soon after it began means we gave up too early (spin longer, up to `max`); a long park means
// the peer is idle and spinning wastes a CPU (halve, down to `min`).
class SpinBudget {
 public:
  SpinBudget(std::chrono::nanoseconds min, std::chrono::nanoseconds max);

  uint64_t budget_ns() const { return budget_ns_; }
  void OnParked(uint64_t parked_ns);

 private:
  uint64_t min_ns_;
  uint64_t max_ns_;
  uint64_t budget_ns_;
};

}  // namespace lai::ipc
