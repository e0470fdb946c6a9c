// IdClock: birth / release / reuse stamps for numbered slots of a pool, in arrays sized once, and
// one row per slot whose content was still cached when the pool handed it out again (an eviction).
//
// Generic on purpose: the slots are "ids" in [0, capacity), each life starts with acquire(), may be
// reused (taken again while parked or shared) and ends when it is released; a slot released while
// still carrying its mark (its content, e.g. a cached key) is "parked": reusable until the pool
// hands the slot out again. acquire() of a slot that still carries its mark ends that content's
// life: one row (id, lifetime s, idle s, reuses) is recorded straight into the core's table, with
// no Python per slot. Plain C++ (no Python): the extension's adapter (block_clock.cpp) reads the
// ids and marks off the host's objects; tests/cpp drives this class directly.
//
// Bounded: the arrays are sized by reserve() (at most kMaxIds slots); an id outside them is counted
// in overflow() and otherwise ignored. Not thread-safe: one owner thread (the adapter runs under
// the GIL).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "profilemate/engine.hpp"

namespace profilemate::pyext {

class IdClock {
 public:
  static constexpr std::int64_t kMaxIds = std::int64_t{1} << 24;
  // Values of an eviction row: a0 id, a1 lifetime s, a2 idle s, a3 reuses.
  static constexpr int kRowValues = 4;

  IdClock(std::uint32_t table, std::uint32_t name) noexcept : table_(table), name_(name) {}

  // Sizes the arrays for ids [0, n) (n clamped to kMaxIds). Allocates once; a later, larger n
  // grows them (a new pool), a smaller one changes nothing.
  void reserve(std::int64_t n) {
    if (n > kMaxIds) n = kMaxIds;
    if (n > static_cast<std::int64_t>(slots_.size())) slots_.resize(static_cast<std::size_t>(n));
  }

  // `id` handed out at `now_ns`. `marked`: it still carried its mark, so its previous content is
  // evicted now: one row is recorded (step `step`) and true returned. Starts the id's new life.
  bool acquire(std::int64_t id, bool marked, std::int64_t now_ns, std::int64_t step) noexcept {
    Slot* s = slot(id);
    if (s == nullptr) return false;
    if (s->parked) {
      s->parked = false;
      --parked_;
    }
    if (marked) {
      const double nan = std::numeric_limits<double>::quiet_NaN();
      record_instant(table_, name_, now_ns, step, 0, static_cast<double>(id),
                     s->born_ns != 0 ? static_cast<double>(now_ns - s->born_ns) / 1e9 : nan,
                     s->released_ns != 0 ? static_cast<double>(now_ns - s->released_ns) / 1e9 : nan,
                     static_cast<double>(s->reuses));
      ++evicted_;
    }
    s->born_ns = now_ns;
    s->released_ns = 0;
    s->reuses = 0;
    return marked;
  }

  // `id` taken again (a hit on its content) at `now_ns`; returns true when it was parked.
  bool reuse(std::int64_t id) noexcept {
    Slot* s = slot(id);
    if (s == nullptr) return false;
    ++s->reuses;
    if (!s->parked) return false;
    s->parked = false;
    --parked_;
    return true;
  }

  // `id` released at `now_ns`; `marked`: with its content, so it is parked (evictable). Returns
  // true when it became parked.
  bool release(std::int64_t id, bool marked, std::int64_t now_ns) noexcept {
    Slot* s = slot(id);
    if (s == nullptr || !marked) return false;
    s->released_ns = now_ns;
    if (s->parked) return false;
    s->parked = true;
    ++parked_;
    return true;
  }

  // Every parked id loses its content at once (a bulk clear: no eviction rows). Returns how many
  // were parked.
  std::int64_t clear_marks() noexcept {
    const std::int64_t n = parked_;
    for (Slot& s : slots_) s.parked = false;
    parked_ = 0;
    return n;
  }

  std::int64_t parked() const noexcept { return parked_; }
  std::int64_t evicted() const noexcept { return evicted_; }
  std::int64_t overflow() const noexcept { return overflow_; }
  std::int64_t capacity() const noexcept { return static_cast<std::int64_t>(slots_.size()); }

 private:
  struct Slot {
    std::int64_t born_ns = 0;      // start of the current life (0: unknown)
    std::int64_t released_ns = 0;  // last release with content (0: none in this life)
    std::uint32_t reuses = 0;      // reuse() calls in this life
    bool parked = false;           // released with content, not taken since
  };

  Slot* slot(std::int64_t id) noexcept {
    if (id < 0 || id >= static_cast<std::int64_t>(slots_.size())) [[unlikely]] {
      ++overflow_;
      return nullptr;
    }
    return &slots_[static_cast<std::size_t>(id)];
  }

  std::vector<Slot> slots_;
  std::uint32_t table_;
  std::uint32_t name_;
  std::int64_t parked_ = 0;
  std::int64_t evicted_ = 0;
  std::int64_t overflow_ = 0;
};

}  // namespace profilemate::pyext
