// The ring registry: every recording thread's ring, on a lock-free singly linked list.
//
// Threads push their ring at the head (CAS, release) the first time they record in a session
// (detail::register_thread, declared in engine.hpp). Only the collector unlinks and frees rings
// (those whose thread exited and that are drained), so no other thread ever dereferences a freed
// ring: producers only touch their own ring, and nobody else walks the list while a collector runs
// (start() walks it only before its collector starts; the fork child only after fork, alone).
//
// A thread retires its own ring and never touches it again: at thread exit (a thread-local guard
// marks it orphaned) or when it first records in a new session. Nobody but the owner retires a
// ring, so no producer can write into freed memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "profilemate/event.hpp"
#include "profilemate/internal/ring.hpp"

namespace profilemate::collector {

// A registered ring plus what only the collector keeps about it. The recording thread sees just
// `ring` (detail::tls_ring points at it); everything else is written by the collector thread
// (and by start() before its collector runs).
struct RingNode {
  RingNode(std::size_t capacity, std::int32_t tid, std::string thread_name)
      : ring(capacity, tid, std::move(thread_name)) {}

  Ring ring;
  // Registry link: written once before the node is published, then only by the collector.
  RingNode* next = nullptr;
  // What the current session has already accounted for (Ring counters only grow).
  std::uint64_t seen_pushed = 0;
  std::uint64_t seen_dropped = 0;
  std::uint64_t seen_dropped_by_table[kMaxTables] = {};
  // thread_name metadata already handed to the sinks this session.
  bool named_in_trace = false;
};

// Events lost outside any ring (a thread that could not register one, an event that raced stop()):
// a process-wide count that only grows; sessions report the difference since their start.
void add_lost(std::uint64_t n) noexcept;
std::uint64_t lost_events() noexcept;

// Capacity of the rings threads register from now on (start() sets it before the new epoch).
void set_ring_capacity(std::int64_t capacity) noexcept;

// The newest ring (acquire: the rings it links to are fully constructed), or nullptr.
RingNode* first_ring() noexcept;

// Unlinks r (collector only). prev is the node before r as of the collector's walk, or nullptr if
// r was the head then; new rings may have been pushed in front of it since.
void unlink_ring(RingNode* r, RingNode* prev) noexcept;

// Forked child (only the calling thread exists): sets every ring aside (their threads do not exist
// here; nothing is freed in the fork handler) and forgets this thread's ring, so its next event
// registers a new one.
void detach_rings_after_fork() noexcept;
// Frees the rings set aside by detach_rings_after_fork() (the child's session start, or stop()).
void free_detached_rings() noexcept;

// Capacity of the rings registered from now on.
std::int64_t ring_capacity() noexcept;

}  // namespace profilemate::collector
