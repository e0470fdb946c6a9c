#include "pyext/session.hpp"

#include <utility>

#include "profilemate/engine.hpp"

namespace profilemate::pyext {

std::string start(std::string session_dir, std::string label, std::int64_t ring_capacity,
                  std::int64_t flush_interval_ms, bool trace, std::int64_t session_start_ns) {
  return profilemate::start({.session_dir = std::move(session_dir),
                             .label = std::move(label),
                             .ring_capacity = ring_capacity,
                             .flush_interval_ms = flush_interval_ms,
                             .trace = trace,
                             .session_start_ns = session_start_ns});
}

}  // namespace profilemate::pyext
