// IdClock (cpp/pyext/id_clock.hpp): the per-slot clock behind kv_cache_evictions.csv.
#include <gtest/gtest.h>

#include <string>

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "pyext/id_clock.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
using pm::pyext::IdClock;
using pmtest::lines_of;
using pmtest::read_file;

namespace {
constexpr std::int64_t kS = 1'000'000'000;
}

TEST(IdClock, CountsParkedReusedAndEvictedSlots) {
  IdClock c(0, 0);  // not recording: rows go nowhere, the counters still count
  c.reserve(8);
  EXPECT_EQ(c.capacity(), 8);
  // Two slots handed out fresh (no mark): no eviction.
  EXPECT_FALSE(c.acquire(1, false, 1 * kS, 1));
  EXPECT_FALSE(c.acquire(2, false, 1 * kS, 1));
  // Released: 1 with its content (parked), 2 without (plain free).
  EXPECT_TRUE(c.release(1, true, 2 * kS));
  EXPECT_FALSE(c.release(2, false, 2 * kS));
  EXPECT_EQ(c.parked(), 1);
  // Releasing again while parked does not count twice.
  EXPECT_FALSE(c.release(1, true, 3 * kS));
  EXPECT_EQ(c.parked(), 1);
  // A hit takes 1 back out of the parked set; a hit on a held slot changes nothing.
  EXPECT_TRUE(c.reuse(1));
  EXPECT_FALSE(c.reuse(2));
  EXPECT_EQ(c.parked(), 0);
  EXPECT_TRUE(c.release(1, true, 4 * kS));
  // The pool hands 1 out again while it still has content: evicted. 2 had none: not.
  EXPECT_TRUE(c.acquire(1, true, 5 * kS, 3));
  EXPECT_FALSE(c.acquire(2, false, 5 * kS, 3));
  EXPECT_EQ(c.evicted(), 1);
  EXPECT_EQ(c.parked(), 0);
  // A bulk clear drops the parked set without evictions.
  c.release(1, true, 6 * kS);
  c.release(2, true, 6 * kS);
  EXPECT_EQ(c.clear_marks(), 2);
  EXPECT_EQ(c.parked(), 0);
  EXPECT_FALSE(c.acquire(1, false, 7 * kS, 4));
  EXPECT_EQ(c.evicted(), 1);
}

TEST(IdClock, IdsOutsideTheArraysAreCountedNotStored) {
  IdClock c(0, 0);
  c.reserve(4);
  EXPECT_FALSE(c.acquire(4, true, kS, 1));
  EXPECT_FALSE(c.release(-1, true, kS));
  EXPECT_FALSE(c.reuse(100));
  EXPECT_EQ(c.overflow(), 3);
  EXPECT_EQ(c.evicted(), 0);
  c.reserve(2);  // smaller: nothing changes
  EXPECT_EQ(c.capacity(), 4);
  c.reserve(IdClock::kMaxIds * 4);  // bounded
  EXPECT_EQ(c.capacity(), IdClock::kMaxIds);
}

TEST(IdClock, EvictionRowsCarryLifetimeIdleAndHits) {
  pmtest::TempDir tmp;
  const std::int64_t t0 = pm::now_ns();
  pm::StartOptions o;
  o.session_dir = tmp.path();
  o.label = "clock";
  o.ring_capacity = 1024;
  o.trace = false;
  o.session_start_ns = t0;
  const std::string dir = pm::start(o);
  const auto table = pm::define_table(
      "evictions",
      {{"step", "step"}, {"id", "a0"}, {"lifetime_s", "a1"}, {"idle_s", "a2"}, {"hits", "a3"}});
  IdClock c(table, pm::intern("evict"));
  c.reserve(16);
  c.acquire(5, false, t0 + 1 * kS, 1);  // born at 1 s
  c.reuse(5);                           // two hits while held
  c.reuse(5);
  c.release(5, true, t0 + 3 * kS);      // cached, idle from 3 s
  c.acquire(5, true, t0 + 10 * kS, 7);  // evicted at 10 s, step 7
  c.acquire(9, true, t0 + 11 * kS, 8);  // never seen before: lifetime and idle unknown
  pm::flush();
  pm::stop();
  const auto rows = lines_of(read_file(dir + "/evictions.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "step,id,lifetime_s,idle_s,hits");
  EXPECT_EQ(rows[1], "7,5,9,7,2");
  EXPECT_EQ(rows[2], "8,9,,,0");  // never seen before: lifetime and idle unknown (no value)
}
