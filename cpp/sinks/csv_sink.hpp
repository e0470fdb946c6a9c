// Per-table CSV files: <process dir>/<table>.csv, created on the table's first row with a header
// line, one row per event, RFC 4180 quoting for strings.
#pragma once

#include <array>
#include <memory>

#include "core/string_cache.hpp"
#include "sinks/sink.hpp"

namespace profilemate {

class CsvSink final : public Sink {
 public:
  CsvSink(const ProcessInfo& info, StringCache& strings);

  void on_thread(std::int32_t, std::string_view) override {}
  bool on_event(const Event& e, const RowTail& tail, const TableDef& table,
                std::int32_t tid) override;
  bool flush() override;
  void finish() override {}
  void abandon() override;
  IoError take_error() override { return error_; }
  // Rows formatted so far (for stats()).
  std::uint64_t rows() const noexcept { return rows_; }

  // Formats one row (no newline handling beyond the trailing '\n'); exposed for tests/benchmarks.
  static void format_row(fmt::OutBuf& out, const Event& e, const RowTail& tail,
                         const TableDef& table, std::int32_t tid, const ProcessInfo& info,
                         StringCache& strings);

 private:
  bool fail(const std::string& path, int err);

  const ProcessInfo& info_;
  StringCache& strings_;
  std::array<std::unique_ptr<FileWriter>, kMaxTables> files_;
  IoError error_;
  std::uint64_t rows_ = 0;
};

}  // namespace profilemate
