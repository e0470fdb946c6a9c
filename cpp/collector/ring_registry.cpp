#include "collector/ring_registry.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "collector/state.hpp"
#include "profilemate/engine.hpp"

namespace profilemate {

namespace detail {
constinit thread_local Ring* tls_ring = nullptr;
constinit thread_local std::uint32_t tls_epoch = 0;
}  // namespace detail

namespace collector {
namespace {

// Process-lifetime (trivially destructible), so threads that outlive static destruction may still
// register or retire rings.
constinit std::atomic<RingNode*> g_rings{nullptr};
constinit std::atomic<std::int64_t> g_ring_capacity{kDefaultRingCapacity};
constinit std::atomic<std::uint64_t> g_lost{0};
// Rings inherited through fork(), set aside by the child handler until it is safe to free them.
// Only touched with the control lock held, or in the fork child handler (one thread).
constinit RingNode* g_detached = nullptr;

constinit thread_local bool tls_exiting = false;

struct ThreadGuard {
  bool armed = false;
  ~ThreadGuard() {
    // The thread is exiting: its ring is handed to the collector, which drains what is left and
    // frees it. Events recorded later during TLS teardown of this thread (another thread_local's
    // destructor; the main thread inside exit()) take the slow path, since no session has epoch
    // 0, and register_thread() drops and counts them as lost.
    tls_exiting = true;
    detail::tls_epoch = 0;
    if (Ring* r = detail::tls_ring) {
      detail::tls_ring = nullptr;
      r->mark_orphaned();
    }
  }
};

std::int32_t current_tid() noexcept { return static_cast<std::int32_t>(::syscall(SYS_gettid)); }

std::string current_thread_name() {
  char buf[64] = {};
  if (::pthread_getname_np(::pthread_self(), buf, sizeof buf) != 0) return {};
  return buf;
}

void push_ring(RingNode* r) noexcept {
  RingNode* head = g_rings.load(std::memory_order_relaxed);
  do {
    r->next = head;
    // release: the collector's acquire load of the head sees the node fully constructed.
  } while (!g_rings.compare_exchange_weak(head, r, std::memory_order_release,
                                          std::memory_order_relaxed));
}

}  // namespace

void add_lost(std::uint64_t n) noexcept { g_lost.fetch_add(n, std::memory_order_relaxed); }

std::uint64_t lost_events() noexcept { return g_lost.load(std::memory_order_relaxed); }

void set_ring_capacity(std::int64_t capacity) noexcept {
  g_ring_capacity.store(capacity, std::memory_order_relaxed);
}

RingNode* first_ring() noexcept { return g_rings.load(std::memory_order_acquire); }

void unlink_ring(RingNode* r, RingNode* prev) noexcept {
  if (prev != nullptr) {
    prev->next = r->next;
    return;
  }
  RingNode* expected = r;
  if (g_rings.compare_exchange_strong(expected, r->next, std::memory_order_acq_rel)) return;
  // Rings were pushed in front of r: they are stable now (pushers only touch the head).
  for (RingNode* p = g_rings.load(std::memory_order_acquire); p != nullptr; p = p->next) {
    if (p->next == r) {
      p->next = r->next;
      return;
    }
  }
}

void detach_rings_after_fork() noexcept {
  RingNode* list = g_rings.exchange(nullptr, std::memory_order_acq_rel);
  if (list != nullptr) {
    RingNode* tail = list;
    while (tail->next != nullptr) tail = tail->next;
    tail->next = g_detached;  // a fork of a child that had not freed its own yet
    g_detached = list;
  }
  detail::tls_ring = nullptr;
  detail::tls_epoch = 0;
}

void free_detached_rings() noexcept {
  for (RingNode* r = g_detached; r != nullptr;) {
    RingNode* next = r->next;
    delete r;
    r = next;
  }
  g_detached = nullptr;
}

std::int64_t ring_capacity() noexcept { return g_ring_capacity.load(std::memory_order_relaxed); }

}  // namespace collector

namespace detail {
Ring* register_thread(std::uint32_t epoch) noexcept {
  if (collector::tls_exiting) {
    collector::add_lost(1);  // after this thread's exit guard ran: no ring any more
    return nullptr;
  }
  if (collector::g().child_pending.load(std::memory_order_acquire)) [[unlikely]] {
    // A forked child's first event: its folder, files and collector are made now.
    epoch = collector::start_forked_child();
    if (epoch == 0) return nullptr;
  }
  try {
    static thread_local collector::ThreadGuard guard;
    guard.armed = true;  // constructs the guard: its destructor retires the ring at thread exit
    // The previous session's ring: its thread (this one) hands it to the collector, which drains
    // and frees it. Only the owner does this, so no producer can be writing into a freed ring.
    if (tls_ring != nullptr) {
      tls_ring->mark_orphaned();
      tls_ring = nullptr;
    }
    // Pairs with the release store of the epoch in start(): the session's ring capacity is set.
    (void)g_epoch.load(std::memory_order_acquire);
    auto* node = new collector::RingNode(
        static_cast<std::size_t>(collector::g_ring_capacity.load(std::memory_order_relaxed)),
        collector::current_tid(), collector::current_thread_name());
    collector::push_ring(node);
    tls_ring = &node->ring;
    tls_epoch = epoch;  // only now: the fast path relies on tls_ring != nullptr for this epoch
    return tls_ring;
  } catch (...) {
    // Out of memory: this event is lost and counted (the next one retries); host unaffected.
    collector::add_lost(1);
    return nullptr;
  }
}
}  // namespace detail

}  // namespace profilemate
