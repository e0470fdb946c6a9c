#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "profilemate/internal/ring.hpp"

namespace pm = profilemate;

namespace {
pm::Event make(std::uint32_t table, std::int64_t seq) {
  pm::Event e{};
  e.ts_ns = seq;
  e.meta = pm::Event::pack_meta(seq, table, pm::EventKind::kInstant);
  return e;
}
}  // namespace

TEST(Ring, FullRingDropsAndCountsExactlyPerTable) {
  pm::Ring ring(64, 1, "t");
  int accepted = 0;
  for (int i = 0; i < 100; ++i) accepted += ring.push(make(i % 2 ? 3u : 7u, i)) ? 1 : 0;
  EXPECT_EQ(accepted, 64);
  EXPECT_EQ(ring.dropped(), 36u);
  // Events 64..99 were dropped: 18 odd (table 3), 18 even (table 7).
  EXPECT_EQ(ring.dropped_for(3), 18u);
  EXPECT_EQ(ring.dropped_for(7), 18u);
  EXPECT_EQ(ring.dropped_for(4), 0u);
  std::int64_t expect = 0;
  const auto n = ring.drain([&](const pm::Event* e, std::size_t k) {
    for (std::size_t i = 0; i < k; ++i) EXPECT_EQ(e[i].ts_ns, expect++);
  });
  EXPECT_EQ(n, 64u);
  // Space again after the drain.
  EXPECT_TRUE(ring.push(make(1, 1000)));
}

TEST(Ring, WrapsAroundInOrder) {
  pm::Ring ring(64, 1, "t");
  std::int64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(ring.push(make(0, next_in++)));
    ring.drain([&](const pm::Event* e, std::size_t k) {
      for (std::size_t i = 0; i < k; ++i) ASSERT_EQ(e[i].ts_ns, next_out++);
    });
  }
  EXPECT_EQ(next_out, next_in);
}

// Several producers, each with its own ring, and one consumer draining all of them at the same
// time (the engine's topology). Every event is either delivered, in order, or counted as dropped.
TEST(Ring, ConcurrentProducersLoseNothingUnaccounted) {
  constexpr int kProducers = 4;
  constexpr std::int64_t kPerProducer = 200000;
  std::vector<std::unique_ptr<pm::Ring>> rings;
  for (int p = 0; p < kProducers; ++p) rings.push_back(std::make_unique<pm::Ring>(1024, p, "p"));
  std::atomic<int> done{0};
  std::vector<std::int64_t> delivered(kProducers, 0), last(kProducers, -1);
  std::vector<std::uint64_t> pushed_ok(kProducers, 0);

  std::thread consumer([&] {
    for (;;) {
      const bool finished = done.load(std::memory_order_acquire) == kProducers;
      for (int p = 0; p < kProducers; ++p) {
        rings[p]->drain([&](const pm::Event* e, std::size_t k) {
          for (std::size_t i = 0; i < k; ++i) {
            ASSERT_GT(e[i].ts_ns, last[p]);      // order kept, no duplicates
            ASSERT_EQ(e[i].step(), e[i].ts_ns);  // slot fully written before publication
            last[p] = e[i].ts_ns;
          }
          delivered[p] += static_cast<std::int64_t>(k);
        });
      }
      if (finished) break;
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::int64_t i = 0; i < kPerProducer; ++i) {
        if (rings[p]->push(make(static_cast<std::uint32_t>(p), i))) ++pushed_ok[p];
      }
      done.fetch_add(1, std::memory_order_release);
    });
  }
  for (auto& t : producers) t.join();
  consumer.join();
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(static_cast<std::uint64_t>(delivered[p]), pushed_ok[p]);
    EXPECT_EQ(pushed_ok[p] + rings[p]->dropped(), static_cast<std::uint64_t>(kPerProducer));
    EXPECT_EQ(rings[p]->dropped_for(static_cast<std::uint32_t>(p)), rings[p]->dropped());
    EXPECT_EQ(rings[p]->pushed(), pushed_ok[p]);
  }
}

// Each slot is one whole cache line: Event is 64-byte aligned and the ring's slot array starts on a
// line, so no slot straddles two lines (the producer's write and the collector's read of the
// previous slot never share one).
TEST(Ring, SlotsAreCacheLineAligned) {
  EXPECT_EQ(alignof(pm::Event), 64u);
  for (std::size_t capacity : {64u, 1024u, 65536u}) {
    pm::Ring ring(capacity, 1, "t");
    for (int i = 0; i < 3; ++i) {
      pm::Event* slot = ring.try_reserve(0);
      ASSERT_NE(slot, nullptr);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(slot) % 64, 0u) << "capacity " << capacity;
      ring.publish();
    }
  }
}
