// The public C++ API of the event engine: one session per process, tables, interned strings, the
// step id and the recording hot path. docs/CORE_API.md is the Python-facing contract built on it.
//
// Hot path (record_*): one relaxed load of the session epoch, two thread-local loads, a ring
// reservation and a 64-byte store. No allocation (except a thread's first event of a session,
// which creates its ring), no formatting, no locks, never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "profilemate/event.hpp"
#include "profilemate/internal/ring.hpp"

namespace profilemate {

// An OS-level failure naming the file or folder; the Python binding raises OSError from it.
class OsError : public std::runtime_error {
 public:
  OsError(int err, std::string path, const std::string& what)
      : std::runtime_error(what), err_(err), path_(std::move(path)) {}
  int err() const noexcept { return err_; }
  const std::string& path() const noexcept { return path_; }

 private:
  int err_;
  std::string path_;
};

// Defaults of StartOptions; with the limits below, exported to Python as _core.RING_CAPACITY_*,
// _core.FLUSH_INTERVAL_MS_* and _core.TRACE_DEFAULT (docs/CORE_API.md).
inline constexpr std::int64_t kDefaultRingCapacity = 65536;
inline constexpr std::int64_t kDefaultFlushIntervalMs = 100;
inline constexpr std::int64_t kMinFlushIntervalMs = 1;
inline constexpr bool kDefaultTrace = true;

struct StartOptions {
  std::string session_dir;
  std::string label;
  std::int64_t ring_capacity = kDefaultRingCapacity;  // per thread; power of two in [64, 2^24]
  std::int64_t flush_interval_ms = kDefaultFlushIntervalMs;  // 1..1000 (disk within a second)
  bool trace = kDefaultTrace;
  std::int64_t session_start_ns = 0;  // 0 = now
};

inline constexpr std::int64_t kMinRingCapacity = 64;
inline constexpr std::int64_t kMaxRingCapacity = std::int64_t{1} << 24;
inline constexpr std::int64_t kMaxFlushIntervalMs = 1000;

// Starts the session: creates <session_dir>/<label>-<pid>/, the collector thread, the signal,
// fork and exit hooks. Returns the process dir. A fork() child inherits the session without
// anything on disk: its own <label>-<childpid>/ and collector are created on its first event
// (or by relabel()), so a child that only execs leaves nothing behind. Throws std::invalid_argument
// (bad option), OsError (directory not creatable/writable; recording stays off), std::runtime_error
// (already running).
std::string start(const StartOptions& options);
// Moves this process's session to `label` (a forked child taking on its own role): in a forked
// child that has not recorded yet, creates <session_dir>/<label>-<pid>/ and starts recording there
// now; if the session already writes under another label, stops it (its folder keeps what it wrote)
// and starts one under `label` with the same options; the same label: nothing. Returns the process
// dir. Throws like start(), and std::runtime_error when the core is not started.
std::string relabel(std::string_view label);
// Drains every ring, writes the remaining rows, summary.json and closes the trace. Idempotent. In a
// forked child that has not recorded yet, creates nothing.
void stop() noexcept;
// Returns once everything recorded before the call has been handed to the kernel.
void flush() noexcept;
// True while a session records (false before start, after stop, after a write error).
bool enabled() noexcept;
std::string process_dir();

std::uint32_t define_table(std::string_view name,
                           const std::vector<std::pair<std::string, std::string>>& columns);
std::uint32_t intern(std::string_view s);

struct Stats {
  std::uint64_t recorded = 0;  // events accepted into rings this session
  std::uint64_t dropped = 0;   // events refused by a full ring
  // Events recorded while the session was on but neither written nor refused by a full ring: the
  // thread could not get a ring (it is exiting, out of memory) or the event raced stop().
  std::uint64_t lost = 0;
  std::uint64_t written_rows = 0;  // CSV rows formatted and handed to write(2)
  std::uint64_t rings = 0;         // live per-thread rings
  std::uint64_t ring_capacity = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t invalid_events = 0;  // recorded against an undefined table id
  std::uint64_t cycles = 0;          // collector drain cycles this session
  // SIGTERM/SIGINT snapshots the handler could not wait for (2 s passed, or the signal arrived
  // inside fork()); the handler then went on to the previous disposition.
  std::uint64_t signal_snapshots_missed = 0;
  std::map<std::string, std::uint64_t> dropped_by_table;
};
// As of the last drain cycle; call flush() first for numbers that include every prior record.
Stats stats();

namespace detail {
// Hot-path state (not API): g_epoch, g_step and g_invalid_table are defined in
// cpp/collector/session.cpp, the thread-locals and register_thread() in ring_registry.cpp.
//
// g_epoch identifies the running session; 0 means "not recording" (before start, after stop,
// after a write error). A thread whose tls_epoch differs from it takes the slow path once: it
// retires its previous ring (only the owning thread ever retires its ring, so no ring is freed
// under a producer) and registers a new one sized for this session.
// Invariant of the fast path: tls_epoch equal to a live epoch means tls_ring is that session's
// ring. Whatever clears tls_ring (the thread's exit guard, the fork child) also sets tls_epoch to
// 0, which is never a live epoch, so a later record() goes to register_thread(), which refuses
// and counts it (Stats::lost) instead of writing through a null ring.
//
// The thread-locals use the initial-exec TLS model so the Python extension (a dlopen'ed shared
// object) reads them with %fs-relative loads instead of __tls_get_addr calls; 12 bytes, well
// inside glibc's static TLS reserve for dlopen.
extern std::atomic<std::uint32_t> g_epoch;
extern std::atomic<std::int64_t> g_step;
extern std::atomic<std::uint64_t> g_invalid_table;
[[gnu::tls_model("initial-exec")]] extern constinit thread_local Ring* tls_ring;
[[gnu::tls_model("initial-exec")]] extern constinit thread_local std::uint32_t tls_epoch;
// Registers a new ring for the calling thread in session `epoch`, retiring its old one; nullptr
// if it cannot (thread exiting, out of memory).
Ring* register_thread(std::uint32_t epoch) noexcept;
}  // namespace detail

inline bool recording() noexcept { return detail::g_epoch.load(std::memory_order_relaxed) != 0; }

inline void set_step(std::int64_t step) noexcept {
  detail::g_step.store(step, std::memory_order_relaxed);
}
inline std::int64_t current_step() noexcept {
  return detail::g_step.load(std::memory_order_relaxed);
}

// Records one event into the calling thread's ring (dropped and counted when it is full).
inline void record(EventKind kind, std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                   std::int64_t dur_ns, std::int64_t step, std::uint32_t ctx, double a0, double a1,
                   double a2, double a3) noexcept {
  const std::uint32_t epoch = detail::g_epoch.load(std::memory_order_relaxed);
  if (epoch == 0) return;
  if (table >= kMaxTables) [[unlikely]] {
    detail::g_invalid_table.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Ring* ring = detail::tls_ring;
  if (detail::tls_epoch != epoch) [[unlikely]] {
    ring = detail::register_thread(epoch);
    if (ring == nullptr) return;
  }
  Event* e = ring->try_reserve(table);
  if (e == nullptr) return;
  e->ts_ns = ts_ns;
  e->dur_ns = dur_ns;
  e->args[0] = a0;
  e->args[1] = a1;
  e->args[2] = a2;
  e->args[3] = a3;
  e->name = name;
  e->ctx = ctx;
  e->meta = Event::pack_meta(step, table, kind);
  ring->publish();
}

// Writes one row into `ring` (the producer side; engine-internal, public for tests): the head
// event, value continuations, text continuations, reserved together and published together (a
// full ring drops the whole row, counted once). Values past kMaxRowValues and text past
// kMaxRowText are cut.
inline void record_row_into(Ring& ring, EventKind kind, std::uint32_t table, std::uint32_t name,
                            std::int64_t ts_ns, std::int64_t dur_ns, std::int64_t step,
                            std::uint32_t ctx, const double* v, int n,
                            std::string_view text) noexcept {
  if (n > kMaxRowValues) n = kMaxRowValues;
  if (n < 0) n = 0;
  if (text.size() > kMaxRowText) {  // cut on a UTF-8 character boundary
    std::size_t cut = kMaxRowText;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0u) == 0x80u) --cut;
    text = text.substr(0, cut);
  }
  const std::uint32_t vext = n > 4 ? static_cast<std::uint32_t>((n - 4 + 3) / 4) : 0;
  const std::uint32_t text_ext =
      static_cast<std::uint32_t>((text.size() + kRowTextPerEvent - 1) / kRowTextPerEvent);
  if (!ring.try_reserve_n(table, 1 + vext + text_ext)) return;
  Event& h = ring.slot(0);
  h.ts_ns = ts_ns;
  h.dur_ns = dur_ns;
  for (int i = 0; i < 4; ++i) h.args[i] = i < n ? v[i] : 0.0;
  h.name = name;
  h.ctx = ctx;
  h.meta = Event::pack_meta(step, table, kind, vext + text_ext);
  for (std::uint32_t k = 1; k <= vext; ++k) {
    Event& c = ring.slot(k);
    c.ts_ns = ts_ns;
    c.dur_ns = 0;
    for (int i = 0; i < 4; ++i) {
      const int j = static_cast<int>(4 * k) + i;
      c.args[i] = j < n ? v[j] : 0.0;
    }
    c.name = name;
    c.ctx = 0;
    c.meta = Event::pack_meta(step, table, EventKind::kRowExt);
  }
  for (std::uint32_t k = 0; k < text_ext; ++k) {
    Event& c = ring.slot(1 + vext + k);
    char bytes[kRowTextPerEvent] = {};
    text.copy(bytes, kRowTextPerEvent, k * kRowTextPerEvent);
    std::memcpy(static_cast<void*>(&c), bytes, kRowTextPerEvent);
    c.meta = Event::pack_meta(step, table, EventKind::kRowText);
  }
  ring.publish_n(1 + vext + text_ext);
}

// Records one row of up to kMaxRowValues values (v[0..n-1] -> a0..) and optional text (at most
// kMaxRowText bytes; the `text` column) into the calling thread's ring. n <= 4 without text is
// exactly record().
inline void record_row(EventKind kind, std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                       std::int64_t dur_ns, std::int64_t step, std::uint32_t ctx, const double* v,
                       int n, std::string_view text = {}) noexcept {
  if (n <= 4 && text.empty()) {
    record(kind, table, name, ts_ns, dur_ns, step, ctx, n > 0 ? v[0] : 0, n > 1 ? v[1] : 0,
           n > 2 ? v[2] : 0, n > 3 ? v[3] : 0);
    return;
  }
  const std::uint32_t epoch = detail::g_epoch.load(std::memory_order_relaxed);
  if (epoch == 0) return;
  if (table >= kMaxTables) [[unlikely]] {
    detail::g_invalid_table.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Ring* ring = detail::tls_ring;
  if (detail::tls_epoch != epoch) [[unlikely]] {
    ring = detail::register_thread(epoch);
    if (ring == nullptr) return;
  }
  record_row_into(*ring, kind, table, name, ts_ns, dur_ns, step, ctx, v, n, text);
}

inline void record_span(std::uint32_t table, std::uint32_t name, std::int64_t start_ns,
                        std::int64_t dur_ns, std::int64_t step = -1, std::uint32_t ctx = 0,
                        double a0 = 0, double a1 = 0, double a2 = 0, double a3 = 0) noexcept {
  record(EventKind::kSpan, table, name, start_ns, dur_ns, step, ctx, a0, a1, a2, a3);
}
inline void record_instant(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                           std::int64_t step = -1, std::uint32_t ctx = 0, double a0 = 0,
                           double a1 = 0, double a2 = 0, double a3 = 0) noexcept {
  record(EventKind::kInstant, table, name, ts_ns, 0, step, ctx, a0, a1, a2, a3);
}
inline void record_counter(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                           double value, std::int64_t step = -1, std::uint32_t ctx = 0) noexcept {
  record(EventKind::kCounter, table, name, ts_ns, 0, step, ctx, value, 0, 0, 0);
}

}  // namespace profilemate
