#include "profilemate/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace profilemate {

std::uint32_t Histogram::bucket_of(std::uint64_t v) noexcept {
  if (v < kSub) return static_cast<std::uint32_t>(v);
  const int e = 63 - std::countl_zero(v);  // 2^e <= v < 2^(e+1), e >= kSubBits
  const int shift = e - kSubBits;
  const std::uint64_t sub = (v >> shift) & (kSub - 1);
  return static_cast<std::uint32_t>(kSub + static_cast<std::uint64_t>(shift) * kSub + sub);
}

std::uint64_t Histogram::bucket_low(std::uint32_t b) noexcept {
  if (b < kSub) return b;
  const std::uint64_t shift = (b - kSub) / kSub;
  const std::uint64_t sub = (b - kSub) % kSub;
  return (kSub + sub) << shift;
}

std::uint64_t Histogram::bucket_high(std::uint32_t b) noexcept {
  if (b < kSub) return b;
  const std::uint64_t shift = (b - kSub) / kSub;
  return bucket_low(b) + ((std::uint64_t{1} << shift) - 1);
}

void Histogram::add(std::int64_t value) noexcept {
  if (value < 0) value = 0;  // clock skew between two reads cannot make a negative duration
  const std::uint32_t b = bucket_of(static_cast<std::uint64_t>(value));
  if (b >= buckets_.size()) buckets_.resize(b + 1, 0);
  ++buckets_[b];
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  ++count_;
  sum_ += static_cast<double>(value);
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  if (other.buckets_.size() > buckets_.size()) buckets_.resize(other.buckets_.size(), 0);
  for (std::size_t i = 0; i < other.buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

std::int64_t Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least ceil(q * n) values <= it (rank >= 1).
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::uint32_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      const std::uint64_t lo = bucket_low(b);
      const std::uint64_t hi = bucket_high(b);
      const auto mid = static_cast<std::int64_t>(lo + (hi - lo) / 2);
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace profilemate
