// The event model: one fixed-size, trivially copyable 64-byte record per event.
//
// Why 64 bytes, 64-aligned: one whole cache line per slot (alignas(64) here, and the ring's slot
// array is allocated on a line boundary), so a producer writing slot i never shares a line with the
// collector reading slot i-1 (no false sharing inside the ring), and a copy is four 16-byte moves.
// Everything variable-length (names, contexts, string arguments) is an interned id (interner.hpp):
// the hot path copies numbers only. The thread id is not in the record: every ring belongs to one
// thread, so the collector stamps the ring's tid; the pid is per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace profilemate {

enum class EventKind : std::uint8_t {
  kSpan = 0,     // complete span: ts_ns = start, dur_ns = duration (trace "ph":"X")
  kInstant = 1,  // a point in time (trace "ph":"i")
  kCounter = 2,  // a sampled value in args[0] (trace "ph":"C")
  // Continuation of a wide row: carries the row's values 4*k .. 4*k+3 in args[0..3]. A row with
  // more than four values is one head event (any kind above, its ext_count() = number of
  // continuations) followed by its continuations in the same ring, published together, so the
  // collector always sees a whole row (engine.hpp: record_row).
  kRowExt = 3,
  // Continuation carrying text (a request id): its first kRowTextPerEvent bytes, everything but
  // meta, hold the next bytes of the row's text (NUL-padded). Text continuations follow the
  // value continuations; a row carries at most kMaxRowText bytes of text. Text travels inside the
  // row, so per-request strings never enter the interner (which keeps every string for good).
  kRowText = 4,
};

// Values one row can carry: a0..a15 (the head's four plus three continuations of four).
inline constexpr int kMaxRowValues = 16;
inline constexpr int kMaxRowExt = (kMaxRowValues - 4) / 4;
inline constexpr std::size_t kRowTextPerEvent = 56;  // 64 bytes less meta
inline constexpr std::size_t kMaxRowText = 2 * kRowTextPerEvent;
inline constexpr bool is_continuation(EventKind k) noexcept {
  return k == EventKind::kRowExt || k == EventKind::kRowText;
}

// Tables are the CSV files of one process; the id fits in 8 bits (see kMaxTables).
inline constexpr std::uint32_t kMaxTables = 256;

struct alignas(64) Event {
  std::int64_t ts_ns;   // CLOCK_MONOTONIC nanoseconds (start of a span)
  std::int64_t dur_ns;  // span duration; 0 for instants and counters
  double args[4];       // a0..a3; a slot may also carry an interned string id (s0..s3 columns)
  std::uint32_t name;   // interned id
  std::uint32_t ctx;    // interned id, 0 = none
  // step (48-bit signed) << 16 | table << 8 | continuations << 4 | kind. Packed by hand rather
  // than with bitfields so the layout does not depend on the ABI's bitfield rules. 48 bits hold
  // 1.4e14 steps.
  std::uint64_t meta;

  static constexpr std::uint64_t pack_meta(std::int64_t step, std::uint32_t table, EventKind kind,
                                           std::uint32_t ext = 0) noexcept {
    return (static_cast<std::uint64_t>(step) << 16) |
           (static_cast<std::uint64_t>(table & 0xffu) << 8) |
           (static_cast<std::uint64_t>(ext & 0xfu) << 4) | static_cast<std::uint64_t>(kind);
  }
  // Arithmetic right shift of a signed value is defined in C++20, so -1 round-trips.
  constexpr std::int64_t step() const noexcept { return static_cast<std::int64_t>(meta) >> 16; }
  constexpr std::uint32_t table() const noexcept {
    return static_cast<std::uint32_t>((meta >> 8) & 0xffu);
  }
  constexpr EventKind kind() const noexcept { return static_cast<EventKind>(meta & 0xfu); }
  // How many kRowExt events follow this one (0 for a row of at most four values).
  constexpr std::uint32_t ext_count() const noexcept {
    return static_cast<std::uint32_t>((meta >> 4) & 0xfu);
  }
};

static_assert(sizeof(Event) == 64, "an Event must be exactly one cache line");
static_assert(alignof(Event) == 64, "an Event must start on a cache line");
static_assert(std::is_trivially_copyable_v<Event>);
static_assert(std::is_standard_layout_v<Event>);
static_assert(offsetof(Event, meta) == kRowTextPerEvent, "text fills everything before meta");

}  // namespace profilemate
