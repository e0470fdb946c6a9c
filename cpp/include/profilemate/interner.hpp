// The string interner: every name, context and string argument becomes a stable uint32 id once,
// so the hot path carries numbers only.
//
// intern() takes a mutex (it runs once per distinct string, off the hot path). lookup() takes no
// lock: ids index a two-level table of immutable entries that are published with a release store
// of the entry count, so the collector (and a signal-time flush) never waits on a producer that
// holds the mutex. Strings are never freed while the process lives (ids must stay valid), which is
// why the table is bounded: kMaxStrings distinct strings, then intern() fails.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace profilemate {

class Interner {
 public:
  static constexpr std::uint32_t kChunkBits = 12;
  static constexpr std::uint32_t kChunkSize = 1u << kChunkBits;  // entries per chunk
  static constexpr std::uint32_t kMaxChunks = 4096;
  static constexpr std::uint32_t kMaxStrings = kChunkSize * kMaxChunks;  // 16,777,216

  Interner();
  ~Interner();
  Interner(const Interner&) = delete;
  Interner& operator=(const Interner&) = delete;

  // The id of s (> 0), allocating one on first sight; "" is always 0.
  // Throws std::length_error when kMaxStrings distinct strings exist.
  std::uint32_t intern(std::string_view s);

  // The string of an id, or "" for 0 and for ids never handed out. Lock-free; the view stays valid
  // for the life of the interner.
  std::string_view lookup(std::uint32_t id) const noexcept;

  std::uint32_t size() const noexcept { return count_.load(std::memory_order_acquire); }

  // Fork support (see cpp/collector/process_hooks.cpp): the prepare handler holds the mutex across
  // fork() so the child never inherits it locked by a thread that does not exist there.
  std::mutex& mutex() noexcept { return mu_; }

  // The process-wide instance used by the engine and the Python binding.
  static Interner& global();

 private:
  struct Entry {
    const char* data;
    std::uint32_t size;
  };
  std::mutex mu_;                                            // guards map_ and appends
  std::unordered_map<std::string_view, std::uint32_t> map_;  // views into owned storage
  std::atomic<Entry*> chunks_[kMaxChunks];
  std::atomic<std::uint32_t> count_{1};  // id 0 is reserved for ""
};

}  // namespace profilemate
