// The device-event pool (profilemate/gpu_timer.hpp). Collector layer: poll() runs on the collector
// thread, which drains what it records here in the same cycle.
#include "profilemate/gpu_timer.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"

namespace profilemate {
namespace {

enum PairState : std::uint8_t { kFree = 0, kBegun = 1, kParked = 2, kAbandoned = 3 };

struct Pair {
  GpuDriver::Handle start = nullptr;
  GpuDriver::Handle end = nullptr;
  std::atomic<std::uint8_t> state{kFree};
  GpuTimerRow row;
  int gpu_slot = -1;
};

struct Timer {
  GpuDriver drv;
  void* lib = nullptr;  // dlopen handle (nullptr with an injected table)
  std::atomic<bool> enabled{false};
  std::string reason = "not opened";
  int npairs = 0;
  std::unique_ptr<Pair[]> pairs;
  std::atomic<bool> events_ready{false};
  GpuDriver::Handle ctx = nullptr;  // the context the events belong to
  // Producer side (one producer at a time: the probes, under the interpreter lock).
  int head = 0;
  std::int64_t open_pair = -1;
  // Collector side.
  int tail = 0;
  std::atomic<std::uint64_t> begun{0}, completed{0}, exhausted{0}, skipped_capturing{0},
      abandoned{0}, unfinished{0}, errors{0}, pending{0};
};

Timer& timer() {
  static Timer* t = new Timer();  // never destroyed: the collector may poll during exit
  return *t;
}
std::mutex& open_mu() {
  static std::mutex* m = new std::mutex();
  return *m;
}
std::atomic<void (*)(const GpuTimerRow&)> g_sink{nullptr};
thread_local GpuDriver::Handle tls_ctx = nullptr;  // the context made current on this thread

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void emit(const GpuTimerRow& r) noexcept {
  if (auto* sink = g_sink.load(std::memory_order_acquire)) {
    sink(r);
    return;
  }
  record_row(EventKind::kSpan, r.table, r.name, r.ts_ns, r.dur_ns, r.step, r.ctx, r.values,
             r.nvalues);
}

GpuTimerRow make_row(std::uint32_t table, std::uint32_t name, std::int64_t step, std::uint32_t ctx,
                     std::int64_t ts_ns, std::int64_t dur_ns, const double* values, int nvalues) {
  GpuTimerRow r;
  r.table = table;
  r.name = name;
  r.ctx = ctx;
  r.step = step;
  r.ts_ns = ts_ns;
  r.dur_ns = dur_ns;
  r.nvalues = nvalues < 0 ? 0 : (nvalues > kGpuMaxValues ? kGpuMaxValues : nvalues);
  for (int i = 0; i < r.nvalues; ++i) r.values[i] = values[i];
  return r;
}

void set_slot(GpuTimerRow& r, int slot, double v) {
  if (slot >= 0 && slot < r.nvalues) r.values[slot] = v;
}

template <typename F>
bool load_sym(void* lib, F& out, const char* name, const char* alt = nullptr) {
  void* p = ::dlsym(lib, name);
  if (p == nullptr && alt != nullptr) p = ::dlsym(lib, alt);
  out = reinterpret_cast<F>(p);
  return p != nullptr;
}

std::string open_locked(Timer& t, const GpuDriver& d, int pairs) {
  if (pairs < 1 || pairs > (1 << 16)) return "pool size out of range (1..65536)";
  if (!d.ctx_get_current || !d.ctx_set_current || !d.event_create || !d.event_destroy ||
      !d.event_record || !d.event_query || !d.event_elapsed_ms) {
    return "the driver library lacks an entry point the timer needs";
  }
  t.drv = d;
  t.npairs = pairs;
  t.pairs = std::make_unique<Pair[]>(static_cast<std::size_t>(pairs));
  t.head = 0;
  t.tail = 0;
  t.open_pair = -1;
  t.events_ready.store(false, std::memory_order_relaxed);
  t.reason.clear();
  t.enabled.store(true, std::memory_order_release);
  return "";
}

// Creates the events in the caller's current context (the producer's, which owns the stream).
bool create_events(Timer& t) {
  GpuDriver::Handle ctx = nullptr;
  if (t.drv.ctx_get_current(&ctx) != 0 || ctx == nullptr) {
    t.reason = "no current device context in the thread that ran the first forward";
    t.enabled.store(false, std::memory_order_release);
    return false;
  }
  for (int i = 0; i < t.npairs; ++i) {
    Pair& p = t.pairs[static_cast<std::size_t>(i)];
    if (t.drv.event_create(&p.start, 0) != 0 || t.drv.event_create(&p.end, 0) != 0) {
      t.reason = "creating device events failed";
      t.enabled.store(false, std::memory_order_release);
      return false;
    }
  }
  t.ctx = ctx;
  t.events_ready.store(true, std::memory_order_release);
  return true;
}

}  // namespace

std::string gpu_timer_open(const std::string& library, int pairs) {
  std::lock_guard<std::mutex> lock(open_mu());
  Timer& t = timer();
  if (t.enabled.load(std::memory_order_acquire)) return "";
  void* lib = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = ::dlerror();
    t.reason = "device driver library " + library + " not loadable" +
               (e != nullptr ? std::string(": ") + e : std::string());
    return t.reason;
  }
  GpuDriver d;
  bool ok = load_sym(lib, d.ctx_get_current, "cuCtxGetCurrent") &&
            load_sym(lib, d.ctx_set_current, "cuCtxSetCurrent") &&
            load_sym(lib, d.event_create, "cuEventCreate") &&
            load_sym(lib, d.event_destroy, "cuEventDestroy_v2", "cuEventDestroy") &&
            load_sym(lib, d.event_record, "cuEventRecord") &&
            load_sym(lib, d.event_query, "cuEventQuery") &&
            load_sym(lib, d.event_elapsed_ms, "cuEventElapsedTime_v2", "cuEventElapsedTime");
  load_sym(lib, d.stream_is_capturing, "cuStreamIsCapturing");  // optional (older drivers)
  if (!ok) {
    ::dlclose(lib);
    t.reason = "device driver library " + library + " lacks an entry point the timer needs";
    return t.reason;
  }
  std::string r = open_locked(t, d, pairs);
  if (!r.empty()) {
    ::dlclose(lib);
    t.reason = r;
    return r;
  }
  t.lib = lib;
  return "";
}

std::string gpu_timer_open_with(const GpuDriver& driver, int pairs) {
  std::lock_guard<std::mutex> lock(open_mu());
  Timer& t = timer();
  if (t.enabled.load(std::memory_order_acquire)) return "";
  std::string r = open_locked(t, driver, pairs);
  if (!r.empty()) t.reason = r;
  return r;
}

void gpu_timer_reset() noexcept {
  std::lock_guard<std::mutex> lock(open_mu());
  Timer& t = timer();
  t.enabled.store(false, std::memory_order_release);
  if (t.events_ready.load(std::memory_order_acquire)) {
    for (int i = 0; i < t.npairs; ++i) {
      Pair& p = t.pairs[static_cast<std::size_t>(i)];
      if (p.start) t.drv.event_destroy(p.start);
      if (p.end) t.drv.event_destroy(p.end);
    }
  }
  t.pairs.reset();
  t.npairs = 0;
  t.events_ready.store(false, std::memory_order_release);
  t.ctx = nullptr;
  tls_ctx = nullptr;
  t.reason = "not opened";
  for (auto* c : {&t.begun, &t.completed, &t.exhausted, &t.skipped_capturing, &t.abandoned,
                  &t.unfinished, &t.errors, &t.pending})
    c->store(0, std::memory_order_relaxed);
  // The library stays loaded (another open() may reuse it; unloading a driver is not worth it).
}

bool gpu_timer_enabled() noexcept { return timer().enabled.load(std::memory_order_acquire); }

std::int64_t gpu_timer_begin(std::uintptr_t stream) noexcept {
  Timer& t = timer();
  if (!t.enabled.load(std::memory_order_acquire)) return -1;
  if (!t.events_ready.load(std::memory_order_acquire) && !create_events(t)) return -1;
  if (t.open_pair >= 0) {  // the previous bracket never ended (its call raised): hand it back
    t.pairs[static_cast<std::size_t>(t.open_pair)].state.store(kAbandoned,
                                                               std::memory_order_release);
    t.abandoned.fetch_add(1, std::memory_order_relaxed);
    t.open_pair = -1;
  }
  auto* s = reinterpret_cast<GpuDriver::Handle>(stream);
  if (t.drv.stream_is_capturing != nullptr) {
    int status = 0;
    // An event recorded into a capture would become a graph node: never time inside one.
    if (t.drv.stream_is_capturing(s, &status) != 0 || status != 0) {
      t.skipped_capturing.fetch_add(1, std::memory_order_relaxed);
      return -1;
    }
  }
  const int i = t.head;
  Pair& p = t.pairs[static_cast<std::size_t>(i)];
  if (p.state.load(std::memory_order_acquire) != kFree) {
    t.exhausted.fetch_add(1, std::memory_order_relaxed);
    return -1;
  }
  if (t.drv.event_record(p.start, s) != 0) {
    t.errors.fetch_add(1, std::memory_order_relaxed);
    return -1;
  }
  p.state.store(kBegun, std::memory_order_relaxed);  // only the producer reads kBegun's meaning
  t.head = (i + 1) % t.npairs;
  t.open_pair = i;
  t.begun.fetch_add(1, std::memory_order_relaxed);
  return i;
}

void gpu_timer_end(std::int64_t pair, std::uintptr_t stream, std::uint32_t table,
                   std::uint32_t name, std::int64_t step, std::uint32_t ctx, std::int64_t ts_ns,
                   std::int64_t dur_ns, const double* values, int nvalues, int gpu_slot) noexcept {
  Timer& t = timer();
  GpuTimerRow row = make_row(table, name, step, ctx, ts_ns, dur_ns, values, nvalues);
  set_slot(row, gpu_slot, kNaN);
  if (pair < 0 || pair != t.open_pair || !t.enabled.load(std::memory_order_acquire)) {
    emit(row);
    return;
  }
  Pair& p = t.pairs[static_cast<std::size_t>(pair)];
  t.open_pair = -1;
  if (t.drv.event_record(p.end, reinterpret_cast<GpuDriver::Handle>(stream)) != 0) {
    t.errors.fetch_add(1, std::memory_order_relaxed);
    p.state.store(kAbandoned, std::memory_order_release);
    emit(row);
    return;
  }
  p.row = row;
  p.gpu_slot = gpu_slot;
  t.pending.fetch_add(1, std::memory_order_relaxed);
  p.state.store(kParked, std::memory_order_release);  // the collector may take it from here on
}

std::uint64_t gpu_timer_poll(bool final) noexcept {
  Timer& t = timer();
  if (!t.events_ready.load(std::memory_order_acquire)) return 0;
  if (tls_ctx != t.ctx) {  // the events' context, current on the collector thread too
    if (t.drv.ctx_set_current(t.ctx) != 0) {
      t.errors.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    tls_ctx = t.ctx;
  }
  std::uint64_t written = 0;
  for (int n = 0; n < t.npairs; ++n) {
    Pair& p = t.pairs[static_cast<std::size_t>(t.tail)];
    const std::uint8_t s = p.state.load(std::memory_order_acquire);
    if (s == kFree || s == kBegun) break;  // nothing parked here yet
    if (s == kParked) {
      const int q = t.drv.event_query(p.end);  // never a wait
      if (q == kGpuNotReady && !final) break;
      if (q == 0) {
        float ms = 0;
        if (t.drv.event_elapsed_ms(&ms, p.start, p.end) == 0) {
          set_slot(p.row, p.gpu_slot, static_cast<double>(ms));
          t.completed.fetch_add(1, std::memory_order_relaxed);
        } else {
          t.errors.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (q == kGpuNotReady) {
        t.unfinished.fetch_add(1, std::memory_order_relaxed);
      } else {
        t.errors.fetch_add(1, std::memory_order_relaxed);
      }
      emit(p.row);
      ++written;
      t.pending.fetch_sub(1, std::memory_order_relaxed);
    }
    p.state.store(kFree, std::memory_order_release);
    t.tail = (t.tail + 1) % t.npairs;
  }
  return written;
}

GpuTimerStats gpu_timer_stats() {
  std::lock_guard<std::mutex> lock(open_mu());
  Timer& t = timer();
  GpuTimerStats s;
  s.enabled = t.enabled.load(std::memory_order_acquire);
  s.reason = s.enabled ? std::string() : t.reason;
  s.begun = t.begun.load(std::memory_order_relaxed);
  s.completed = t.completed.load(std::memory_order_relaxed);
  s.exhausted = t.exhausted.load(std::memory_order_relaxed);
  s.skipped_capturing = t.skipped_capturing.load(std::memory_order_relaxed);
  s.abandoned = t.abandoned.load(std::memory_order_relaxed);
  s.unfinished = t.unfinished.load(std::memory_order_relaxed);
  s.errors = t.errors.load(std::memory_order_relaxed);
  s.pending = t.pending.load(std::memory_order_relaxed);
  return s;
}

void gpu_timer_set_row_sink(void (*sink)(const GpuTimerRow&)) noexcept {
  g_sink.store(sink, std::memory_order_release);
}

}  // namespace profilemate
