// _core.IdClock: the Python face of IdClock (id_clock.hpp). A probe hands it a list of the host's
// objects once per call (a batch of slots allocated, released or reused); the loop over them, the
// attribute reads and the eviction rows are C++. The attribute names (an integer id, and a "mark"
// whose value None means "no content") come from Python, so nothing here knows the host.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>

#include "pyext/id_clock.hpp"

namespace profilemate::pyext {

class PyIdClock {
 public:
  PyIdClock(std::uint32_t table, std::uint32_t name, const std::string& id_attr,
            const std::string& mark_attr);
  ~PyIdClock();
  PyIdClock(const PyIdClock&) = delete;
  PyIdClock& operator=(const PyIdClock&) = delete;

  void reserve(std::int64_t n) { clock_.reserve(n); }
  // Each takes a list or tuple (anything else -- an iterator the host still has to consume -- is
  // left alone and counted in `unsupported`). Return the number of objects the call affected:
  // acquire: evicted (rows recorded); reuse: taken out of the parked set; release: parked.
  std::int64_t acquire(nanobind::handle objs);
  std::int64_t reuse(nanobind::handle objs);
  std::int64_t release(nanobind::handle objs);
  std::int64_t clear_marks() { return clock_.clear_marks(); }

  std::int64_t parked() const { return clock_.parked(); }
  std::int64_t evicted() const { return clock_.evicted(); }
  std::int64_t overflow() const { return clock_.overflow(); }
  std::int64_t capacity() const { return clock_.capacity(); }
  std::int64_t unsupported() const { return unsupported_; }

 private:
  enum class Op { kAcquire, kReuse, kRelease };
  std::int64_t apply(nanobind::handle objs, Op op);

  IdClock clock_;
  PyObject* id_attr_;    // interned str
  PyObject* mark_attr_;  // interned str
  std::int64_t unsupported_ = 0;
};

}  // namespace profilemate::pyext
