#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "profilemate/histogram.hpp"

namespace pm = profilemate;

namespace {

std::int64_t exact_nearest_rank(std::vector<std::int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

void check(const std::vector<std::int64_t>& values, const char* what) {
  pm::Histogram h;
  for (auto v : values) h.add(v);
  ASSERT_EQ(h.count(), values.size());
  for (double q : {0.5, 0.95, 0.99, 0.999}) {
    const auto exact = static_cast<double>(exact_nearest_rank(values, q));
    const auto got = static_cast<double>(h.percentile(q));
    EXPECT_LE(std::fabs(got - exact), 0.01 * exact + 1e-9)
        << what << " q=" << q << " exact=" << exact << " got=" << got;
  }
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
}

}  // namespace

TEST(Histogram, BucketsAreContiguousAndNarrow) {
  std::uint64_t expect_low = 0;
  for (std::uint32_t b = 0; b < 5000; ++b) {
    const auto lo = pm::Histogram::bucket_low(b), hi = pm::Histogram::bucket_high(b);
    ASSERT_EQ(lo, expect_low) << b;
    ASSERT_GE(hi, lo);
    ASSERT_EQ(pm::Histogram::bucket_of(lo), b);
    ASSERT_EQ(pm::Histogram::bucket_of(hi), b);
    if (lo >= pm::Histogram::kSub) {
      ASSERT_LE(static_cast<double>(hi - lo + 1) / static_cast<double>(lo), 1.0 / 128 + 1e-12);
    }
    expect_low = hi + 1;
  }
}

TEST(Histogram, PercentilesWithinOnePercentOfExact) {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<std::int64_t> uniform, lognormal, exponential, bimodal, small;
    std::uniform_int_distribution<std::int64_t> u(1000, 50'000'000);
    std::lognormal_distribution<double> ln(12.0, 1.5);
    std::exponential_distribution<double> ex(1.0 / 250000.0);
    std::normal_distribution<double> fast(40000, 3000), slow(9'000'000, 500000);
    std::bernoulli_distribution pick(0.97);
    std::uniform_int_distribution<std::int64_t> tiny(0, 300);
    for (int i = 0; i < 100000; ++i) {
      uniform.push_back(u(rng));
      lognormal.push_back(static_cast<std::int64_t>(ln(rng)));
      exponential.push_back(static_cast<std::int64_t>(ex(rng)));
      bimodal.push_back(
          std::max<std::int64_t>(0, static_cast<std::int64_t>(pick(rng) ? fast(rng) : slow(rng))));
      small.push_back(tiny(rng));
    }
    check(uniform, "uniform");
    check(lognormal, "lognormal");
    check(exponential, "exponential");
    check(bimodal, "bimodal");
    check(small, "small");
  }
}

TEST(Histogram, MergeEqualsAddingEverything) {
  pm::Histogram a, b, all;
  for (std::int64_t v = 1; v < 100000; v += 7) {
    (v % 3 ? a : b).add(v);
    all.add(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double q : {0.5, 0.9, 0.99}) EXPECT_EQ(a.percentile(q), all.percentile(q));
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
}

TEST(Histogram, EmptyAndNegative) {
  pm::Histogram h;
  EXPECT_EQ(h.percentile(0.5), 0);
  h.add(-5);  // clamped to 0
  EXPECT_EQ(h.percentile(0.99), 0);
  EXPECT_EQ(h.count(), 1u);
}
