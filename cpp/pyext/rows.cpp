// record_row / record_rows: rows a hook records besides its own (a preemption, a finished
// request, a batch of evictions), with up to kMaxRowValues values each, in one call. The values
// come as a tuple or list (None = NaN); record_rows loops over many rows here, in C++, so a hook
// hands a whole step's worth of rows over in one crossing.
// count_zero: how many items of a list/tuple equal 0 -- a per-request count a hook needs every step
// (requests still in their prompt), done here rather than by a Python loop over the batch.
#include <Python.h>

#include <limits>

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "pyext/pyext.hpp"

namespace nb = nanobind;

namespace profilemate::pyext {
namespace {

// values[i] as a double (None -> NaN); false with a Python error set when it is not a number.
bool as_double(PyObject* v, double& out) {
  if (v == Py_None) {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (PyFloat_CheckExact(v)) {
    out = PyFloat_AS_DOUBLE(v);
    return true;
  }
  out = PyFloat_AsDouble(v);  // ints, bools, numpy scalars, objects with __float__
  return !(out == -1.0 && PyErr_Occurred());
}

struct FastSeq {
  explicit FastSeq(nb::handle values)
      : seq(PySequence_Fast(values.ptr(), "profilemate: values must be a tuple or a list")) {
    if (seq == nullptr) throw nb::python_error();
  }
  ~FastSeq() { Py_DECREF(seq); }
  FastSeq(const FastSeq&) = delete;
  FastSeq& operator=(const FastSeq&) = delete;
  Py_ssize_t size() const { return PySequence_Fast_GET_SIZE(seq); }
  PyObject** items() const { return PySequence_Fast_ITEMS(seq); }
  PyObject* seq;
};

}  // namespace

void record_row_py(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns, std::int64_t dur_ns,
                   std::int64_t step, std::uint32_t ctx, nb::handle values, nb::handle text) {
  if (!recording()) return;
  std::string_view tv;
  if (!text.is_none()) {
    Py_ssize_t len = 0;
    const char* s =
        PyUnicode_Check(text.ptr()) ? PyUnicode_AsUTF8AndSize(text.ptr(), &len) : nullptr;
    if (s == nullptr) {
      if (!PyErr_Occurred()) throw nb::type_error("profilemate: text must be a str or None");
      throw nb::python_error();
    }
    tv = std::string_view(s, static_cast<std::size_t>(len));
  }
  FastSeq seq(values);
  const Py_ssize_t n = seq.size();
  if (n > kMaxRowValues) {
    throw nb::value_error("profilemate: a row carries at most 16 values");
  }
  double vals[kMaxRowValues];
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!as_double(seq.items()[i], vals[i])) throw nb::python_error();
  }
  if (ts_ns == 0) ts_ns = now_ns();
  record_row(dur_ns > 0 ? EventKind::kSpan : EventKind::kInstant, table, name, ts_ns, dur_ns, step,
             ctx, vals, static_cast<int>(n), tv);
}

std::size_t record_rows_py(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                           std::int64_t step, int ncols, nb::handle values, std::uint32_t ctx) {
  if (ncols < 1 || ncols > kMaxRowValues) {
    throw nb::value_error("profilemate: ncols must be 1..16");
  }
  FastSeq seq(values);
  const Py_ssize_t n = seq.size();
  if (n % ncols != 0) {
    throw nb::value_error("profilemate: len(values) is not a multiple of ncols");
  }
  if (!recording()) return 0;
  if (ts_ns == 0) ts_ns = now_ns();
  double vals[kMaxRowValues];
  std::size_t rows = 0;
  for (Py_ssize_t r = 0; r < n; r += ncols) {
    for (int j = 0; j < ncols; ++j) {
      if (!as_double(seq.items()[r + j], vals[j])) throw nb::python_error();
    }
    record_row(EventKind::kInstant, table, name, ts_ns, 0, step, ctx, vals, ncols);
    ++rows;
  }
  return rows;
}

namespace {

// 1 when v is the int 0, 0 when it is another int, -1 when it is not an exact int.
int exact_int_is_zero(PyObject* v) {
  if (!PyLong_CheckExact(v)) return -1;
#if PY_VERSION_HEX >= 0x030C0000
  return PyUnstable_Long_IsCompact(reinterpret_cast<PyLongObject*>(v)) &&
         PyUnstable_Long_CompactValue(reinterpret_cast<PyLongObject*>(v)) == 0;
#else
  return Py_SIZE(v) == 0;  // 3.11 and older: the sign-and-size field is 0 for the int 0 only
#endif
}

}  // namespace

std::size_t count_zero_py(nb::handle values) {
  FastSeq seq(values);
  const Py_ssize_t n = seq.size();
  PyObject** items = seq.items();
  PyObject* zero = nullptr;  // made only for items that are not exact ints (numpy ints, floats)
  std::size_t count = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    int z = exact_int_is_zero(items[i]);
    if (z < 0) {
      if (zero == nullptr && (zero = PyLong_FromLong(0)) == nullptr) throw nb::python_error();
      z = PyObject_RichCompareBool(items[i], zero, Py_EQ);
      if (z < 0) {
        Py_DECREF(zero);
        throw nb::python_error();
      }
    }
    count += static_cast<std::size_t>(z);
  }
  Py_XDECREF(zero);
  return count;
}

}  // namespace profilemate::pyext
