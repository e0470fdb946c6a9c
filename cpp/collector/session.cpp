// Sessions and the public entry points of engine.hpp: start/stop/flush, option checks, tables,
// strings, stats. The lock order is in state.hpp; the ring registry, the collector and the process
// hooks are in their own files next to this one.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "collector/collector.hpp"
#include "collector/process_hooks.hpp"
#include "collector/ring_registry.hpp"
#include "collector/state.hpp"
#include "core/file_writer.hpp"
#include "core/log.hpp"
#include "profilemate/engine.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"

namespace profilemate {

namespace detail {
std::atomic<std::uint32_t> g_epoch{0};
std::atomic<std::int64_t> g_step{-1};
std::atomic<std::uint64_t> g_invalid_table{0};
}  // namespace detail

namespace collector {

Global& g() {
  static Global* instance = new Global();
  return *instance;
}

std::uint32_t next_epoch() noexcept {
  if (++g().last_epoch == 0) ++g().last_epoch;
  return g().last_epoch;
}

namespace {

bool is_power_of_two(std::int64_t v) noexcept { return v > 0 && (v & (v - 1)) == 0; }

void validate(const StartOptions& o) {
  if (o.session_dir.empty()) {
    throw std::invalid_argument("profilemate: session_dir must be a non-empty path");
  }
  if (o.label.empty() || o.label.find('/') != std::string::npos || o.label == "." ||
      o.label == "..") {
    throw std::invalid_argument("profilemate: label must be a non-empty name without '/' (got '" +
                                o.label + "')");
  }
  if (o.ring_capacity < kMinRingCapacity || o.ring_capacity > kMaxRingCapacity ||
      !is_power_of_two(o.ring_capacity)) {
    throw std::invalid_argument("profilemate: ring_capacity must be a power of two between " +
                                std::to_string(kMinRingCapacity) + " and " +
                                std::to_string(kMaxRingCapacity) + " (got " +
                                std::to_string(o.ring_capacity) + ")");
  }
  if (o.flush_interval_ms < kMinFlushIntervalMs || o.flush_interval_ms > kMaxFlushIntervalMs) {
    throw std::invalid_argument("profilemate: flush_interval_ms must be an integer from 1 to " +
                                std::to_string(kMaxFlushIntervalMs) + " (got " +
                                std::to_string(o.flush_interval_ms) + ")");
  }
}

[[noreturn]] void throw_os(int err, const std::string& path, const std::string& doing) {
  throw OsError(err, path, "profilemate: cannot " + doing + " " + path + ": " + errno_text(err));
}

std::string make_process_dir(const StartOptions& o, std::int32_t pid) {
  return o.session_dir + "/" + o.label + "-" + std::to_string(pid);
}

}  // namespace

std::unique_ptr<Session> open_session(const StartOptions& o) {
  const std::int32_t pid = static_cast<std::int32_t>(::getpid());
  const std::string dir = make_process_dir(o, pid);
  // The session folder and its missing parents (0700), then the process folder itself: created
  // 0700 by us, or an existing real folder of ours; never a symbolic link or another user's.
  if (int err = make_dirs(o.session_dir)) throw_os(err, dir, "create the output folder");
  std::string why;
  if (int err = make_private_dir(dir, &why)) {
    if (why.empty()) throw_os(err, dir, "create the output folder");
    throw OsError(err, dir, "profilemate: refusing the output folder " + dir + ": " + why);
  }
  {
    // Tables' CSV files are created lazily; prove now that files can be created here. A new file
    // under an unpredictable name (O_EXCL), so nothing planted at a known name is written to.
    FileWriter w;
    if (int err = w.open_temp(dir + "/.profilemate-write-test-XXXXXX")) {
      throw_os(err, dir, "write to the output folder");
    }
    w.buf().append("ok\n");
    const int err = w.write_pending();
    w.close_fd();
    ::unlink(w.path().c_str());
    if (err != 0) throw_os(err, dir, "write to the output folder");
  }
  ProcessInfo info;
  info.pid = pid;
  info.label = o.label;
  info.process_dir = dir;
  info.session_start_ns = o.session_start_ns != 0 ? o.session_start_ns : now_ns();
  auto s = std::make_unique<Session>(o, std::move(info));
  if (!s->pipeline.open()) {
    const IoError& e = s->pipeline.error();
    throw_os(e.err, e.path, "write");
  }
  s->invalid_table_base = detail::g_invalid_table.load(std::memory_order_relaxed);
  s->lost_base = lost_events();
  s->snapshots_missed_base = g().signal_snapshots_missed.load(std::memory_order_relaxed);
  // Rings surviving from an earlier session: drop stale contents, re-base counters.
  rebase_rings();
  return s;
}

}  // namespace collector

// ---------------------------------------------------------------------------------------------
// Public API.

using collector::g;
using collector::Global;
using collector::Session;

std::string start(const StartOptions& options) {
  collector::validate(options);
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (gl.session != nullptr) {
    throw std::runtime_error("profilemate: the core is already started (" +
                             gl.session->pipeline.info().process_dir + "); call stop() first");
  }
  if (gl.wake_fd < 0) {
    gl.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (gl.wake_fd < 0) collector::throw_os(errno, "eventfd", "create");
  }
  collector::set_ring_capacity(options.ring_capacity);
  auto s = collector::open_session(options);
  collector::install_hooks_once();
  {
    std::lock_guard<std::mutex> stats_lock(gl.stats_mu);
    gl.published = Stats{};
    gl.published.ring_capacity = static_cast<std::uint64_t>(options.ring_capacity);
  }
  collector::spawn_collector(*s);
  const std::string dir = s->pipeline.info().process_dir;
  gl.session = s.release();
  detail::g_epoch.store(collector::next_epoch(), std::memory_order_release);
  return dir;
}

void stop() noexcept {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  Session* s = gl.session;
  if (s == nullptr) return;
  detail::g_epoch.store(0, std::memory_order_release);
  s->stop_requested.store(true, std::memory_order_release);
  collector::wake_collector();
  s->thread->join();  // its last cycle drains every ring, closes the trace, writes summary.json
  gl.collector_live.store(false, std::memory_order_release);
  collector::sweep_after_final_cycle(*s);
  gl.session = nullptr;
  delete s;
}

void flush() noexcept {
  Global& gl = g();
  std::uint64_t target;
  {
    std::lock_guard<std::mutex> lock(gl.control);
    if (gl.session == nullptr) return;
    // A cycle that begins after this point drains everything recorded before it (also the final
    // cycle of a stop() that comes first: cycle numbers are process-wide).
    target = gl.cycle_begin.load(std::memory_order_acquire) + 1;
    collector::wake_collector();
  }
  // Waits without the control lock, so a slow collector holds up neither fork() nor start()/stop().
  // In slices: the collector only tries wait_mu, so a notify may be missed, never for long.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(gl.flush_timeout_ms.load());
  std::unique_lock<std::mutex> wait(gl.wait_mu);
  while (gl.cycle_end.load(std::memory_order_acquire) < target) {
    if (std::chrono::steady_clock::now() >= deadline) {
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) {
        warn_line("flush() timed out after " + std::to_string(gl.flush_timeout_ms.load()) +
                  " ms waiting for the collector; rows recorded before it may not be written yet");
      }
      return;
    }
    gl.wait_cv.wait_for(wait, std::chrono::milliseconds(20));
  }
}

bool enabled() noexcept { return recording(); }

std::string process_dir() {
  std::lock_guard<std::mutex> lock(g().control);
  return g().session ? g().session->pipeline.info().process_dir : std::string();
}

std::uint32_t define_table(std::string_view name,
                           const std::vector<std::pair<std::string, std::string>>& columns) {
  return TableRegistry::global().define(name, columns);
}

std::uint32_t intern(std::string_view s) { return Interner::global().intern(s); }

Stats stats() {
  std::lock_guard<std::mutex> lock(g().stats_mu);
  return g().published;
}

}  // namespace profilemate
