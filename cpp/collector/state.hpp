// The engine's process-wide state, shared by the collector layer's parts:
//   session.cpp        start/stop/flush, option checks, the public entry points
//   ring_registry.cpp  thread registration and the list of rings
//   collector.cpp      the drain cycle and the collector thread
//   process_hooks.cpp  SIGTERM/SIGINT, fork, exit
//
// Lock order (a thread holding one may take only those to its right):
//   Global::control -> Session::cycle_mu -> TableRegistry::mu -> Interner::mu -> Global::stats_mu
//   -> Global::wait_mu
// The fork prepare handler takes the first five in this order, so fork() cannot split a critical
// section and the child starts with every lock free (wait_mu and wait_cv, which a flush() waiter
// may hold across fork, are re-initialised in the child). Producers (record_*) take no lock at
// all; the collector takes cycle_mu, only *tries* stats_mu and wait_mu between cycles (it waits for
// them only in a session's final cycle), and reads tables and interned strings lock-free, so it
// never waits on a recording thread nor on a thread a signal interrupted. The signal handler takes
// no lock. flush() waits for the collector without holding the control lock.
#pragma once

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "collector/pipeline.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"

namespace profilemate::collector {

// One running session. Leaked on purpose where it may still be touched (see Global).
struct Session {
  StartOptions options;
  Pipeline pipeline;
  std::unique_ptr<std::thread> thread;
  std::atomic<bool> stop_requested{false};
  std::mutex cycle_mu;              // held for the duration of one drain cycle
  std::int64_t clock_monotonic_ns;  // a (monotonic, realtime) pair read together at start
  std::int64_t clock_realtime_ns;
  // Collector-private counters.
  std::uint64_t recorded = 0;
  std::uint64_t dropped = 0;
  std::uint64_t dropped_by_table[kMaxTables] = {};
  std::uint64_t write_errors = 0;
  std::uint64_t cycles = 0;
  std::uint64_t invalid_table_base = 0;
  std::uint64_t lost_base = 0;              // lost_events() at start
  std::uint64_t snapshots_missed_base = 0;  // Global::signal_snapshots_missed at start

  Session(StartOptions o, ProcessInfo info)
      : options(std::move(o)),
        pipeline(std::move(info), options.trace),
        clock_monotonic_ns(now_ns()),
        clock_realtime_ns(wall_now_ns()) {}
};

// Process-wide state. Leaked on purpose: atexit handlers, signal handlers and threads that outlive
// static destruction may still touch it.
struct Global {
  std::mutex control;  // serialises start/stop/flush/fork; guards `session`, `inherited`
  Session* session = nullptr;
  // A forked child of a recording process starts with the parent's session here, untouched: the
  // fork handler only resets state (no allocation, no files, no thread), so a child that execs or
  // _exits right away leaves nothing behind. The child's own folder, files and collector are made
  // on its first event (start_forked_child(), from register_thread()) or by relabel(); stop() just
  // forgets it. While child_pending, g_epoch holds the epoch the child's session will have.
  Session* inherited = nullptr;
  std::atomic<bool> child_pending{false};
  bool wake_fd_shared = false;  // wake_fd is the parent's eventfd (fork): replace before use
  std::mutex stats_mu;
  Stats published;
  // flush() waiters. Here, not in Session: flush() waits without the control lock, so the session
  // may be stopped and freed meanwhile.
  std::mutex wait_mu;
  std::condition_variable wait_cv;
  // Wakes the collector. One eventfd for the life of the process (re-created in place with dup3
  // in a forked child) so the signal handler never writes to a descriptor that was closed and
  // reused. Its counters let the signal handler wait for a complete cycle without locks.
  int wake_fd = -1;
  std::atomic<std::uint64_t> cycle_begin{0};    // cycles begun
  std::atomic<std::uint64_t> cycle_written{0};  // last cycle whose rows and snapshot are written
  std::atomic<std::uint64_t> cycle_end{0};      // last cycle whose stats are published
  std::atomic<bool> collector_live{false};
  std::atomic<int> signal_pending{0};
  std::atomic<std::uint64_t> signal_snapshots_missed{0};  // bumped by the signal handler
  std::uint32_t last_epoch = 0;                           // guarded by control
  // How long flush() waits for the collector before it gives up (tests shorten it).
  std::atomic<std::int64_t> flush_timeout_ms{10'000};
};

Global& g();

// A new session epoch (never 0, which means "off"). Caller holds g().control.
std::uint32_t next_epoch() noexcept;

// A forked child's first event (register_thread(), with no lock held): starts the inherited session
// in <session_dir>/<label>-<childpid>/ unless another thread already did. Returns the epoch to
// register under, or 0 if the child does not record (it could not start; one warning).
std::uint32_t start_forked_child() noexcept;

// Creates the process dir, checks it is writable, opens the files that exist from the start and
// re-bases surviving rings on the new session. Throws OsError. Caller holds g().control.
std::unique_ptr<Session> open_session(const StartOptions& o);

}  // namespace profilemate::collector
