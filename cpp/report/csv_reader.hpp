// A streaming reader of the CSV files the core writes (RFC 4180 quoting, docs/EVENT_ENGINE.md):
// a record ends at a newline outside quotes; what follows the last complete record is torn (a
// killed process) and dropped. Memory is bounded: the file goes through a window of at most
// kMaxWindow bytes, and a record longer than kMaxRecord stops the file (kept: what came before).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace profilemate::report {

using Fields = std::span<const std::string_view>;

struct CsvStats {
  std::uint64_t rows = 0;        // records after the header, handed to on_row
  std::uint64_t malformed = 0;   // records whose field count differs from the header's (skipped)
  std::uint64_t torn_bytes = 0;  // bytes after the last complete record (dropped)
  std::uint64_t bytes = 0;       // bytes read
  bool opened = false;           // the file could be opened and read from the start
  bool header = false;           // a header record was read
  std::string error;             // why reading stopped before the end (empty: read to the end)
};

inline constexpr std::size_t kMaxRecord = 1u << 20;

// on_header(fields) is called with the first record; returning false stops the file (its error
// is then the caller's to say). on_row(fields) is called for every later complete record with as
// many fields as the header. Views are valid during the call only.
CsvStats read_csv(const std::string& path, const std::function<bool(Fields)>& on_header,
                  const std::function<void(Fields)>& on_row);

// The same over bytes in memory (tests, fuzzing): `data` is the whole file.
CsvStats read_csv_bytes(std::string_view data, const std::function<bool(Fields)>& on_header,
                        const std::function<void(Fields)>& on_row);

}  // namespace profilemate::report
