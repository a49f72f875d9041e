#pragma once
// BPF timestamps are CLOCK_MONOTONIC; output wants wall-clock time. The offset is sampled, not per event.
#include <time.h>

#include <cstdint>

namespace hostscope {

inline uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// realtime = monotonic + offset
inline int64_t monotonic_to_realtime_offset() {
  return int64_t(clock_ns(CLOCK_REALTIME)) - int64_t(clock_ns(CLOCK_MONOTONIC));
}

}  // namespace hostscope
