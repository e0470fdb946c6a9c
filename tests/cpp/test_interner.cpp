#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"

namespace pm = profilemate;

TEST(Interner, StableIdsAndLookup) {
  pm::Interner in;
  EXPECT_EQ(in.intern(""), 0u);
  const auto a = in.intern("forward");
  const auto b = in.intern("sample");
  EXPECT_GT(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(in.intern(std::string("forward")), a);
  EXPECT_EQ(in.lookup(a), "forward");
  EXPECT_EQ(in.lookup(b), "sample");
  EXPECT_EQ(in.lookup(0), "");
  EXPECT_EQ(in.lookup(999999), "");  // never handed out
}

TEST(Interner, ConcurrentInterningAgrees) {
  pm::Interner in;
  constexpr int kThreads = 4, kStrings = 5000;
  constexpr int kStride[kThreads] = {1, 7, 13, 17};  // coprime with kStrings
  std::vector<std::vector<std::uint32_t>> ids(kThreads, std::vector<std::uint32_t>(kStrings));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kStrings; ++i) {
        const int k = (i * kStride[t]) % kStrings;  // a different permutation per thread
        ids[t][k] = in.intern("name-" + std::to_string(k));
        // Lock-free lookup of an id another thread may have just published.
        ASSERT_EQ(in.lookup(ids[t][k]), "name-" + std::to_string(k));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(ids[t], ids[0]);
  EXPECT_EQ(in.size(), static_cast<std::uint32_t>(kStrings + 1));
}

TEST(Tables, SourcesAndRedefinition) {
  pm::TableRegistry reg;
  const auto id =
      reg.define("cpu_operations_timing",
                 {{"timestamp_sec", "ts_sec"}, {"operation", "name"}, {"ms", "dur_ms"}});
  EXPECT_EQ(reg.define("cpu_operations_timing",
                       {{"timestamp_sec", "ts_sec"}, {"operation", "name"}, {"ms", "dur_ms"}}),
            id);
  EXPECT_THROW(reg.define("cpu_operations_timing", {{"timestamp_sec", "ts_sec"}}),
               std::invalid_argument);
  try {
    reg.define("bad", {{"x", "bogus"}});
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bogus"), std::string::npos);
    EXPECT_NE(msg.find("ts_sec"), std::string::npos);  // lists the allowed sources
    EXPECT_NE(msg.find("s3"), std::string::npos);
  }
  EXPECT_THROW(reg.define("../escape", {{"x", "a0"}}), std::invalid_argument);
  EXPECT_THROW(reg.define("", {{"x", "a0"}}), std::invalid_argument);
  EXPECT_THROW(reg.define("nocols", {}), std::invalid_argument);
  ASSERT_NE(reg.get(id), nullptr);
  EXPECT_EQ(reg.get(id)->columns.size(), 3u);
  EXPECT_EQ(reg.get(id + 1), nullptr);
}
