#include "sinks/trace_sink.hpp"

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
  b.append("[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
  fmt::put_int(b, info_.pid);
  b.append(",\"tid\":0,\"args\":{\"name\":\"");
  std::string label;
  fmt::json_escape_into(label, info_.label);
  b.append(label);
  b.put('-');
  fmt::put_int(b, info_.pid);
  b.append("\"}},\n");
  if (int err = writer_.write_pending()) {
    error_ = IoError{path, err};
    return err;
  }
  return 0;
}

void TraceSink::on_thread(std::int32_t tid, std::string_view name) {
  if (error_.err != 0 || finished_) return;
  auto& b = writer_.buf();
  b.append("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":");
  fmt::put_int(b, info_.pid);
  b.append(",\"tid\":");
  fmt::put_int(b, tid);
  b.append(",\"args\":{\"name\":\"");
  std::string escaped;
  fmt::json_escape_into(escaped, name.empty() ? std::string_view("thread") : name);
  b.append(escaped);
  b.append("\"}},\n");
}

const TraceSink::TablePlan& TraceSink::plan(const TableDef& t) {
  auto& p = plans_[t.id];
  if (!p) {
    p = std::make_unique<TablePlan>();
    fmt::json_escape_into(p->cat, t.name);
    p->counter_key = "value";
    for (const Column& c : t.columns) {
      const bool is_arg = c.source == ColumnSource::kCtx ||
                          (c.source >= ColumnSource::kA0 && c.source <= ColumnSource::kS3);
      if (!is_arg) continue;
      std::string key;
      fmt::json_escape_into(key, c.header);
      if (c.source == ColumnSource::kA0) p->counter_key = key;
      p->args.emplace_back(std::move(key), c.source);
    }
  }
  return *p;
}

bool TraceSink::on_event(const Event& e, const TableDef& table, std::int32_t tid) {
  if (error_.err != 0 || finished_) return false;
  const TablePlan& p = plan(table);
  auto& b = writer_.buf();
  const EventKind kind = e.kind();
  b.append(kind == EventKind::kSpan ? std::string_view("{\"ph\":\"X\",\"cat\":\"")
           : kind == EventKind::kCounter
               ? std::string_view("{\"ph\":\"C\",\"cat\":\"")
               : std::string_view("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\""));
  b.append(p.cat);
  b.append("\",\"name\":\"");
  b.append(strings_.json(e.name));
  b.append("\",\"pid\":");
  fmt::put_int(b, info_.pid);
  b.append(",\"tid\":");
  fmt::put_int(b, tid);
  {
    char* w = b.ensure(2 * fmt::kMaxNumberChars + 16);
    w = fmt::write_str(w, ",\"ts\":");
    w = fmt::write_ns_fixed<3, 3>(w, e.ts_ns);  // microseconds, exact to the ns
    if (kind == EventKind::kSpan) {
      w = fmt::write_str(w, ",\"dur\":");
      w = fmt::write_ns_fixed<3, 3>(w, e.dur_ns < 0 ? 0 : e.dur_ns);
    }
    b.advance_to(w);
  }
  b.append(",\"args\":{");
  if (kind == EventKind::kCounter) {
    // Counter args are the plotted series; the trace viewers expect numbers only.
    b.put('"');
    b.append(p.counter_key);
    b.append("\":");
    fmt::put_double(b, e.args[0], true);
  } else {
    bool first = true;
    if (e.step() >= 0) {
      b.append("\"step\":");
      fmt::put_int(b, e.step());
      first = false;
    }
    for (const auto& [key, src] : p.args) {
      if (!first) b.put(',');
      first = false;
      b.put('"');
      b.append(key);
      b.append("\":");
      if (src == ColumnSource::kCtx) {
        b.put('"');
        b.append(strings_.json(e.ctx));
        b.put('"');
      } else if (src >= ColumnSource::kS0) {
        const double v = e.args[static_cast<int>(src) - static_cast<int>(ColumnSource::kS0)];
        const bool is_id = v >= 0.0 && v <= 4294967295.0 &&
                           static_cast<double>(static_cast<std::uint32_t>(v)) == v;
        b.put('"');
        b.append(strings_.json(is_id ? static_cast<std::uint32_t>(v) : 0));
        b.put('"');
      } else {
        fmt::put_double(b, e.args[static_cast<int>(src) - static_cast<int>(ColumnSource::kA0)],
                        true);
      }
    }
  }
  b.append("}},\n");
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
  b.append("{\"ph\":\"M\",\"name\":\"process_labels\",\"pid\":");
  fmt::put_int(b, info_.pid);
  b.append(",\"tid\":0,\"args\":{\"labels\":\"profilemate\"}}\n]\n");
  finished_ = true;
}

}  // namespace profilemate
