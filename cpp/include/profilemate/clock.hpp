// The one clock of ProfileMate: CLOCK_MONOTONIC in nanoseconds.
//
// Why CLOCK_MONOTONIC: it is shared by every process of one machine (so all processes of one
// profiled run line up on one time axis), it never jumps with NTP steps, and it is what Python's
// time.monotonic_ns() and time.perf_counter_ns() read on Linux, so Python-side timestamps can be
// mixed with ours. Wall time is derived, not recorded: at session start the engine reads
// CLOCK_MONOTONIC and CLOCK_REALTIME together and summary.json stores the pair in its `clock`
// object, {"name": "CLOCK_MONOTONIC", "session_start_ns", "monotonic_ns", "realtime_ns"}; then
// wall = realtime_ns + (ts - monotonic_ns).
#pragma once

#include <cstdint>
#include <ctime>

namespace profilemate {

inline std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t wall_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace profilemate
