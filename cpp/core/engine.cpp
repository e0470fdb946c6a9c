// The engine: sessions, the ring registry, the collector thread, and the process-level hooks
// (SIGTERM/SIGINT, fork, exit).
//
// Lock order (a thread holding one may take only those to its right):
//   g.control -> Session::cycle_mu -> TableRegistry::mu -> Interner::mu -> g.stats_mu
//   -> Session::wait_mu
// The fork prepare handler takes the first five in this order, so fork() cannot split a critical
// section and the child starts with every lock free. Producers (record_*) take no lock at all; the
// collector takes only cycle_mu, stats_mu and wait_mu and reads tables and interned strings
// lock-free, so it never waits on a recording thread. The signal handler takes no lock.
//
// Ring registry: a lock-free singly linked list. Threads push their ring at the head (CAS); only
// the collector unlinks and frees rings (those whose thread exited and that are drained), so no
// other thread ever dereferences a freed ring: producers only touch their own ring, and nobody else
// walks the list while a collector runs (start() walks it only before its collector starts).
#include "profilemate/engine.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "core/file_writer.hpp"
#include "core/pipeline.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"

namespace profilemate {

namespace detail {
std::atomic<std::uint32_t> g_epoch{0};
std::atomic<std::int64_t> g_step{-1};
std::atomic<std::uint64_t> g_invalid_table{0};
constinit thread_local Ring* tls_ring = nullptr;
constinit thread_local std::uint32_t tls_epoch = 0;
}  // namespace detail

namespace {

// ---------------------------------------------------------------------------------------------
// Process-wide state. Leaked on purpose: atexit handlers, signal handlers and threads that outlive
// static destruction may still touch it.

struct Session {
  StartOptions options;
  Pipeline pipeline;
  std::unique_ptr<std::thread> thread;
  std::atomic<bool> stop_requested{false};
  std::mutex cycle_mu;  // held for the duration of one drain cycle
  std::mutex wait_mu;   // flush() waiters
  std::condition_variable wait_cv;
  std::int64_t interval_ms;
  std::int64_t clock_monotonic_ns;
  std::int64_t clock_realtime_ns;
  // Collector-private counters.
  std::uint64_t recorded = 0;
  std::uint64_t dropped = 0;
  std::uint64_t dropped_by_table[kMaxTables] = {};
  std::uint64_t write_errors = 0;
  std::uint64_t cycles = 0;
  std::uint64_t invalid_table_base = 0;

  Session(StartOptions o, ProcessInfo info)
      : options(std::move(o)),
        pipeline(std::move(info), options.trace),
        interval_ms(options.flush_interval_ms),
        clock_monotonic_ns(now_ns()),
        clock_realtime_ns(wall_now_ns()) {}
};

struct Global {
  std::mutex control;  // serialises start/stop/flush/fork; guards `session`
  Session* session = nullptr;
  std::mutex stats_mu;
  Stats published;
  std::atomic<Ring*> rings{nullptr};
  std::atomic<std::int64_t> ring_capacity{65536};
  // Wakes the collector. One eventfd for the life of the process (re-created in place with dup3
  // in a forked child) so the signal handler never writes to a descriptor that was closed and
  // reused. Its counters let the signal handler wait for a complete cycle without locks.
  int wake_fd = -1;
  std::atomic<std::uint64_t> cycle_begin{0};
  std::atomic<std::uint64_t> cycle_end{0};
  std::atomic<bool> collector_live{false};
  std::atomic<int> signal_pending{0};
  std::uint32_t last_epoch = 0;  // guarded by control
  bool hooks_installed = false;
  struct sigaction prev_term {};
  struct sigaction prev_int {};
};

Global& g() {
  static Global* instance = new Global();
  return *instance;
}

// A new session epoch (never 0, which means "off"). Caller holds g().control.
std::uint32_t next_epoch() noexcept {
  if (++g().last_epoch == 0) ++g().last_epoch;
  return g().last_epoch;
}

std::int32_t current_tid() noexcept { return static_cast<std::int32_t>(::syscall(SYS_gettid)); }

void wake_collector() noexcept {
  const std::uint64_t one = 1;
  // Async-signal-safe. EAGAIN only if the counter is saturated, which still wakes the collector.
  [[maybe_unused]] ssize_t n = ::write(g().wake_fd, &one, sizeof one);
}

// One line on stderr with write(2): usable from any thread, never buffered behind a crash.
void warn_line(const std::string& text) noexcept {
  const std::string line = "profilemate: " + text + "\n";
  [[maybe_unused]] ssize_t n = ::write(2, line.data(), line.size());
}

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (possibly not buf).
  return std::string(::strerror_r(err, buf, sizeof buf));
}

// ---------------------------------------------------------------------------------------------
// Thread registration and exit.

constinit thread_local bool tls_exiting = false;

struct ThreadGuard {
  bool armed = false;
  ~ThreadGuard() {
    // The thread is exiting: its ring is handed to the collector, which drains what is left and
    // frees it. Events recorded later during TLS teardown of this thread are ignored.
    tls_exiting = true;
    if (Ring* r = detail::tls_ring) {
      detail::tls_ring = nullptr;
      r->mark_orphaned();
    }
  }
};

std::string current_thread_name() {
  char buf[64] = {};
  if (::pthread_getname_np(::pthread_self(), buf, sizeof buf) != 0) return {};
  return buf;
}

void push_ring(Ring* r) noexcept {
  Ring* head = g().rings.load(std::memory_order_relaxed);
  do {
    r->next = head;
    // release: the collector's acquire load of the head sees the ring fully constructed.
  } while (!g().rings.compare_exchange_weak(head, r, std::memory_order_release,
                                            std::memory_order_relaxed));
}

// Unlinks r (collector only). prev is the node before r as of the collector's walk, or nullptr if
// r was the head then; new rings may have been pushed in front of it since.
void unlink_ring(Ring* r, Ring* prev) noexcept {
  if (prev != nullptr) {
    prev->next = r->next;
    return;
  }
  Ring* expected = r;
  if (g().rings.compare_exchange_strong(expected, r->next, std::memory_order_acq_rel)) return;
  // Rings were pushed in front of r: they are stable now (pushers only touch the head).
  for (Ring* p = g().rings.load(std::memory_order_acquire); p != nullptr; p = p->next) {
    if (p->next == r) {
      p->next = r->next;
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The collector.

void account(Session& s, Ring& r) {
  const std::uint64_t pushed = r.pushed();
  s.recorded += pushed - r.seen_pushed;
  r.seen_pushed = pushed;
  const std::uint64_t dropped = r.dropped();
  if (dropped != r.seen_dropped) {
    s.dropped += dropped - r.seen_dropped;
    r.seen_dropped = dropped;
    for (std::uint32_t t = 0; t < kMaxTables; ++t) {
      const std::uint64_t d = r.dropped_for(t);
      s.dropped_by_table[t] += d - r.seen_dropped_by_table[t];
      r.seen_dropped_by_table[t] = d;
    }
  }
}

// Re-bases a ring on the current session: what it holds and counted before belongs to no one.
void rebase_ring(Ring& r) {
  r.discard();
  r.seen_pushed = r.pushed();
  r.seen_dropped = r.dropped();
  for (std::uint32_t t = 0; t < kMaxTables; ++t) r.seen_dropped_by_table[t] = r.dropped_for(t);
  r.named_in_trace = false;
}

void on_io_error(Session& s) {
  if (s.write_errors++ > 0) return;
  // Recording becomes a no-op; the host keeps running. One line, naming the path and the fix.
  detail::g_epoch.store(0, std::memory_order_relaxed);
  const IoError& e = s.pipeline.error();
  warn_line("cannot write " + e.path + ": " + errno_text(e.err) +
            "; recording is off for this process (set PROFILEMATE_DIR to a writable folder with "
            "free space)");
}

SummaryCounters summary_counters(const Session& s, bool final) {
  SummaryCounters c;
  c.recorded = s.recorded;
  c.dropped = s.dropped;
  c.written_rows = s.pipeline.written_rows();
  c.write_errors = s.write_errors;
  c.invalid_events =
      s.pipeline.invalid_events() +
      (detail::g_invalid_table.load(std::memory_order_relaxed) - s.invalid_table_base);
  const TableRegistry& tables = TableRegistry::global();
  for (std::uint32_t t = 0; t < kMaxTables; ++t) {
    if (s.dropped_by_table[t] == 0) continue;
    const TableDef* d = tables.get(t);
    c.dropped_by_table[d ? d->name : "#" + std::to_string(t)] += s.dropped_by_table[t];
  }
  c.clock_monotonic_ns = s.clock_monotonic_ns;
  c.clock_realtime_ns = s.clock_realtime_ns;
  c.written_at_ns = now_ns();
  c.final = final;
  return c;
}

void write_summary(Session& s, bool final) {
  if (s.pipeline.failed()) return;
  const std::string path = s.pipeline.info().process_dir + "/summary.json";
  const std::string text =
      render_summary(s.pipeline.info(), s.pipeline.aggregates(), summary_counters(s, final));
  if (int err = write_file_atomic(path, text)) {
    if (s.write_errors++ == 0) {
      detail::g_epoch.store(0, std::memory_order_relaxed);
      warn_line("cannot write " + path + ": " + errno_text(err) +
                "; recording is off for this process (set PROFILEMATE_DIR to a writable folder "
                "with free space)");
    }
  }
}

void publish_stats(Session& s, std::uint64_t live_rings) {
  const SummaryCounters c = summary_counters(s, false);
  std::lock_guard<std::mutex> lock(g().stats_mu);
  Stats& p = g().published;
  p.recorded = c.recorded;
  p.dropped = c.dropped;
  p.written_rows = c.written_rows;
  p.rings = live_rings;
  p.ring_capacity = static_cast<std::uint64_t>(s.options.ring_capacity);
  p.write_errors = s.write_errors;
  p.invalid_events = c.invalid_events;
  p.cycles = s.cycles;
  p.dropped_by_table = c.dropped_by_table;
}

// One drain cycle. Returns the largest number of events taken from one ring (the collector
// shortens its sleep when rings fill fast, so bursts do not overflow them).
std::uint64_t run_cycle(Session& s, bool final) {
  std::lock_guard<std::mutex> cycle(s.cycle_mu);
  const std::uint64_t n = g().cycle_begin.fetch_add(1, std::memory_order_acq_rel) + 1;
  std::uint64_t busiest = 0;
  std::uint64_t live = 0;
  Ring* prev = nullptr;
  for (Ring* r = g().rings.load(std::memory_order_acquire); r != nullptr;) {
    Ring* next = r->next;
    // Read the orphan flag before draining: everything the thread published happened before it
    // set the flag, so a drain after seeing it empties the ring for good.
    const bool orphaned = r->orphaned();
    if (!r->named_in_trace) {
      s.pipeline.on_thread(r->tid(), r->thread_name());
      r->named_in_trace = true;
    }
    const std::int32_t tid = r->tid();
    const std::uint64_t drained = r->drain([&](const Event* ev, std::size_t k) {
      if (!s.pipeline.consume(ev, k, tid) && s.write_errors == 0) on_io_error(s);
    });
    busiest = std::max(busiest, drained);
    account(s, *r);
    if (orphaned) {
      unlink_ring(r, prev);
      delete r;
    } else {
      prev = r;
      ++live;
    }
    r = next;
  }
  if (!s.pipeline.flush() && s.write_errors == 0) on_io_error(s);
  if (final) {
    if (!s.pipeline.finish() && s.write_errors == 0) on_io_error(s);
    write_summary(s, true);
  } else if (g().signal_pending.exchange(0, std::memory_order_acq_rel) != 0) {
    write_summary(s, false);  // the process may be about to die: leave a digest behind
  }
  ++s.cycles;
  publish_stats(s, live);
  g().cycle_end.store(n, std::memory_order_release);
  { std::lock_guard<std::mutex> lock(s.wait_mu); }
  s.wait_cv.notify_all();
  return busiest;
}

void collector_main(Session* s) {
  // Sleep at most the flush interval, but wake early enough that the busiest ring, filling at the
  // rate seen in the last cycle, reaches only half its capacity: rings are sized for bursts, and
  // steady high rates are absorbed by draining more often rather than by dropping.
  const auto half_ring = static_cast<double>(s->options.ring_capacity) / 2;
  int timeout_ms = static_cast<int>(s->interval_ms);
  std::int64_t last_cycle_ns = now_ns();
  for (;;) {
    pollfd p{g().wake_fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN)) {
      std::uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(g().wake_fd, &v, sizeof v);
    }
    const bool stopping = s->stop_requested.load(std::memory_order_acquire);
    const std::int64_t cycle_ns = now_ns();
    const std::uint64_t busiest = run_cycle(*s, stopping);
    if (stopping) return;
    const double elapsed_ms =
        static_cast<double>(std::max<std::int64_t>(cycle_ns - last_cycle_ns, 1)) / 1e6;
    last_cycle_ns = cycle_ns;
    const double per_ms = static_cast<double>(busiest) / elapsed_ms;
    const double until_half = per_ms > 0 ? half_ring / per_ms : static_cast<double>(s->interval_ms);
    timeout_ms = static_cast<int>(std::clamp(until_half, 1.0, static_cast<double>(s->interval_ms)));
  }
}

// Starts the collector with every signal blocked, so SIGTERM/SIGINT are never delivered to it:
// the handler waits for the collector, which would deadlock on its own thread.
void spawn_collector(Session& s) {
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  s.thread = std::make_unique<std::thread>(collector_main, &s);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  g().collector_live.store(true, std::memory_order_release);
}

// ---------------------------------------------------------------------------------------------
// Process hooks.

void on_signal(int sig, siginfo_t* info, void* uctx) {
  const int saved_errno = errno;
  if (g().collector_live.load(std::memory_order_acquire)) {
    // Only async-signal-safe work: atomics, write(2) to the eventfd, clock_gettime, nanosleep.
    // Ask for a cycle that starts after this point (it also refreshes summary.json) and wait up to
    // 2 s for it; the collector never runs this handler (its signals are blocked).
    g().signal_pending.store(1, std::memory_order_release);
    const std::uint64_t target = g().cycle_begin.load(std::memory_order_acquire) + 1;
    wake_collector();
    const std::int64_t deadline = now_ns() + 2'000'000'000;
    while (g().cycle_end.load(std::memory_order_acquire) < target && now_ns() < deadline) {
      const timespec ts{0, 1'000'000};
      ::nanosleep(&ts, nullptr);
    }
  }
  errno = saved_errno;
  // Chain to what was installed before us, keeping its behaviour.
  const struct sigaction& prev = sig == SIGTERM ? g().prev_term : g().prev_int;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, uctx);
  } else if (prev.sa_handler == SIG_IGN) {
    // ignored before us: stay ignored
  } else if (prev.sa_handler == SIG_DFL) {
    // Default action (terminate): restore it and re-deliver, so the exit status says "killed by
    // SIGTERM/SIGINT" as it would without us.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(sig);
  } else {
    prev.sa_handler(sig);
  }
}

void install_signal(int sig, struct sigaction& prev) {
  struct sigaction cur {};
  ::sigaction(sig, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_signal) return;  // already ours
  struct sigaction sa {};
  sa.sa_sigaction = on_signal;
  // Keep the previous handler's restart/stack flags: Python installs SIGINT without SA_RESTART so
  // a blocking read returns EINTR and KeyboardInterrupt is raised promptly; we must not change
  // that.
  sa.sa_flags = SA_SIGINFO | (cur.sa_flags & (SA_RESTART | SA_ONSTACK));
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGINT);
  prev = cur;
  ::sigaction(sig, &sa, nullptr);
}

void atfork_prepare() {
  Global& gl = g();
  gl.control.lock();
  if (gl.session != nullptr) gl.session->cycle_mu.lock();  // collector is between cycles
  TableRegistry::global().mutex().lock();
  Interner::global().mutex().lock();
  gl.stats_mu.lock();
}

void atfork_parent() {
  Global& gl = g();
  gl.stats_mu.unlock();
  Interner::global().mutex().unlock();
  TableRegistry::global().mutex().unlock();
  if (gl.session != nullptr) gl.session->cycle_mu.unlock();
  gl.control.unlock();
}

std::string make_process_dir(const StartOptions& o, std::int32_t pid) {
  return o.session_dir + "/" + o.label + "-" + std::to_string(pid);
}

std::unique_ptr<Session> open_session(const StartOptions& o);

void atfork_child() {
  // Only this thread exists now. Everything inherited that belongs to the parent's session (its
  // rings, buffered rows, open files) is the parent's: discard it without writing.
  Global& gl = g();
  gl.stats_mu.unlock();
  Interner::global().mutex().unlock();
  TableRegistry::global().mutex().unlock();

  detail::g_epoch.store(0, std::memory_order_relaxed);
  gl.collector_live.store(false, std::memory_order_relaxed);
  gl.signal_pending.store(0, std::memory_order_relaxed);
  // A fresh eventfd under the same number: the inherited one is shared with the parent.
  const int fresh = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fresh >= 0) {
    ::dup3(fresh, gl.wake_fd, O_CLOEXEC);
    ::close(fresh);
  }
  // The other threads' rings have no threads any more; free all of them, this thread's too.
  for (Ring* r = gl.rings.exchange(nullptr, std::memory_order_acq_rel); r != nullptr;) {
    Ring* next = r->next;
    delete r;
    r = next;
  }
  detail::tls_ring = nullptr;
  detail::tls_epoch = 0;
  {
    std::lock_guard<std::mutex> lock(gl.stats_mu);
    gl.published = Stats{};
  }

  Session* old = gl.session;
  gl.session = nullptr;
  if (old != nullptr) {
    old->cycle_mu.unlock();
    old->pipeline.abandon();
    // The collector thread does not exist here; leak its std::thread handle (destroying or
    // joining a handle of a thread from the parent is undefined).
    (void)old->thread.release();
    StartOptions o = old->options;
    delete old;
    try {
      auto s = open_session(o);
      spawn_collector(*s);
      gl.session = s.release();
      detail::g_epoch.store(next_epoch(), std::memory_order_release);
    } catch (const std::exception& e) {
      warn_line(std::string("forked child ") + std::to_string(::getpid()) +
                " cannot record: " + e.what() + " (set PROFILEMATE_DIR to a writable folder)");
    }
  }
  gl.control.unlock();
}

void at_exit() { stop(); }

void install_hooks_once() {
  Global& gl = g();
  if (gl.hooks_installed) return;
  gl.hooks_installed = true;
  install_signal(SIGTERM, gl.prev_term);
  install_signal(SIGINT, gl.prev_int);
  ::pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  std::atexit(at_exit);
}

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
  if (o.flush_interval_ms < 1 || o.flush_interval_ms > kMaxFlushIntervalMs) {
    throw std::invalid_argument("profilemate: flush_interval_ms must be an integer from 1 to " +
                                std::to_string(kMaxFlushIntervalMs) + " (got " +
                                std::to_string(o.flush_interval_ms) + ")");
  }
}

[[noreturn]] void throw_os(int err, const std::string& path, const std::string& doing) {
  throw OsError(err, path, "profilemate: cannot " + doing + " " + path + ": " + errno_text(err));
}

// Creates the process dir, checks it is writable and opens the files that exist from the start.
std::unique_ptr<Session> open_session(const StartOptions& o) {
  const std::int32_t pid = static_cast<std::int32_t>(::getpid());
  const std::string dir = make_process_dir(o, pid);
  if (int err = make_dirs(dir)) throw_os(err, dir, "create the output folder");
  {
    // Tables' CSV files are created lazily; prove now that files can be created here.
    const std::string probe = dir + "/.profilemate-write-test";
    FileWriter w;
    if (int err = w.open(probe)) throw_os(err, dir, "write to the output folder");
    w.buf().append("ok\n");
    const int err = w.write_pending();
    w.close_fd();
    ::unlink(probe.c_str());
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
  // Rings surviving from an earlier session: drop stale contents, re-base counters.
  for (Ring* r = g().rings.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    rebase_ring(*r);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API.

namespace detail {
Ring* register_thread(std::uint32_t epoch) noexcept {
  if (tls_exiting) return nullptr;
  try {
    static thread_local ThreadGuard guard;
    guard.armed = true;  // constructs the guard: its destructor retires the ring at thread exit
    // The previous session's ring: its thread (this one) hands it to the collector, which drains
    // and frees it. Only the owner does this, so no producer can be writing into a freed ring.
    if (tls_ring != nullptr) {
      tls_ring->mark_orphaned();
      tls_ring = nullptr;
    }
    // Pairs with the release store of the epoch in start(): the session's ring capacity is set.
    (void)g_epoch.load(std::memory_order_acquire);
    auto* r = new Ring(static_cast<std::size_t>(g().ring_capacity.load(std::memory_order_relaxed)),
                       current_tid(), current_thread_name());
    push_ring(r);
    tls_ring = r;
    tls_epoch = epoch;  // only now: the fast path relies on tls_ring != nullptr for this epoch
    return r;
  } catch (...) {
    return nullptr;  // out of memory: this event is lost (the next one retries); host unaffected
  }
}
}  // namespace detail

std::string start(const StartOptions& options) {
  validate(options);
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  if (gl.session != nullptr) {
    throw std::runtime_error("profilemate: the core is already started (" +
                             gl.session->pipeline.info().process_dir + "); call stop() first");
  }
  if (gl.wake_fd < 0) {
    gl.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (gl.wake_fd < 0) throw_os(errno, "eventfd", "create");
  }
  gl.ring_capacity.store(options.ring_capacity, std::memory_order_relaxed);
  auto s = open_session(options);
  install_hooks_once();
  {
    std::lock_guard<std::mutex> stats_lock(gl.stats_mu);
    gl.published = Stats{};
    gl.published.ring_capacity = static_cast<std::uint64_t>(options.ring_capacity);
  }
  spawn_collector(*s);
  const std::string dir = s->pipeline.info().process_dir;
  gl.session = s.release();
  detail::g_epoch.store(next_epoch(), std::memory_order_release);
  return dir;
}

std::string start(std::string session_dir, std::string label, std::int64_t ring_capacity,
                  std::int64_t flush_interval_ms, bool trace, std::int64_t session_start_ns) {
  StartOptions o;
  o.session_dir = std::move(session_dir);
  o.label = std::move(label);
  o.ring_capacity = ring_capacity;
  o.flush_interval_ms = flush_interval_ms;
  o.trace = trace;
  o.session_start_ns = session_start_ns;
  return start(o);
}

void stop() noexcept {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  Session* s = gl.session;
  if (s == nullptr) return;
  detail::g_epoch.store(0, std::memory_order_release);
  s->stop_requested.store(true, std::memory_order_release);
  wake_collector();
  s->thread->join();  // its last cycle drains every ring, closes the trace, writes summary.json
  gl.collector_live.store(false, std::memory_order_release);
  gl.session = nullptr;
  delete s;
}

void flush() noexcept {
  Global& gl = g();
  std::lock_guard<std::mutex> lock(gl.control);
  Session* s = gl.session;
  if (s == nullptr) return;
  // A cycle that begins after this point drains everything recorded before it.
  const std::uint64_t target = gl.cycle_begin.load(std::memory_order_acquire) + 1;
  wake_collector();
  std::unique_lock<std::mutex> wait(s->wait_mu);
  s->wait_cv.wait_for(wait, std::chrono::seconds(30),
                      [&] { return gl.cycle_end.load(std::memory_order_acquire) >= target; });
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
