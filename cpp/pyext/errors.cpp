#include "profilemate/engine.hpp"
#include "pyext/pyext.hpp"

namespace profilemate::pyext {

void translate_errors(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const OsError& e) {
    // OSError(errno, text, filename): Python picks the subclass from errno (PermissionError,
    // NotADirectoryError, ...) and the message names the path.
    PyObject* args = Py_BuildValue("(iss)", e.err(), e.what(), e.path().c_str());
    if (args != nullptr) {
      PyErr_SetObject(PyExc_OSError, args);
      Py_DECREF(args);
    }
  }
}

nanobind::dict stats_dict() {
  const Stats s = stats();
  nanobind::dict d;
  d["recorded"] = s.recorded;
  d["dropped"] = s.dropped;
  d["lost"] = s.lost;
  d["written_rows"] = s.written_rows;
  d["rings"] = s.rings;
  d["ring_capacity"] = s.ring_capacity;
  d["write_errors"] = s.write_errors;
  d["invalid_events"] = s.invalid_events;
  d["cycles"] = s.cycles;
  d["signal_snapshots_missed"] = s.signal_snapshots_missed;
  nanobind::dict by_table;
  for (const auto& [name, n] : s.dropped_by_table) by_table[name.c_str()] = n;
  d["dropped_by_table"] = by_table;
  return d;
}

}  // namespace profilemate::pyext
