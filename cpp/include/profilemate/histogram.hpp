// A log-linear (HDR-style) histogram of non-negative integers (durations in ns).
//
// Values below kSub are counted exactly. Above, each power-of-two range [2^e, 2^(e+1)) is split
// into kSub equal sub-buckets, so a bucket's width is at most 1/kSub of its lower bound. A
// percentile is reported as the midpoint of the bucket holding the exact nearest-rank value,
// clamped to the observed [min, max]; the relative error is therefore at most 1/(2*kSub) = 0.39%,
// inside the 1% the summary promises. Memory: buckets grow to the highest index seen, at most
// (64 - kSubBits) * kSub + kSub counters (about 58 KiB); the collector keeps one per (table, name).
#pragma once

#include <cstdint>
#include <vector>

namespace profilemate {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;  // 128 sub-buckets per octave

  void add(std::int64_t value) noexcept;
  void merge(const Histogram& other);

  std::uint64_t count() const noexcept { return count_; }
  std::int64_t min() const noexcept { return count_ ? min_ : 0; }
  std::int64_t max() const noexcept { return count_ ? max_ : 0; }
  double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  double sum() const noexcept { return sum_; }

  // Nearest-rank percentile, q in [0, 1]; 0 for an empty histogram.
  std::int64_t percentile(double q) const noexcept;

  // Exposed for tests.
  static std::uint32_t bucket_of(std::uint64_t v) noexcept;
  static std::uint64_t bucket_low(std::uint32_t b) noexcept;
  static std::uint64_t bucket_high(std::uint32_t b) noexcept;  // inclusive

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::int64_t min_ = 0;
  std::int64_t max_ = 0;
};

}  // namespace profilemate
