// The one interface every output goes through. The collector thread is the only caller; a sink
// formats into memory in on_event() and hands bytes to the kernel in flush(), once per drain cycle,
// so a cycle's rows are on their way to disk within one flush interval.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/file_writer.hpp"
#include "profilemate/event.hpp"
#include "profilemate/table.hpp"

namespace profilemate {

// Facts about the process that every sink may print.
struct ProcessInfo {
  std::int32_t pid = 0;
  std::string label;        // e.g. "worker"
  std::string process_dir;  // <session>/<label>-<pid>
  std::int64_t session_start_ns = 0;
};

// What a row carries beyond its head event: values a4.. and its text (empty when none).
struct RowTail {
  double more[kMaxRowValues - 4] = {};
  char text[kMaxRowText] = {};
  std::size_t text_len = 0;
  std::string_view text_view() const noexcept { return {text, text_len}; }
};

// Value i (0 .. kMaxRowValues-1) of a row.
inline double row_value(const Event& e, const RowTail& tail, int i) noexcept {
  return i < 4 ? e.args[i] : tail.more[i - 4];
}

class Sink {
 public:
  virtual ~Sink() = default;

  // A recording thread seen for the first time this session.
  virtual void on_thread(std::int32_t tid, std::string_view name) = 0;
  // One row: its head event and its tail (values past a3, zero when the row has fewer; text).
  // Returns false when an I/O error happened (reported through take_error()).
  virtual bool on_event(const Event& e, const RowTail& tail, const TableDef& table,
                        std::int32_t tid) = 0;
  // Writes what was formatted. Returns false on an I/O error.
  virtual bool flush() = 0;
  // End of session: write trailers (a flush() follows).
  virtual void finish() = 0;
  // Forked child: close descriptors inherited from the parent without writing anything.
  virtual void abandon() = 0;
  // The first I/O error (path + errno) after on_event()/flush() returned false.
  virtual IoError take_error() = 0;
};

}  // namespace profilemate
