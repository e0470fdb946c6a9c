// The collector: one thread per session that drains every ring into the pipeline (CSV, trace,
// aggregates), writes summary.json at the end (and on a signal), and publishes stats().
#pragma once

#include "collector/state.hpp"

namespace profilemate::collector {

// Async-signal-safe: one write(2) to the eventfd.
void wake_collector() noexcept;

// Session start, before its collector runs: what surviving rings hold and counted so far belongs
// to no session (drop their contents, re-base the accounted counters).
void rebase_rings() noexcept;

// Starts s's collector thread with every signal blocked.
void spawn_collector(Session& s);

}  // namespace profilemate::collector
