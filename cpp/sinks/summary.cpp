#include "sinks/summary.hpp"

#include <algorithm>
#include <vector>

#include "core/json_writer.hpp"

namespace profilemate {

std::string render_summary(const ProcessInfo& info, const Aggregates& agg, const SummaryFacts& f,
                           const TableRegistry& tables, const Interner& names) {
  fmt::OutBuf b;
  json::Writer w(b);
  using json::Layout;
  w.begin_object(Layout::kBlock);
  w.key("profilemate_version");
  w.value_str(f.version);
  w.key("pid");
  w.value_int(info.pid);
  w.key("label");
  w.value_str(info.label);
  w.key("process_dir");
  w.value_str(info.process_dir);
  w.key("final");
  w.value_bool(f.final);
  // The canonical clock object (the same keys in every JSON file ProfileMate writes).
  w.key("clock");
  w.begin_object(Layout::kInline);
  w.key("name");
  w.value_str("CLOCK_MONOTONIC");
  w.key("session_start_ns");
  w.value_int(info.session_start_ns);
  w.key("monotonic_ns");
  w.value_int(f.clock_monotonic_ns);
  w.key("realtime_ns");
  w.value_int(f.clock_realtime_ns);
  w.end_object();
  w.key("written_at_ns");
  w.value_int(f.written_at_ns);
  w.key("recorded");
  w.value_uint(f.recorded);
  w.key("dropped");
  w.value_uint(f.dropped);
  w.key("lost");
  w.value_uint(f.lost);
  w.key("written_rows");
  w.value_uint(f.written_rows);
  w.key("write_errors");
  w.value_uint(f.write_errors);
  w.key("invalid_events");
  w.value_uint(f.invalid_events);
  w.key("signal_snapshots_missed");
  w.value_uint(f.signal_snapshots_missed);
  w.key("dropped_by_table");
  w.begin_object(Layout::kInline);
  for (const auto& [name, n] : f.dropped_by_table) {
    w.key(name);
    w.value_uint(n);
  }
  w.end_object();

  // Sorted by table name, then event name, so two summaries diff cleanly.
  struct Row {
    std::string_view table, name;
    const Aggregates::Entry* e;
  };
  std::vector<Row> rows;
  for (const auto& [key, entry] : agg.entries()) {
    const TableDef* t = tables.get(Aggregates::table_of(key));
    if (t == nullptr) continue;
    rows.push_back(Row{t->name, names.lookup(Aggregates::name_of(key)), &entry});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return x.table != y.table ? x.table < y.table : x.name < y.name;
  });
  w.key("tables");
  w.begin_object(Layout::kBlock);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    if (i == 0 || r.table != rows[i - 1].table) {
      if (i != 0) w.end_object();
      w.key(r.table);
      w.begin_object(Layout::kBlock);
    }
    w.key(r.name);
    w.begin_object(Layout::kInline);
    w.key("count");
    w.value_uint(r.e->count);
    w.key("kind");
    w.value_str((r.e->kinds & 1u) ? "span" : (r.e->kinds & 4u) ? "counter" : "instant");
    if (r.e->durations && r.e->durations->count() > 0) {
      const Histogram& h = *r.e->durations;
      const auto ms = [&](const char* key, std::int64_t ns) {
        w.key(key);
        w.value_ns_as(ns, 6, 6);
      };
      ms("p50_ms", h.percentile(0.50));
      ms("p95_ms", h.percentile(0.95));
      ms("p99_ms", h.percentile(0.99));
      ms("max_ms", h.max());
      ms("min_ms", h.min());
      ms("mean_ms", static_cast<std::int64_t>(h.mean() + 0.5));
      ms("total_ms", static_cast<std::int64_t>(h.sum() + 0.5));
    }
    w.end_object();
  }
  if (!rows.empty()) w.end_object();
  w.end_object();  // tables
  w.end_object();
  b.put('\n');
  return std::string(b.data(), b.size());
}

}  // namespace profilemate
