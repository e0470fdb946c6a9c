// profilemate._core: a table of bindings, no logic.
#include <nanobind/nanobind.h>

#include "profilemate/clock.hpp"
#include "profilemate/version.hpp"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "ProfileMate's C++ core";
  m.def("version", &profilemate::version, "The package version.");
  m.def("now_ns", &profilemate::now_ns, "CLOCK_MONOTONIC in nanoseconds (the clock of every event).");
}
