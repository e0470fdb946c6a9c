#include "sinks/trace_sink.hpp"

#include <string>

#include "core/json_writer.hpp"

namespace profilemate {

TraceSink::TraceSink(const ProcessInfo& info, StringCache& strings)
    : info_(info), strings_(strings) {}

int TraceSink::open() {
  const std::string path = info_.process_dir + "/trace.json";
  if (int err = writer_.open(path)) {
    error_ = IoError{path, err};
    return err;
  }
  auto& b = writer_.buf();
  b.append("[\n");
  std::string name;
  fmt::json_escape_into(name, info_.label);
  name.push_back('-');
  name.append(std::to_string(info_.pid));
  metadata(b, "process_name", 0, "name", name);
  b.append(",\n");
  if (int err = writer_.write_pending()) {
    error_ = IoError{path, err};
    return err;
  }
  return 0;
}

void TraceSink::metadata(fmt::OutBuf& b, std::string_view name, std::int32_t tid,
                         std::string_view arg, std::string_view escaped_value) const {
  json::Writer w(b);
  w.begin_object();
  w.raw_key("ph");
  w.value_raw_str("M");
  w.raw_key("name");
  w.value_raw_str(name);
  w.raw_key("pid");
  w.value_int(info_.pid);
  w.raw_key("tid");
  w.value_int(tid);
  w.raw_key("args");
  w.begin_object();
  w.raw_key(arg);
  w.value_raw_str(escaped_value);
  w.end_object();
  w.end_object();
}

void TraceSink::on_thread(std::int32_t tid, std::string_view name) {
  if (error_.err != 0 || finished_) return;
  std::string escaped;
  fmt::json_escape_into(escaped, name.empty() ? std::string_view("thread") : name);
  auto& b = writer_.buf();
  metadata(b, "thread_name", tid, "name", escaped);
  b.append(",\n");
}

const TraceSink::TablePlan& TraceSink::plan(const TableDef& t) {
  auto& p = plans_[t.id];
  if (!p) {
    p = std::make_unique<TablePlan>();
    fmt::json_escape_into(p->cat, t.name);
    p->counter_key = "value";
    for (const Column& c : t.columns) {
      const bool is_arg = c.source == ColumnSource::kCtx || c.source == ColumnSource::kText ||
                          (c.source >= ColumnSource::kA0 && c.source <= ColumnSource::kS15);
      if (!is_arg) continue;
      std::string key;
      fmt::json_escape_into(key, c.header);
      if (c.source == ColumnSource::kA0) p->counter_key = key;
      p->args.emplace_back(std::move(key), c.source);
    }
  }
  return *p;
}

bool TraceSink::on_event(const Event& e, const RowTail& tail, const TableDef& table,
                         std::int32_t tid) {
  if (error_.err != 0 || finished_) return false;
  const TablePlan& p = plan(table);
  auto& b = writer_.buf();
  const EventKind kind = e.kind();
  json::Writer w(b);
  w.begin_object();
  w.raw_key("ph");
  if (kind == EventKind::kSpan) {
    w.value_raw_str("X");
  } else if (kind == EventKind::kCounter) {
    w.value_raw_str("C");
  } else {
    w.value_raw_str("i");
    w.raw_key("s");
    w.value_raw_str("t");  // thread-scoped instant
  }
  w.raw_key("cat");
  w.value_raw_str(p.cat);
  w.raw_key("name");
  w.value_raw_str(strings_.json(e.name));
  w.raw_key("pid");
  w.value_int(info_.pid);
  w.raw_key("tid");
  w.value_int(tid);
  w.raw_key("ts");
  w.value_ns_fixed<3, 3>(e.ts_ns);  // microseconds, exact to the ns
  if (kind == EventKind::kSpan) {
    w.raw_key("dur");
    w.value_ns_fixed<3, 3>(e.dur_ns < 0 ? 0 : e.dur_ns);
  }
  w.raw_key("args");
  w.begin_object();
  if (kind == EventKind::kCounter) {
    // Counter args are the plotted series; the trace viewers expect numbers only.
    w.raw_key(p.counter_key);
    w.value_double(e.args[0]);
  } else {
    if (e.step() >= 0) {
      w.raw_key("step");
      w.value_int(e.step());
    }
    for (const auto& [key, src] : p.args) {
      w.raw_key(key);
      if (src == ColumnSource::kCtx) {
        w.value_raw_str(strings_.json(e.ctx));
      } else if (src == ColumnSource::kText) {
        std::string escaped;
        fmt::json_escape_into(escaped, tail.text_view());
        w.value_raw_str(escaped);
      } else if (src >= ColumnSource::kS0) {
        const double v =
            row_value(e, tail, static_cast<int>(src) - static_cast<int>(ColumnSource::kS0));
        const bool is_id = v >= 0.0 && v <= 4294967295.0 &&
                           static_cast<double>(static_cast<std::uint32_t>(v)) == v;
        w.value_raw_str(strings_.json(is_id ? static_cast<std::uint32_t>(v) : 0));
      } else {
        w.value_double(
            row_value(e, tail, static_cast<int>(src) - static_cast<int>(ColumnSource::kA0)));
      }
    }
  }
  w.end_object();
  w.end_object();
  b.append(",\n");
  if (int err = writer_.maybe_write_early()) {
    error_ = IoError{writer_.path(), err};
    return false;
  }
  return true;
}

bool TraceSink::flush() {
  if (error_.err != 0) return false;
  if (!writer_.is_open()) return true;
  if (int err = writer_.write_pending()) {
    error_ = IoError{writer_.path(), err};
    return false;
  }
  return true;
}

void TraceSink::finish() {
  if (error_.err != 0 || finished_ || !writer_.is_open()) return;
  // The last element has no trailing comma, so the closed file is strict JSON.
  auto& b = writer_.buf();
  metadata(b, "process_labels", 0, "labels", "profilemate");
  b.append("\n]\n");
  finished_ = true;
}

}  // namespace profilemate
