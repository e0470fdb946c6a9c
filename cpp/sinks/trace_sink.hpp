// Chrome trace-event JSON (loads in Perfetto UI and chrome://tracing), written as the
// unterminated-array form the format allows: "[\n" then one event per line, each line "{...},".
// Every complete line is therefore one parseable event (strip the trailing comma), which is what
// keeps the file readable after SIGKILL: only a torn last line can be damaged. A clean finish()
// closes the array with a final metadata event and "]", which makes the file strict JSON too.
//
// Timestamps are CLOCK_MONOTONIC microseconds (3 decimals): absolute, not session-relative, so the
// files of all processes of one machine merge onto one axis without adjustment.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "core/string_cache.hpp"
#include "sinks/sink.hpp"

namespace profilemate {

class TraceSink final : public Sink {
 public:
  TraceSink(const ProcessInfo& info, StringCache& strings);

  // Creates trace.json and writes the array opening and process metadata. Returns 0 or errno.
  int open();

  void on_thread(std::int32_t tid, std::string_view name) override;
  bool on_event(const Event& e, const RowTail& tail, const TableDef& table,
                std::int32_t tid) override;
  bool flush() override;
  void finish() override;
  void abandon() override { writer_.close_fd(); }
  IoError take_error() override { return error_; }

 private:
  // Per table: the event category and which columns become trace args (pre-escaped keys).
  struct TablePlan {
    std::string cat;
    std::vector<std::pair<std::string, ColumnSource>> args;
    std::string counter_key;  // series name of a counter: the a0 column's header, else "value"
  };
  const TablePlan& plan(const TableDef& t);
  // {"ph":"M","name":<name>,"pid":..,"tid":<tid>,"args":{<arg>:<escaped_value>}} (no separator).
  void metadata(fmt::OutBuf& b, std::string_view name, std::int32_t tid, std::string_view arg,
                std::string_view escaped_value) const;

  const ProcessInfo& info_;
  StringCache& strings_;
  FileWriter writer_;
  std::array<std::unique_ptr<TablePlan>, kMaxTables> plans_;
  IoError error_;
  bool finished_ = false;
};

}  // namespace profilemate
