#include "sinks/summary.hpp"

#include <algorithm>
#include <vector>

#include "core/format.hpp"

namespace profilemate {
namespace {

void put_str(fmt::OutBuf& b, std::string_view s) {
  std::string e;
  fmt::json_escape_into(e, s);
  b.put('"');
  b.append(e);
  b.put('"');
}

void put_ms(fmt::OutBuf& b, std::int64_t ns) { fmt::put_ns_as(b, ns, 6, 6); }

}  // namespace

std::string render_summary(const ProcessInfo& info, const Aggregates& agg, const SummaryFacts& c,
                           const TableRegistry& tables, const Interner& interner) {
  fmt::OutBuf b;
  b.append("{\n  \"profilemate_version\": ");
  put_str(b, c.version);
  b.append(",\n  \"pid\": ");
  fmt::put_int(b, info.pid);
  b.append(",\n  \"label\": ");
  put_str(b, info.label);
  b.append(",\n  \"process_dir\": ");
  put_str(b, info.process_dir);
  b.append(",\n  \"final\": ");
  b.append(c.final ? "true" : "false");
  b.append(",\n  \"clock\": {\"name\": \"CLOCK_MONOTONIC\", \"session_start_ns\": ");
  fmt::put_int(b, info.session_start_ns);
  b.append(", \"monotonic_ns\": ");
  fmt::put_int(b, c.clock_monotonic_ns);
  b.append(", \"realtime_ns\": ");
  fmt::put_int(b, c.clock_realtime_ns);
  b.append(", \"written_at_ns\": ");
  fmt::put_int(b, c.written_at_ns);
  b.append("},\n  \"recorded\": ");
  fmt::put_uint(b, c.recorded);
  b.append(",\n  \"dropped\": ");
  fmt::put_uint(b, c.dropped);
  b.append(",\n  \"written_rows\": ");
  fmt::put_uint(b, c.written_rows);
  b.append(",\n  \"write_errors\": ");
  fmt::put_uint(b, c.write_errors);
  b.append(",\n  \"invalid_events\": ");
  fmt::put_uint(b, c.invalid_events);
  b.append(",\n  \"dropped_by_table\": {");
  bool first = true;
  for (const auto& [name, n] : c.dropped_by_table) {
    b.append(first ? "" : ", ");
    first = false;
    put_str(b, name);
    b.append(": ");
    fmt::put_uint(b, n);
  }
  b.append("},\n  \"tables\": {");

  // Sorted by table name, then event name, so two summaries diff cleanly.
  struct Row {
    std::string_view table, name;
    const Aggregates::Entry* e;
  };
  std::vector<Row> rows;
  for (const auto& [key, entry] : agg.entries()) {
    const TableDef* t = tables.get(Aggregates::table_of(key));
    if (t == nullptr) continue;
    rows.push_back(Row{t->name, interner.lookup(Aggregates::name_of(key)), &entry});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return x.table != y.table ? x.table < y.table : x.name < y.name;
  });
  std::string_view current;
  bool any_table = false;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    if (!any_table || r.table != current) {
      if (any_table) b.append("\n    }");
      b.append(any_table ? ",\n    " : "\n    ");
      put_str(b, r.table);
      b.append(": {");
      current = r.table;
      any_table = true;
      first = true;
    }
    b.append(first ? "\n      " : ",\n      ");
    first = false;
    put_str(b, r.name);
    b.append(": {\"count\": ");
    fmt::put_uint(b, r.e->count);
    const char* kind = (r.e->kinds & 1u) ? "span" : (r.e->kinds & 4u) ? "counter" : "instant";
    b.append(", \"kind\": \"");
    b.append(kind);
    b.put('"');
    if (r.e->durations && r.e->durations->count() > 0) {
      const Histogram& h = *r.e->durations;
      b.append(", \"p50_ms\": ");
      put_ms(b, h.percentile(0.50));
      b.append(", \"p95_ms\": ");
      put_ms(b, h.percentile(0.95));
      b.append(", \"p99_ms\": ");
      put_ms(b, h.percentile(0.99));
      b.append(", \"max_ms\": ");
      put_ms(b, h.max());
      b.append(", \"min_ms\": ");
      put_ms(b, h.min());
      b.append(", \"mean_ms\": ");
      put_ms(b, static_cast<std::int64_t>(h.mean() + 0.5));
      b.append(", \"total_ms\": ");
      put_ms(b, static_cast<std::int64_t>(h.sum() + 0.5));
    }
    b.put('}');
  }
  if (any_table) b.append("\n    }\n  ");
  b.append("}\n}\n");
  return std::string(b.data(), b.size());
}

}  // namespace profilemate
