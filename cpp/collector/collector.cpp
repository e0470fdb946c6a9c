#include "collector/collector.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "collector/ring_registry.hpp"
#include "core/file_writer.hpp"
#include "core/log.hpp"
#include "profilemate/gpu_timer.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"
#include "profilemate/version.hpp"
#include "sinks/summary.hpp"

namespace profilemate::collector {
namespace {

void account(Session& s, RingNode& n) {
  const Ring& r = n.ring;
  const std::uint64_t pushed = r.pushed();
  s.recorded += pushed - n.seen_pushed;
  n.seen_pushed = pushed;
  const std::uint64_t dropped = r.dropped();
  if (dropped != n.seen_dropped) {
    s.dropped += dropped - n.seen_dropped;
    n.seen_dropped = dropped;
    for (std::uint32_t t = 0; t < kMaxTables; ++t) {
      const std::uint64_t d = r.dropped_for(t);
      s.dropped_by_table[t] += d - n.seen_dropped_by_table[t];
      n.seen_dropped_by_table[t] = d;
    }
  }
}

// Recording becomes a no-op; the host keeps running. One line naming what failed and the path.
void report_write_error(Session& s, const std::string& path, int err) {
  if (s.write_errors++ > 0) return;
  detail::g_epoch.store(0, std::memory_order_relaxed);
  warn_line("cannot write " + path + ": " + errno_text(err) +
            "; recording is off for this process");
}

void on_io_error(Session& s) {
  const IoError& e = s.pipeline.error();
  report_write_error(s, e.path, e.err);
}

SummaryFacts summary_facts(const Session& s, bool final) {
  SummaryFacts c;
  c.version = version();
  c.recorded = s.recorded;
  c.dropped = s.dropped;
  c.lost = lost_events() - s.lost_base;
  c.signal_snapshots_missed =
      g().signal_snapshots_missed.load(std::memory_order_relaxed) - s.snapshots_missed_base;
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
      render_summary(s.pipeline.info(), s.pipeline.aggregates(), summary_facts(s, final),
                     TableRegistry::global(), Interner::global());
  if (int err = write_file_atomic(path, text)) report_write_error(s, path, err);
}

// Publishes this cycle's counters for stats(). Between cycles (final == false) it never waits for
// stats_mu: the thread holding it may be the one a SIGTERM/SIGINT interrupted, whose handler is
// waiting for this collector. Returns false when it skipped (the next cycle, soon, publishes).
bool publish_stats(Session& s, std::uint64_t live_rings, bool final) {
  const SummaryFacts c = summary_facts(s, false);
  std::unique_lock<std::mutex> lock(g().stats_mu, std::defer_lock);
  if (final) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return false;
  }
  Stats& p = g().published;
  p.recorded = c.recorded;
  p.dropped = c.dropped;
  p.lost = c.lost;
  p.signal_snapshots_missed = c.signal_snapshots_missed;
  p.written_rows = c.written_rows;
  p.rings = live_rings;
  p.ring_capacity = static_cast<std::uint64_t>(s.options.ring_capacity);
  p.write_errors = s.write_errors;
  p.invalid_events = c.invalid_events;
  p.cycles = s.cycles;
  p.dropped_by_table = c.dropped_by_table;
  return true;
}

struct CycleResult {
  std::uint64_t busiest = 0;  // the most events taken from one ring
  bool published = true;      // stats() and flush() waiters saw this cycle
};

// One drain cycle. Reports the largest number of events taken from one ring (the collector
// shortens its sleep when rings fill fast, so bursts do not overflow them).
//
// The signal handler waits for cycle_written, which this cycle reaches without taking any lock an
// interrupted thread could hold (only cycle_mu, which only the fork prepare handler takes besides
// the collector; the handler does not wait inside fork). stats_mu and wait_mu come after it and
// are only tried between cycles.
CycleResult run_cycle(Session& s, bool final) {
  std::lock_guard<std::mutex> cycle(s.cycle_mu);
  const std::uint64_t n = g().cycle_begin.fetch_add(1, std::memory_order_acq_rel) + 1;
  std::uint64_t busiest = 0;
  std::uint64_t live = 0;
  RingNode* prev = nullptr;
  for (RingNode* node = first_ring(); node != nullptr;) {
    RingNode* next = node->next;
    Ring& r = node->ring;
    // Read the orphan flag before draining: everything the thread published happened before it
    // set the flag, so a drain after seeing it empties the ring for good.
    const bool orphaned = r.orphaned();
    if (!node->named_in_trace) {
      s.pipeline.on_thread(r.tid(), r.thread_name());
      node->named_in_trace = true;
    }
    const std::int32_t tid = r.tid();
    const std::uint64_t drained = r.drain([&](const Event* ev, std::size_t k) {
      if (!s.pipeline.consume(ev, k, tid) && s.write_errors == 0) on_io_error(s);
    });
    busiest = std::max(busiest, drained);
    account(s, *node);
    if (orphaned) {
      unlink_ring(node, prev);
      delete node;
    } else {
      prev = node;
      ++live;
    }
    node = next;
  }
  if (!s.pipeline.flush() && s.write_errors == 0) on_io_error(s);
  if (final) {
    if (!s.pipeline.finish() && s.write_errors == 0) on_io_error(s);
    write_summary(s, true);
  } else if (g().signal_pending.exchange(0, std::memory_order_acq_rel) != 0) {
    write_summary(s, false);  // the process may be about to die: leave a digest behind
  }
  ++s.cycles;
  g().cycle_written.store(n, std::memory_order_release);
  CycleResult result;
  result.busiest = busiest;
  result.published = publish_stats(s, live, final);
  if (!result.published) return result;
  g().cycle_end.store(n, std::memory_order_release);
  {
    // Taken (when free) so a flush() between its check and its wait cannot miss this notify; a
    // waiter that does miss it re-checks within its wait slice (session.cpp).
    std::unique_lock<std::mutex> lock(g().wait_mu, std::defer_lock);
    if (final) {
      lock.lock();
    } else {
      (void)lock.try_lock();
    }
  }
  g().wait_cv.notify_all();
  return result;
}

void collector_main(Session* s) {
  // Sleep at most the flush interval, but wake early enough that the busiest ring, filling at the
  // rate seen in the last cycle, reaches only half its capacity: rings are sized for bursts, and
  // steady high rates are absorbed by draining more often rather than by dropping.
  const auto half_ring = static_cast<double>(s->options.ring_capacity) / 2;
  const auto interval_ms = static_cast<double>(s->options.flush_interval_ms);
  int timeout_ms = static_cast<int>(s->options.flush_interval_ms);
  std::int64_t last_cycle_ns = now_ns();
  for (;;) {
    pollfd p{g().wake_fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN)) {
      std::uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(g().wake_fd, &v, sizeof v);
    }
    const bool stopping = s->stop_requested.load(std::memory_order_acquire);
    const std::int64_t cycle_ns = now_ns();
    // Rows whose device work has finished (a query per parked event pair, never a wait), recorded
    // on this thread's own ring so this very cycle writes them; at stop, the unfinished ones too.
    gpu_timer_poll(stopping);
    const CycleResult cycle = run_cycle(*s, stopping);
    if (stopping) {
      // No cycle will follow: a signal handler waiting for one must not wait any longer.
      g().collector_live.store(false, std::memory_order_release);
      return;
    }
    const std::uint64_t busiest = cycle.busiest;
    const double elapsed_ms =
        static_cast<double>(std::max<std::int64_t>(cycle_ns - last_cycle_ns, 1)) / 1e6;
    last_cycle_ns = cycle_ns;
    const double per_ms = static_cast<double>(busiest) / elapsed_ms;
    const double until_half = per_ms > 0 ? half_ring / per_ms : interval_ms;
    timeout_ms = static_cast<int>(std::clamp(until_half, 1.0, interval_ms));
    if (!cycle.published) timeout_ms = 1;  // stats_mu was busy: publish again right away
  }
}

}  // namespace

void wake_collector() noexcept {
  const std::uint64_t one = 1;
  // Async-signal-safe. EAGAIN only if the counter is saturated, which still wakes the collector.
  [[maybe_unused]] ssize_t n = ::write(g().wake_fd, &one, sizeof one);
}

namespace {
// Events published after the collector last accounted a ring (a producer that read the epoch before
// stop() and wrote after the final drain, or registered a ring just then): never written, so
// dropped here and counted as lost.
std::uint64_t discard_late(RingNode& node) noexcept {
  Ring& r = node.ring;
  const std::uint64_t pushed = r.pushed();
  const std::uint64_t late = pushed - node.seen_pushed;
  r.discard();
  node.seen_pushed = pushed;
  if (late != 0) add_lost(late);
  return late;
}
}  // namespace

void sweep_after_final_cycle(Session& s) {
  std::uint64_t late = 0;
  std::uint64_t live = 0;
  for (RingNode* node = first_ring(); node != nullptr; node = node->next) {
    late += discard_late(*node);
    ++live;
  }
  if (late == 0) return;
  write_summary(s, true);
  publish_stats(s, live, true);
}

void rebase_rings() noexcept {
  for (RingNode* node = first_ring(); node != nullptr; node = node->next) {
    Ring& r = node->ring;
    discard_late(*node);
    node->seen_pushed = r.pushed();
    node->seen_dropped = r.dropped();
    for (std::uint32_t t = 0; t < kMaxTables; ++t)
      node->seen_dropped_by_table[t] = r.dropped_for(t);
    node->named_in_trace = false;
  }
}

// The collector never runs the signal handler: SIGTERM/SIGINT are never delivered to it, since the
// handler waits for the collector, which would deadlock on its own thread.
void spawn_collector(Session& s) {
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  s.thread = std::make_unique<std::thread>(collector_main, &s);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  g().collector_live.store(true, std::memory_order_release);
}

}  // namespace profilemate::collector
