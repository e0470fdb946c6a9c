#include "sinks/csv_sink.hpp"

namespace profilemate {
namespace {

// An argument slot read as an interned string id: only exact non-negative integers qualify.
std::uint32_t arg_as_id(double v) {
  if (!(v >= 0.0) || v > 4294967295.0) return 0;
  const auto id = static_cast<std::uint32_t>(v);
  return static_cast<double>(id) == v ? id : 0;
}

}  // namespace

CsvSink::CsvSink(const ProcessInfo& info, StringCache& strings) : info_(info), strings_(strings) {}

void CsvSink::format_row(fmt::OutBuf& out, const Event& e, const RowTail& tail,
                         const TableDef& table, std::int32_t tid, const ProcessInfo& info,
                         StringCache& strings) {
  // One reservation for all numeric columns; a string column re-reserves for its own length plus
  // what may follow (the only place the buffer can move), so each field is a raw pointer write.
  constexpr std::size_t kPerColumn = fmt::kMaxNumberChars + 1;
  const std::size_t ncols = table.columns.size();
  char* p = out.ensure(ncols * kPerColumn + 1);
  auto put_string = [&](const std::string& s, std::size_t col) {
    out.advance_to(p);
    p = out.ensure(s.size() + (ncols - col) * kPerColumn + 1);
    p = fmt::write_str(p, s);
  };
  for (std::size_t i = 0; i < ncols; ++i) {
    if (i) *p++ = ',';
    const ColumnSource src = table.columns[i].source;
    switch (src) {
      case ColumnSource::kTsSec:
        p = fmt::write_ns_fixed<9, 6>(p, e.ts_ns - info.session_start_ns);
        break;
      case ColumnSource::kEndSec:
        p = fmt::write_ns_fixed<9, 6>(p, e.ts_ns + e.dur_ns - info.session_start_ns);
        break;
      case ColumnSource::kDurMs:
        p = fmt::write_ns_fixed<6, 6>(p, e.dur_ns);
        break;
      case ColumnSource::kDurUs:
        p = fmt::write_ns_fixed<3, 3>(p, e.dur_ns);
        break;
      case ColumnSource::kStep:
        if (e.step() >= 0) p = fmt::write_int(p, e.step());
        break;
      case ColumnSource::kName:
        put_string(strings.csv(e.name), i);
        break;
      case ColumnSource::kCtx:
        put_string(strings.csv(e.ctx), i);
        break;
      case ColumnSource::kA0:
      case ColumnSource::kA1:
      case ColumnSource::kA2:
      case ColumnSource::kA3:
      case ColumnSource::kA4:
      case ColumnSource::kA5:
      case ColumnSource::kA6:
      case ColumnSource::kA7:
      case ColumnSource::kA8:
      case ColumnSource::kA9:
      case ColumnSource::kA10:
      case ColumnSource::kA11:
      case ColumnSource::kA12:
      case ColumnSource::kA13:
      case ColumnSource::kA14:
      case ColumnSource::kA15:
        p = fmt::write_double(
            p, row_value(e, tail, static_cast<int>(src) - static_cast<int>(ColumnSource::kA0)),
            false);
        break;
      case ColumnSource::kS0:
      case ColumnSource::kS1:
      case ColumnSource::kS2:
      case ColumnSource::kS3:
      case ColumnSource::kS4:
      case ColumnSource::kS5:
      case ColumnSource::kS6:
      case ColumnSource::kS7:
      case ColumnSource::kS8:
      case ColumnSource::kS9:
      case ColumnSource::kS10:
      case ColumnSource::kS11:
      case ColumnSource::kS12:
      case ColumnSource::kS13:
      case ColumnSource::kS14:
      case ColumnSource::kS15:
        put_string(strings.csv(arg_as_id(row_value(
                       e, tail, static_cast<int>(src) - static_cast<int>(ColumnSource::kS0)))),
                   i);
        break;
      case ColumnSource::kPid:
        p = fmt::write_int(p, info.pid);
        break;
      case ColumnSource::kTid:
        p = fmt::write_int(p, tid);
        break;
      case ColumnSource::kText: {
        std::string escaped;
        fmt::csv_escape_into(escaped, tail.text_view());
        put_string(escaped, i);
        break;
      }
    }
  }
  *p++ = '\n';
  out.advance_to(p);
}

bool CsvSink::fail(const std::string& path, int err) {
  if (error_.err == 0) error_ = IoError{path, err};
  return false;
}

bool CsvSink::on_event(const Event& e, const RowTail& tail, const TableDef& table,
                       std::int32_t tid) {
  if (error_.err != 0) return false;
  auto& slot = files_[table.id];
  if (!slot) {
    slot = std::make_unique<FileWriter>();
    const std::string path = info_.process_dir + "/" + table.name + ".csv";
    if (int err = slot->open(path)) return fail(path, err);
    std::string header;
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
      if (i) header.push_back(',');
      fmt::csv_escape_into(header, table.columns[i].header);
    }
    header.push_back('\n');
    slot->buf().append(header);
  }
  format_row(slot->buf(), e, tail, table, tid, info_, strings_);
  ++rows_;
  if (int err = slot->maybe_write_early()) return fail(slot->path(), err);
  return true;
}

bool CsvSink::flush() {
  if (error_.err != 0) return false;
  for (auto& f : files_) {
    if (!f) continue;
    if (int err = f->write_pending()) return fail(f->path(), err);
  }
  return true;
}

void CsvSink::abandon() {
  for (auto& f : files_) {
    if (f) f->close_fd();
  }
}

}  // namespace profilemate
