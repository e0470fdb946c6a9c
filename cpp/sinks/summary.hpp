// summary.json: the per-process digest written at stop() (and refreshed on SIGTERM/SIGINT):
// versions, the process, the clock mapping, drop and write counters, and per table and name the
// event count and, for spans, p50/p95/p99/max/mean/min duration in ms.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/aggregates.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"
#include "sinks/sink.hpp"

namespace profilemate {

// Everything summary.json prints besides the process facts and the aggregates.
struct SummaryFacts {
  std::string version;  // the profilemate package version
  std::uint64_t recorded = 0;
  std::uint64_t dropped = 0;
  std::uint64_t lost = 0;
  std::uint64_t written_rows = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t invalid_events = 0;
  std::uint64_t signal_snapshots_missed = 0;
  std::map<std::string, std::uint64_t> dropped_by_table;
  std::int64_t clock_monotonic_ns = 0;  // a (monotonic, realtime) pair read together at start
  std::int64_t clock_realtime_ns = 0;
  std::int64_t written_at_ns = 0;
  bool final = false;  // false for a snapshot taken on a signal
};

// A pure function of its arguments (tables and names resolve the aggregates' ids), so a test can
// compare the text byte for byte.
std::string render_summary(const ProcessInfo& info, const Aggregates& agg,
                           const SummaryFacts& facts, const TableRegistry& tables,
                           const Interner& names);

}  // namespace profilemate
