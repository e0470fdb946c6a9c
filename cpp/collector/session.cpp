// Sessions and the public entry points of engine.hpp: start/stop/flush, option checks, tables,
// strings, stats. The lock order is in state.hpp; the ring registry, the collector and the process
// hooks are in their own files next to this one.
#include <fcntl.h>
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

// ---- start, stop and the forked child (caller holds g().control) -----------------------------

namespace {

// The eventfd the collector sleeps on: created once; in a forked child, replaced in place (dup3
// onto the same number, so the signal handler never sees a closed one) before the child's collector
// uses it, since the inherited one is shared with the parent.
void own_wake_fd() {
  Global& gl = g();
  if (gl.wake_fd < 0) {
    gl.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (gl.wake_fd < 0) throw_os(errno, "eventfd", "create");
    return;
  }
  if (!gl.wake_fd_shared) return;
  const int fresh = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fresh < 0) throw_os(errno, "eventfd", "create");
  const int rc = ::dup3(fresh, gl.wake_fd, O_CLOEXEC);
  const int err = errno;
  ::close(fresh);
  if (rc < 0) throw_os(err, "eventfd", "replace");
  gl.wake_fd_shared = false;
}

void reset_published(std::int64_t ring_capacity) {
  std::lock_guard<std::mutex> stats_lock(g().stats_mu);
  g().published = Stats{};
  g().published.ring_capacity = static_cast<std::uint64_t>(ring_capacity);
}

// Opens the session and starts its collector; recording begins under `epoch`. Returns the dir.
std::string start_locked(const StartOptions& options, std::uint32_t epoch) {
  Global& gl = g();
  own_wake_fd();
  set_ring_capacity(options.ring_capacity);
  auto s = open_session(options);
  install_hooks_once();
  reset_published(options.ring_capacity);
  spawn_collector(*s);
  const std::string dir = s->pipeline.info().process_dir;
  gl.session = s.release();
  detail::g_epoch.store(epoch, std::memory_order_release);
  return dir;
}

void stop_locked() noexcept {
  Global& gl = g();
  Session* s = gl.session;
  if (s == nullptr) return;
  detail::g_epoch.store(0, std::memory_order_release);
  s->stop_requested.store(true, std::memory_order_release);
  wake_collector();
  s->thread->join();  // its last cycle drains every ring, closes the trace, writes summary.json
  gl.collector_live.store(false, std::memory_order_release);
  sweep_after_final_cycle(*s);
  gl.session = nullptr;
  delete s;
}

// The options a session was started with, "now" (session_start_ns 0) resolved, so a session
// started again from them (forked child, relabel) keeps the same time zero.
StartOptions resolved_options(const Session& s) {
  StartOptions o = s.options;
  o.session_start_ns = s.pipeline.info().session_start_ns;
  return o;
}

// Forked child: lets go of the parent's session and rings (closing its descriptors without
// writing) and returns its options. Recording stays at g_epoch until the caller decides.
StartOptions release_inherited() noexcept {
  Global& gl = g();
  Session* old = gl.inherited;
  StartOptions o = resolved_options(*old);
  old->pipeline.abandon();
  // The parent's collector thread does not exist here: leak its handle (destroying or joining a
  // std::thread of another process is undefined).
  (void)old->thread.release();
  delete old;
  gl.inherited = nullptr;
  gl.child_pending.store(false, std::memory_order_release);
  free_detached_rings();
  return o;
}

// Forked child: starts the inherited session as this process's (under `label` if not empty). A bad
// label changes nothing; any other failure leaves this child not recording.
std::string start_child_locked(std::string_view label) {
  if (!label.empty()) {
    StartOptions check = g().inherited->options;
    check.label = std::string(label);
    validate(check);
  }
  StartOptions o = release_inherited();
  if (!label.empty()) o.label = std::string(label);
  const std::uint32_t epoch = detail::g_epoch.load(std::memory_order_relaxed);
  try {
    return start_locked(o, epoch != 0 ? epoch : next_epoch());
  } catch (...) {
    detail::g_epoch.store(0, std::memory_order_release);
    reset_published(o.ring_capacity);
    throw;
  }
}

}  // namespace

std::uint32_t start_forked_child() noexcept {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (!gl.child_pending.load(std::memory_order_relaxed)) {
    return detail::g_epoch.load(std::memory_order_acquire);  // another thread started it
  }
  try {
    start_child_locked({});
    return detail::g_epoch.load(std::memory_order_relaxed);
  } catch (const std::exception& e) {
    std::string_view why = e.what();
    if (why.starts_with("profilemate: ")) why.remove_prefix(13);  // the line has our prefix
    warn_line("this forked child does not record: " + std::string(why));
  } catch (...) {
  }
  return 0;
}

}  // namespace collector

// ---------------------------------------------------------------------------------------------
// Public API.

using collector::g;
using collector::Global;
using collector::Session;

namespace {
// The running session's folder; in a forked child that has not recorded yet, the folder its
// first event will create. Caller holds g().control.
std::string process_dir_locked() {
  const Global& gl = g();
  if (gl.session != nullptr) return gl.session->pipeline.info().process_dir;
  if (gl.child_pending.load(std::memory_order_relaxed) && gl.inherited != nullptr) {
    return collector::make_process_dir(gl.inherited->options,
                                       static_cast<std::int32_t>(::getpid()));
  }
  return {};
}
}  // namespace

std::string start(const StartOptions& options) {
  collector::validate(options);
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (gl.session != nullptr || gl.child_pending.load(std::memory_order_relaxed)) {
    throw std::runtime_error("profilemate: the core is already started (" + process_dir_locked() +
                             "); call stop() first");
  }
  return collector::start_locked(options, collector::next_epoch());
}

std::string relabel(std::string_view label) {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (gl.child_pending.load(std::memory_order_relaxed)) {
    return collector::start_child_locked(label);
  }
  Session* s = gl.session;
  if (s == nullptr) {
    throw std::runtime_error("profilemate: relabel() needs a started core; call start() first");
  }
  if (s->options.label == label) return s->pipeline.info().process_dir;
  StartOptions o = collector::resolved_options(*s);
  o.label = std::string(label);
  collector::validate(o);
  collector::stop_locked();
  return collector::start_locked(o, collector::next_epoch());
}

void stop() noexcept {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (gl.child_pending.load(std::memory_order_relaxed)) {
    // A forked child that never recorded: nothing to write, no folder to make.
    detail::g_epoch.store(0, std::memory_order_release);
    const StartOptions o = collector::release_inherited();
    try {
      collector::reset_published(o.ring_capacity);
    } catch (...) {
    }
    return;
  }
  collector::stop_locked();
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
  return process_dir_locked();
}

std::uint32_t define_table(std::string_view name,
                           const std::vector<std::pair<std::string, std::string>>& columns) {
  return TableRegistry::global().define(name, columns);
}

std::uint32_t intern(std::string_view s) { return Interner::global().intern(s); }

Stats stats() {
  if (g().child_pending.load(std::memory_order_acquire)) {
    Stats fresh;  // a forked child that has not recorded yet (what was published is the parent's)
    fresh.ring_capacity = static_cast<std::uint64_t>(collector::ring_capacity());
    return fresh;
  }
  std::lock_guard<std::mutex> lock(g().stats_mu);
  return g().published;
}

}  // namespace profilemate
