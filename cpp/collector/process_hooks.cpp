#include "collector/process_hooks.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>
#include <string_view>

#include "collector/collector.hpp"
#include "collector/ring_registry.hpp"
#include "collector/state.hpp"
#include "core/log.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"

namespace profilemate::collector {
namespace {

// Guarded by g().control (install_hooks_once); read by the signal handler after installation.
bool hooks_installed = false;
struct sigaction prev_term {};
struct sigaction prev_int {};

// Set while this thread is inside fork() (prepare handler to parent/child handler), where it holds
// the collector's cycle lock: a signal handler running on it must not wait for a cycle.
// initial-exec: read from a signal handler, so no __tls_get_addr (which may allocate).
[[gnu::tls_model("initial-exec")]] constinit thread_local bool tls_in_fork = false;

constexpr std::int64_t kSignalWaitNs = 2'000'000'000;

void on_signal(int sig, siginfo_t* info, void* uctx) {
  const int saved_errno = errno;
  Global& gl = g();
  if (gl.collector_live.load(std::memory_order_acquire)) {
    // Only async-signal-safe work: atomics, write(2) to the eventfd, clock_gettime, nanosleep.
    // Ask for a cycle that starts after this point (it also refreshes summary.json) and wait up to
    // 2 s until its rows and snapshot are written; the collector never runs this handler (its
    // signals are blocked). The collector gets there without any lock this thread may hold (see
    // run_cycle), except inside fork(): then it cannot, so do not wait. Either way a snapshot not
    // waited for is counted (Stats::signal_snapshots_missed).
    bool done = false;
    if (!tls_in_fork) {
      gl.signal_pending.store(1, std::memory_order_release);
      const std::uint64_t target = gl.cycle_begin.load(std::memory_order_acquire) + 1;
      wake_collector();
      const std::int64_t deadline = now_ns() + kSignalWaitNs;
      while (!(done = gl.cycle_written.load(std::memory_order_acquire) >= target) &&
             gl.collector_live.load(std::memory_order_acquire) && now_ns() < deadline) {
        const timespec ts{0, 1'000'000};
        ::nanosleep(&ts, nullptr);
      }
    }
    if (!done) gl.signal_snapshots_missed.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved_errno;
  // Chain to what was installed before us, keeping its behaviour.
  const struct sigaction& prev = sig == SIGTERM ? prev_term : prev_int;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, uctx);
  } else if (prev.sa_handler == SIG_IGN) {
    // ignored before us: stay ignored (not reached: install_signal() leaves SIG_IGN alone)
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
  // An ignored signal stays ignored: SIG_IGN is inherited across exec while a handler is reset to
  // SIG_DFL, so installing ours would make every exec'd child die of the signal (e.g. nohup), and
  // this process would see EINTR and a snapshot wait where it saw nothing before.
  if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN) return;
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

// Takes the first five locks of the lock order (state.hpp), in that order.
void atfork_prepare() {
  Global& gl = g();
  tls_in_fork = true;
  gl.control.lock();
  if (gl.session != nullptr) gl.session->cycle_mu.lock();  // collector is between cycles
  TableRegistry::global().mutex().lock();
  Interner::global().mutex().lock();
  gl.stats_mu.lock();
}

void atfork_parent() {
  Global& gl = g();
  tls_in_fork = false;
  gl.stats_mu.unlock();
  Interner::global().mutex().unlock();
  TableRegistry::global().mutex().unlock();
  if (gl.session != nullptr) gl.session->cycle_mu.unlock();
  gl.control.unlock();
}

void atfork_child() {
  // Only this thread exists now. Everything inherited that belongs to the parent's session (its
  // rings, buffered rows, open files) is the parent's. This handler only resets state: no
  // allocation, no files, no thread (the child may be about to exec, e.g. subprocess's preexec_fn,
  // pty.fork, posix_spawn emulations). The child's own session is created on its first event
  // (start_forked_child()) or by relabel(); until then enabled() is true and nothing exists on
  // disk. See state.hpp (Global::inherited).
  Global& gl = g();
  tls_in_fork = false;
  gl.stats_mu.unlock();
  Interner::global().mutex().unlock();
  TableRegistry::global().mutex().unlock();
  // A parent thread may have been inside flush() (which waits without the control lock): start
  // this child with a free wait mutex and a condition variable without waiters. Placement new:
  // no allocation, and the inherited ones are never destroyed (their owners do not exist here).
  new (&gl.wait_mu) std::mutex();
  new (&gl.wait_cv) std::condition_variable();

  detail::g_epoch.store(0, std::memory_order_relaxed);
  gl.collector_live.store(false, std::memory_order_relaxed);
  gl.signal_pending.store(0, std::memory_order_relaxed);
  if (gl.wake_fd >= 0) gl.wake_fd_shared = true;  // replaced before this child's collector runs
  // The other threads' rings have no threads any more: set aside, freed when the child starts or
  // stops its session (or never, if it execs).
  detach_rings_after_fork();

  if (Session* old = gl.session) {
    old->cycle_mu.unlock();
    gl.session = nullptr;
    gl.inherited = old;
    gl.child_pending.store(true, std::memory_order_relaxed);
  }
  if (gl.child_pending.load(std::memory_order_relaxed)) {
    // The epoch the child's session will record under: every thread's first event takes the slow
    // path (no thread has it as tls_epoch), which starts the session.
    detail::g_epoch.store(next_epoch(), std::memory_order_release);
  }
  gl.control.unlock();
}

void at_exit() { stop(); }

}  // namespace

void install_hooks_once() {
  if (hooks_installed) return;
  hooks_installed = true;
  install_signal(SIGTERM, prev_term);
  install_signal(SIGINT, prev_int);
  ::pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  std::atexit(at_exit);
}

}  // namespace profilemate::collector
