#include <gtest/gtest.h>

#include "profilemate/event.hpp"

namespace pm = profilemate;

TEST(Event, MetaRoundTripsStepTableKind) {
  for (std::int64_t step :
       {std::int64_t{-1}, std::int64_t{0}, std::int64_t{1}, std::int64_t{123456789012},
        (std::int64_t{1} << 46) - 1, -(std::int64_t{1} << 46)}) {
    for (std::uint32_t table : {0u, 1u, 17u, 255u}) {
      for (auto kind : {pm::EventKind::kSpan, pm::EventKind::kInstant, pm::EventKind::kCounter}) {
        pm::Event e{};
        e.meta = pm::Event::pack_meta(step, table, kind);
        EXPECT_EQ(e.step(), step);
        EXPECT_EQ(e.table(), table);
        EXPECT_EQ(e.kind(), kind);
      }
    }
  }
}
