// Tables: the CSV files of a process. A table is a name plus columns, each column a header and a
// *source* (which field of an event it prints). Definitions are process-wide, outlive sessions,
// and are inherited by a forked child together with the interner, so ids held by Python stay valid.
//
// Definitions are append-only and immutable once published: define() takes a mutex, get() is a
// lock-free acquire load, which is what the collector uses.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "profilemate/event.hpp"

namespace profilemate {

enum class ColumnSource : std::uint8_t {
  kTsSec,   // timestamp - session start, seconds, 6 decimals
  kEndSec,  // timestamp + duration - session start, seconds, 6 decimals
  kDurMs,   // duration, milliseconds, 6 decimals
  kDurUs,   // duration, microseconds, 3 decimals
  kStep,    // step id, empty when negative
  kName,    // interned name
  kCtx,     // interned context, empty when 0
  kA0,
  kA1,
  kA2,
  kA3,
  kA4,
  kA5,
  kA6,
  kA7,
  kA8,
  kA9,
  kA10,
  kA11,
  kA12,
  kA13,
  kA14,
  kA15,  // numeric arguments (a row carries up to kMaxRowValues)
  kS0,
  kS1,
  kS2,
  kS3,
  kS4,
  kS5,
  kS6,
  kS7,
  kS8,
  kS9,
  kS10,
  kS11,
  kS12,
  kS13,
  kS14,
  kS15,  // argument slots read as interned string ids
  kPid,
  kTid,
  kText,  // the row's text (record_row's text; a request id), CSV-escaped
};

// "ts_sec", "end_sec", ... (the names, in the order above) -> the source. Throws
// std::invalid_argument naming the allowed sources.
ColumnSource parse_column_source(std::string_view s);
// "ts_sec, end_sec, ...": the text the error lists.
std::string allowed_column_sources();

struct Column {
  std::string header;
  ColumnSource source;
};

struct TableDef {
  std::uint32_t id;
  std::string name;
  std::vector<Column> columns;
};

class TableRegistry {
 public:
  TableRegistry();
  ~TableRegistry();

  // Same name + same columns returns the existing id. Throws std::invalid_argument for a bad
  // name, an unknown source, a different redefinition, or more than kMaxTables tables.
  std::uint32_t define(std::string_view name,
                       const std::vector<std::pair<std::string, std::string>>& columns);

  // nullptr when the id was never defined. Lock-free.
  const TableDef* get(std::uint32_t id) const noexcept {
    if (id >= count_.load(std::memory_order_acquire)) return nullptr;
    return defs_[id].load(std::memory_order_acquire);
  }
  std::uint32_t size() const noexcept { return count_.load(std::memory_order_acquire); }

  std::mutex& mutex() noexcept { return mu_; }  // held across fork() by the prepare handler

  static TableRegistry& global();

 private:
  std::mutex mu_;
  std::atomic<const TableDef*> defs_[kMaxTables];
  std::atomic<std::uint32_t> count_{0};
};

}  // namespace profilemate
