// Helpers of the hardening tests (test_thread_exit, test_signal_locks, test_losses, test_files).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "profilemate/engine.hpp"

namespace pmtest {

namespace pm = profilemate;

inline pm::StartOptions hardening_options(const std::string& dir, const std::string& label,
                                          std::int64_t flush_interval_ms = 100) {
  pm::StartOptions o;
  o.session_dir = dir;
  o.label = label;
  o.ring_capacity = 1024;
  o.flush_interval_ms = flush_interval_ms;
  o.trace = false;
  return o;
}

inline std::uint32_t hardening_table() {
  return pm::define_table("hardening_rows", {{"ts", "ts_sec"}, {"name", "name"}, {"v", "a0"}});
}

inline std::string process_dir_for(const std::string& session, const std::string& label) {
  return session + "/" + label + "-" + std::to_string(::getpid());
}

// Ends a death-test child: exit status 0 when ok, else 1 after saying why
// on stderr.
[[noreturn]] inline void finish(bool ok, const std::string& why) {
  if (!ok) std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(ok ? 0 : 1);
}

}  // namespace pmtest
