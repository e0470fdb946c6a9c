// _core.IdClock (block_clock.hpp): one pass over a list of the host's objects per call, in C++.
#include "pyext/block_clock.hpp"

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"

namespace nb = nanobind;

namespace profilemate::pyext {

namespace {

PyObject* interned(const std::string& s) {
  PyObject* o = PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
  if (o == nullptr) throw nb::python_error();
  PyUnicode_InternInPlace(&o);
  return o;
}

}  // namespace

PyIdClock::PyIdClock(std::uint32_t table, std::uint32_t name, const std::string& id_attr,
                     const std::string& mark_attr)
    : clock_(table, name), id_attr_(interned(id_attr)), mark_attr_(nullptr) {
  try {
    mark_attr_ = interned(mark_attr);
  } catch (...) {
    Py_DECREF(id_attr_);
    throw;
  }
}

PyIdClock::~PyIdClock() {
  // nanobind destroys instances with the GIL held; at the very end of interpreter shutdown the
  // strings may already be gone with it, so only drop the references while it still runs.
  if (Py_IsInitialized()) {
    Py_XDECREF(id_attr_);
    Py_XDECREF(mark_attr_);
  }
}

std::int64_t PyIdClock::apply(nb::handle objs, Op op) {
  PyObject* seq = objs.ptr();
  if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
    ++unsupported_;  // never consume an iterator the host still needs
    return 0;
  }
  const std::int64_t now = now_ns();
  const std::int64_t step = current_step();
  std::int64_t affected = 0;
  // PySequence_Fast_* on a list or tuple: the items are read in place; the size is re-read every
  // turn because a list could (in principle) change under an attribute read.
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
    PyObject* obj = PySequence_Fast_GET_ITEM(seq, i);
    PyObject* idv = PyObject_GetAttr(obj, id_attr_);
    if (idv == nullptr) throw nb::python_error();
    const long long id = PyLong_AsLongLong(idv);
    Py_DECREF(idv);
    if (id == -1 && PyErr_Occurred()) throw nb::python_error();
    bool marked = false;
    if (op != Op::kReuse) {
      PyObject* mark = PyObject_GetAttr(obj, mark_attr_);
      if (mark == nullptr) throw nb::python_error();
      marked = mark != Py_None;
      Py_DECREF(mark);
    }
    bool hit = false;
    switch (op) {
      case Op::kAcquire:
        hit = clock_.acquire(id, marked, now, step);
        break;
      case Op::kReuse:
        hit = clock_.reuse(id);
        break;
      case Op::kRelease:
        hit = clock_.release(id, marked, now);
        break;
    }
    affected += hit ? 1 : 0;
  }
  return affected;
}

std::int64_t PyIdClock::acquire(nb::handle objs) { return apply(objs, Op::kAcquire); }
std::int64_t PyIdClock::reuse(nb::handle objs) { return apply(objs, Op::kReuse); }
std::int64_t PyIdClock::release(nb::handle objs) { return apply(objs, Op::kRelease); }

}  // namespace profilemate::pyext
