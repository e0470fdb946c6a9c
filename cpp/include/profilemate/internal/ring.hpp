// INTERNAL (not API): the single-producer / single-consumer ring of Events, one per recording
// thread. It is here, under include/, only because the inline hot path in engine.hpp writes into
// it; nothing outside the engine should include it. What the collector keeps about a ring (registry
// link, counters already accounted for, trace naming) is not here: see
// cpp/collector/ring_registry.hpp.
//
// The producer is the thread that owns the ring; the consumer is the collector thread. Neither ever
// blocks: a full ring drops the event and counts the drop (per ring and per table).
//
// Memory ordering (the only two synchronising edges):
//   producer: write slot[head], then head_.store(head + 1, release)
//   consumer: head_.load(acquire), read slots [tail, head), then tail_.store(head, release)
//   producer: tail_.load(acquire) before reusing a slot the consumer may still be reading.
// head_ and tail_ are free-running 64-bit indices (they never wrap in practice: 2^64 events), so
// "full" is head - tail == capacity and no slot is wasted.
//
// Cache layout: producer-written fields, consumer-written fields and read-only fields live on
// separate cache lines, so the two threads only exchange a line when one actually needs the
// other's index (the producer re-reads tail_ only when its cached copy says the ring is full).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "profilemate/event.hpp"

namespace profilemate {

class Ring {
 public:
  // capacity must be a power of two (validated by the caller; checked here in debug builds).
  // The slots come from the aligned operator new[] (Event is alignas(64)): every slot is one line.
  Ring(std::size_t capacity, std::int32_t tid, std::string thread_name)
      : slots_(new Event[capacity]),
        mask_(capacity - 1),
        capacity_(capacity),
        tid_(tid),
        thread_name_(std::move(thread_name)) {
    for (auto& d : dropped_by_table_) d.store(0, std::memory_order_relaxed);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // ---- producer side (the owning thread only) ----

  // Reserve the next slot, or nullptr when the ring is full (the drop is already counted).
  // A non-null slot must be filled and then published with publish().
  Event* try_reserve(std::uint32_t table) noexcept {
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    if (h - cached_tail_ >= capacity_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (h - cached_tail_ >= capacity_) {
        count_drop(table);
        return nullptr;
      }
    }
    return &slots_[h & mask_];
  }
  void publish() noexcept {
    count_row();
    head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // A wide row: reserve n consecutive slots (all or none; a refusal counts one dropped row), fill
  // slot(0) .. slot(n-1), then publish_n(n) makes them visible to the collector at once.
  bool try_reserve_n(std::uint32_t table, std::uint64_t n) noexcept {
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    if (h + n - cached_tail_ > capacity_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (h + n - cached_tail_ > capacity_) {
        count_drop(table);
        return false;
      }
    }
    return true;
  }
  Event& slot(std::uint64_t k) noexcept {
    return slots_[(head_.load(std::memory_order_relaxed) + k) & mask_];
  }
  void publish_n(std::uint64_t n) noexcept {
    count_row();
    head_.store(head_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  bool push(const Event& e) noexcept {  // one slot (no continuations)
    Event* slot = try_reserve(e.table());
    if (slot == nullptr) return false;
    *slot = e;
    publish();
    return true;
  }

  // ---- consumer side (the collector only) ----

  // Calls fn(const Event*, n) for contiguous runs of published events (at most two runs: the
  // tail of the array, then its start), then releases those slots. Returns the number drained.
  template <class Fn>
  std::uint64_t drain(Fn&& fn) {
    const std::uint64_t t = tail_.load(std::memory_order_relaxed);
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    if (h == t) return 0;
    const std::uint64_t n = h - t;
    const std::size_t first = static_cast<std::size_t>(t & mask_);
    const std::size_t run1 =
        static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_ - first));
    fn(&slots_[first], run1);
    if (run1 < n) fn(&slots_[0], static_cast<std::size_t>(n - run1));
    tail_.store(h, std::memory_order_release);
    return n;
  }
  // Drops everything published so far without reading it (session start, fork child).
  void discard() noexcept {
    tail_.store(head_.load(std::memory_order_acquire), std::memory_order_release);
  }

  // ---- counters (written by the producer, read by anyone) ----
  // Rows published (a wide row's continuation slots are not rows). Monotonic.
  std::uint64_t pushed() const noexcept { return rows_.load(std::memory_order_acquire); }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t dropped_for(std::uint32_t table) const noexcept {
    return dropped_by_table_[table & 0xffu].load(std::memory_order_relaxed);
  }

  std::size_t capacity() const noexcept { return capacity_; }
  std::int32_t tid() const noexcept { return tid_; }
  const std::string& thread_name() const noexcept { return thread_name_; }

  // Set (release) by the owning thread when it exits; its last events are still in the ring.
  void mark_orphaned() noexcept { orphaned_.store(true, std::memory_order_release); }
  bool orphaned() const noexcept { return orphaned_.load(std::memory_order_acquire); }

 private:
  void count_row() noexcept {  // single writer: no locked instruction
    rows_.store(rows_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  void count_drop(std::uint32_t table) noexcept {
    // Single writer: a relaxed load + store is enough (and avoids a locked instruction).
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    auto& d = dropped_by_table_[table & 0xffu];
    d.store(d.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Producer line.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  std::uint64_t cached_tail_ = 0;
  std::atomic<std::uint64_t> rows_{0};
  std::atomic<std::uint64_t> dropped_{0};
  // Consumer line.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  // Read-only after construction.
  alignas(64) std::unique_ptr<Event[]> slots_;
  const std::uint64_t mask_;
  const std::uint64_t capacity_;
  const std::int32_t tid_;
  const std::string thread_name_;
  std::atomic<bool> orphaned_{false};
  std::atomic<std::uint64_t> dropped_by_table_[kMaxTables];
};

}  // namespace profilemate
