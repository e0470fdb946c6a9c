// Escaped forms of interned strings, computed once per id on the collector thread. Interned
// strings never change, so the CSV- and JSON-escaped text can be cached for the life of a session
// and a row costs a memcpy per string column instead of an escape scan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/format.hpp"
#include "profilemate/interner.hpp"

namespace profilemate {

class StringCache {
 public:
  explicit StringCache(const Interner& interner) : interner_(interner) {}

  const std::string& csv(std::uint32_t id) { return get(csv_, id, false); }
  const std::string& json(std::uint32_t id) { return get(json_, id, true); }

 private:
  struct Slot {
    bool filled = false;
    std::string text;
  };
  const std::string& get(std::vector<Slot>& v, std::uint32_t id, bool json) {
    // Ids never handed out resolve to "" and are not cached (they may become valid later).
    if (id >= interner_.size()) return empty_;
    if (id >= v.size()) v.resize(static_cast<std::size_t>(id) + 1 + v.size() / 2);
    Slot& s = v[id];
    if (!s.filled) {
      const auto raw = interner_.lookup(id);
      json ? fmt::json_escape_into(s.text, raw) : fmt::csv_escape_into(s.text, raw);
      s.filled = true;
    }
    return s.text;
  }

  const Interner& interner_;
  std::vector<Slot> csv_;
  std::vector<Slot> json_;
  const std::string empty_;
};

}  // namespace profilemate
