// The one clock of ProfileMate: CLOCK_MONOTONIC in nanoseconds.
//
// Why CLOCK_MONOTONIC: it is shared by every process of one machine (so the API, EngineCore and
// worker processes of one vLLM run line up on one time axis), it never jumps with NTP steps, and
// it is what Python's time.monotonic_ns() and time.perf_counter_ns() read on Linux, so Python-side
// timestamps can be mixed with ours. Wall time is derived once per session: at start we read
// CLOCK_REALTIME next to CLOCK_MONOTONIC and store the pair (see metadata.json).
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
