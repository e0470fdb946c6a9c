// _core.start's keyword arguments -> profilemate::start(StartOptions). The engine has one start();
// the flat argument list is the Python signature's business, so it lives here, not in the core.
#pragma once

#include <cstdint>
#include <string>

namespace profilemate::pyext {

std::string start(std::string session_dir, std::string label, std::int64_t ring_capacity,
                  std::int64_t flush_interval_ms, bool trace, std::int64_t session_start_ns);

}  // namespace profilemate::pyext
