// The collector: one thread per session that drains every ring into the pipeline (CSV, trace,
// aggregates), writes summary.json at the end (and on a signal), and publishes stats().
#pragma once

#include "collector/state.hpp"

namespace profilemate::collector {

// Async-signal-safe: one write(2) to the eventfd.
void wake_collector() noexcept;

// Session start, before its collector runs: what surviving rings hold and counted so far belongs
// to no session (drop their contents, re-base the accounted counters). Events a ring got after the
// last session's final drain are counted as lost (in the new session).
void rebase_rings() noexcept;

// stop(), after the collector's final cycle (its thread joined): events that raced stop() into the
// rings since that drain are dropped and counted as lost, and summary.json and stats() are
// rewritten to include them.
void sweep_after_final_cycle(Session& s);

// Starts s's collector thread with every signal blocked.
void spawn_collector(Session& s);

}  // namespace profilemate::collector
