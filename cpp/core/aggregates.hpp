// Aggregators fed by the collector: an event count per (table, name) and, for spans, a
// log-linear duration histogram. Collector-thread only; no locking.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "profilemate/event.hpp"
#include "profilemate/histogram.hpp"

namespace profilemate {

class Aggregates {
 public:
  struct Entry {
    std::uint64_t count = 0;
    std::uint8_t kinds = 0;                // bit per EventKind seen
    std::unique_ptr<Histogram> durations;  // spans only
  };

  void add(const Event& e) {
    Entry* entry = find(e.table(), e.name);
    ++entry->count;
    entry->kinds =
        static_cast<std::uint8_t>(entry->kinds | (1u << static_cast<unsigned>(e.kind())));
    if (e.kind() == EventKind::kSpan) {
      if (!entry->durations) entry->durations = std::make_unique<Histogram>();
      entry->durations->add(e.dur_ns);
    }
  }

  const std::unordered_map<std::uint64_t, Entry>& entries() const noexcept { return map_; }
  static std::uint32_t table_of(std::uint64_t key) noexcept {
    return static_cast<std::uint32_t>(key >> 32);
  }
  static std::uint32_t name_of(std::uint64_t key) noexcept {
    return static_cast<std::uint32_t>(key);
  }

 private:
  static constexpr std::uint32_t kDenseNames = 4096;

  // Names are interned ids, small and dense in practice: a per-table array of entry pointers
  // answers most lookups with one index; the map (whose nodes never move, so the cached pointers
  // stay valid) owns the entries and covers large ids.
  Entry* find(std::uint32_t table, std::uint32_t name) {
    if (name < kDenseNames) {
      auto& dense = dense_[table & 0xffu];
      if (name < dense.size() && dense[name] != nullptr) return dense[name];
      Entry* e = &map_[(static_cast<std::uint64_t>(table) << 32) | name];
      if (name >= dense.size()) dense.resize(name + 1u, nullptr);
      dense[name] = e;
      return e;
    }
    return &map_[(static_cast<std::uint64_t>(table) << 32) | name];
  }
  std::unordered_map<std::uint64_t, Entry> map_;
  std::vector<Entry*> dense_[kMaxTables];
};

}  // namespace profilemate
