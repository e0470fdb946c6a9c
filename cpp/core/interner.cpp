#include "profilemate/interner.hpp"

#include <cstring>
#include <stdexcept>

namespace profilemate {

Interner::Interner() {
  for (auto& c : chunks_) c.store(nullptr, std::memory_order_relaxed);
  auto* first = new Entry[kChunkSize]();
  first[0] = Entry{"", 0};
  chunks_[0].store(first, std::memory_order_release);
}

Interner::~Interner() {
  const std::uint32_t n = count_.load(std::memory_order_acquire);
  for (std::uint32_t id = 1; id < n; ++id) {
    delete[] chunks_[id >> kChunkBits].load(std::memory_order_relaxed)[id & (kChunkSize - 1)].data;
  }
  for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
}

std::uint32_t Interner::intern(std::string_view s) {
  if (s.empty()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(s); it != map_.end()) return it->second;
  const std::uint32_t id = count_.load(std::memory_order_relaxed);
  if (id >= kMaxStrings) {
    throw std::length_error("profilemate: the string interner is full (" +
                            std::to_string(kMaxStrings) +
                            " distinct strings); intern bounded sets of names only");
  }
  const std::uint32_t chunk = id >> kChunkBits;
  Entry* entries = chunks_[chunk].load(std::memory_order_relaxed);
  if (entries == nullptr) {
    entries = new Entry[kChunkSize]();
    chunks_[chunk].store(entries, std::memory_order_release);
  }
  char* copy = new char[s.size() + 1];
  std::memcpy(copy, s.data(), s.size());
  copy[s.size()] = '\0';
  entries[id & (kChunkSize - 1)] = Entry{copy, static_cast<std::uint32_t>(s.size())};
  map_.emplace(std::string_view(copy, s.size()), id);
  // Publish: a reader that sees count_ > id (acquire) also sees the entry and its chunk pointer.
  count_.store(id + 1, std::memory_order_release);
  return id;
}

std::string_view Interner::lookup(std::uint32_t id) const noexcept {
  if (id >= count_.load(std::memory_order_acquire)) return {};
  const Entry& e = chunks_[id >> kChunkBits].load(std::memory_order_acquire)[id & (kChunkSize - 1)];
  return {e.data, e.size};
}

Interner& Interner::global() {
  // Leaked on purpose: ids must stay resolvable from atexit handlers, signal-time flushes and
  // threads that outlive static destruction.
  static Interner* instance = new Interner();
  return *instance;
}

}  // namespace profilemate
