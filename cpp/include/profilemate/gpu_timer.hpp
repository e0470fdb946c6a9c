// Device time of host-bracketed work, without a synchronize: a pool of pre-created device events.
//
// The host brackets a piece of device work (a model forward) with begin() and end(): each records
// one pre-created event on the caller's stream (no allocation, no synchronize, nothing waits).
// end() also parks the row the caller wants written (table, name, step, CPU start and duration,
// values). The collector thread later asks each parked pair, oldest first, whether the device has
// passed its end event (a query, never a wait); when it has, it writes the row with the device time
// between the two events in the value slot the caller named, and frees the pair. No Python is
// involved on the collector side, so the reader never needs the interpreter lock.
//
// The device API is loaded at run time (dlopen of the driver library, symbols looked up by name),
// so the core has no link dependency on any GPU toolkit and builds where none is installed: without
// the library the timer stays disabled, says why, and end() writes its row at once with the device
// time left empty (NaN). Tests inject a fake driver table (GpuDriver) instead.
//
// Threading: begin()/end() come from one producer at a time (the probes call them under the
// interpreter lock); poll() from the collector thread only. A pair's state word hands it over
// (release/acquire), so the two sides share no lock.
#pragma once

#include <cstdint>
#include <string>

namespace profilemate {

// The few driver entry points the timer uses, as plain function pointers with the driver's C
// calling convention (handles are opaque pointers; results are the driver's status codes, 0 =
// success). Declared here rather than taken from a toolkit header so no toolkit is needed to build.
struct GpuDriver {
  using Handle = void*;
  int (*ctx_get_current)(Handle* ctx) = nullptr;              // cuCtxGetCurrent
  int (*ctx_set_current)(Handle ctx) = nullptr;               // cuCtxSetCurrent
  int (*event_create)(Handle* ev, unsigned flags) = nullptr;  // cuEventCreate
  int (*event_destroy)(Handle ev) = nullptr;                  // cuEventDestroy_v2
  int (*event_record)(Handle ev, Handle stream) = nullptr;    // cuEventRecord
  int (*event_query)(Handle ev) = nullptr;                    // cuEventQuery
  int (*event_elapsed_ms)(float* ms, Handle start,
                          Handle end) = nullptr;                     // cuEventElapsedTime(_v2)
  int (*stream_is_capturing)(Handle stream, int* status) = nullptr;  // cuStreamIsCapturing
};

inline constexpr int kGpuNotReady = 600;  // the driver's "not ready" status (work not done yet)
inline constexpr int kGpuMaxValues = 16;  // values of one parked row
inline constexpr int kGpuDefaultPairs = 1024;

struct GpuTimerStats {
  bool enabled = false;
  std::string reason;           // why disabled ("" when enabled)
  std::uint64_t begun = 0;      // begin() calls that recorded a start event
  std::uint64_t completed = 0;  // rows written with a device time
  std::uint64_t exhausted = 0;  // begin() found no free pair (row written without device time)
  std::uint64_t skipped_capturing = 0;  // begin() on a stream being captured into a graph
  std::uint64_t abandoned = 0;          // a begun pair never ended (the bracketed call raised)
  std::uint64_t unfinished = 0;  // rows written at stop() before the device reached their end
  std::uint64_t errors = 0;      // driver calls that failed (the pair's row keeps no device time)
  std::uint64_t pending = 0;     // pairs parked now
};

// Opens the driver library (default "libcuda.so.1") and prepares a pool of `pairs` event pairs
// (events are created lazily, on the first begin(), in the caller's current device context).
// Returns "" when enabled, else the reason it stays disabled. Idempotent once enabled.
std::string gpu_timer_open(const std::string& library = "libcuda.so.1",
                           int pairs = kGpuDefaultPairs);
// Tests: the same with an injected driver table.
std::string gpu_timer_open_with(const GpuDriver& driver, int pairs = kGpuDefaultPairs);
// Destroys the events (when the context is still current) and disables the timer. Tests only.
void gpu_timer_reset() noexcept;
bool gpu_timer_enabled() noexcept;

// Records the start event of a free pair on `stream`; returns the pair's id, or -1 (disabled, no
// free pair, the stream is being captured, a driver error): end() with -1 writes the row at once.
std::int64_t gpu_timer_begin(std::uintptr_t stream) noexcept;
// Records the pair's end event on `stream` and parks the row; the collector writes it once the
// device passed the end event, with the elapsed device milliseconds in values[gpu_slot]. With
// pair < 0 (or any failure) the row is written now with NaN there. nvalues <= kGpuMaxValues.
void gpu_timer_end(std::int64_t pair, std::uintptr_t stream, std::uint32_t table,
                   std::uint32_t name, std::int64_t step, std::uint32_t ctx, std::int64_t ts_ns,
                   std::int64_t dur_ns, const double* values, int nvalues, int gpu_slot) noexcept;
// Collector side: writes the rows of the pairs the device has finished, oldest first; stops at
// the first unfinished one. With `final`, also writes the unfinished ones (device time empty) and
// frees every pair. Returns the rows written.
std::uint64_t gpu_timer_poll(bool final = false) noexcept;
GpuTimerStats gpu_timer_stats();

// One row the timer writes (what end() parked, with the device time filled in or NaN).
struct GpuTimerRow {
  std::uint32_t table = 0;
  std::uint32_t name = 0;
  std::uint32_t ctx = 0;
  std::int64_t step = -1;
  std::int64_t ts_ns = 0;
  std::int64_t dur_ns = 0;
  int nvalues = 0;
  double values[kGpuMaxValues] = {};
};
// Where rows go: nullptr (the default) = the engine's record path of the calling thread. Tests.
void gpu_timer_set_row_sink(void (*sink)(const GpuTimerRow&)) noexcept;

}  // namespace profilemate
