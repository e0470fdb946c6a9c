// TimedCallable: the C++ timing wrapper probes put around vLLM functions and methods.
//
// Cost model (why it is written against the CPython C API rather than with nanobind):
//  - vectorcall in, PyObject_Vectorcall out: the argument vector and kwnames are forwarded as
//    they came, so no tuple/dict is built and nothing is allocated per call;
//  - Py_TPFLAGS_METHOD_DESCRIPTOR: for `obj.method(...)` the interpreter's LOAD_METHOD path calls
//    us with obj prepended instead of creating a bound-method object; tp_descr_get still returns a
//    bound method for plain attribute access (`m = obj.method`), as functions do;
//  - two CLOCK_MONOTONIC reads and one ring write; when recording is off, one relaxed load and a
//    direct forward.
// Semantics: fn is called exactly once; its result or exception passes through untouched (the
// span is recorded either way, without touching the Python error state).
// Introspection: __wrapped__ (a getset), and __module__/__name__/__qualname__/__doc__/
// __annotations__ plus fn.__dict__ copied into the instance dict as functools.update_wrapper
// does, so inspect.signature() follows __wrapped__ to fn's signature.
// pyext.hpp brings in nanobind and with it Python.h, which structmember.h needs first.
#include "pyext/pyext.hpp"
// clang-format off
#include <structmember.h>
// clang-format on

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"

namespace nb = nanobind;

namespace profilemate::pyext {
namespace {

struct TimedObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* fn;
  PyObject* dict;
  PyObject* weakrefs;
  std::uint32_t table;
  std::uint32_t name;
  std::uint32_t ctx;
};

PyObject* timed_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf,
                           PyObject* kwnames) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  if (!recording()) {
    return PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
  }
  const std::int64_t start = now_ns();
  PyObject* result = PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
  const std::int64_t end = now_ns();
  record_span(t->table, t->name, start, end - start, current_step(), t->ctx);
  return result;
}

PyObject* timed_descr_get(PyObject* self, PyObject* obj, PyObject*) {
  if (obj == nullptr || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

int timed_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  Py_VISIT(Py_TYPE(self));  // instances of heap types own a reference to their type
  Py_VISIT(t->fn);
  Py_VISIT(t->dict);
  return 0;
}

int timed_clear(PyObject* self) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  Py_CLEAR(t->fn);
  Py_CLEAR(t->dict);
  return 0;
}

void timed_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (reinterpret_cast<TimedObject*>(self)->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  timed_clear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* timed_repr(PyObject* self) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  return PyUnicode_FromFormat("<profilemate timed wrapper of %R>", t->fn);
}

PyObject* get_wrapped(PyObject* self, void*) {
  PyObject* fn = reinterpret_cast<TimedObject*>(self)->fn;
  if (fn == nullptr) {
    PyErr_SetString(PyExc_AttributeError, "__wrapped__");
    return nullptr;
  }
  Py_INCREF(fn);
  return fn;
}

PyObject* get_ids(PyObject* self, void*) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  return Py_BuildValue("(III)", t->table, t->name, t->ctx);
}

PyGetSetDef timed_getset[] = {
    {"__wrapped__", get_wrapped, nullptr, "The wrapped callable.", nullptr},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {"_profilemate_ids", get_ids, nullptr, "(table, name, ctx) this wrapper records.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef timed_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(TimedObject, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(TimedObject, dict), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TimedObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyObject* make_type() {
  static PyType_Slot slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
      {Py_tp_descr_get, reinterpret_cast<void*>(timed_descr_get)},
      {Py_tp_traverse, reinterpret_cast<void*>(timed_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(timed_clear)},
      {Py_tp_dealloc, reinterpret_cast<void*>(timed_dealloc)},
      {Py_tp_repr, reinterpret_cast<void*>(timed_repr)},
      {Py_tp_getset, static_cast<void*>(timed_getset)},
      {Py_tp_members, static_cast<void*>(timed_members)},
      {Py_tp_doc,
       const_cast<char*>("A callable that calls the wrapped function exactly once and "
                         "records its duration as a span (see profilemate._core.timed).")},
      {0, nullptr},
  };
  static PyType_Spec spec = {
      "profilemate._core.TimedCallable",
      sizeof(TimedObject),
      0,
      Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
          Py_TPFLAGS_METHOD_DESCRIPTOR | Py_TPFLAGS_DISALLOW_INSTANTIATION,
      slots,
  };
  return PyType_FromSpec(&spec);
}

// Copies what functools.update_wrapper copies: the named attributes, then fn.__dict__.
int copy_metadata(PyObject* self, PyObject* fn) {
  static const char* const kNames[] = {"__module__", "__name__", "__qualname__", "__doc__",
                                       "__annotations__"};
  for (const char* n : kNames) {
    PyObject* v = PyObject_GetAttrString(fn, n);
    if (v == nullptr) {
      if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
      PyErr_Clear();
      continue;
    }
    const int rc = PyObject_SetAttrString(self, n, v);
    Py_DECREF(v);
    if (rc < 0) return -1;
  }
  PyObject* fn_dict = PyObject_GetAttrString(fn, "__dict__");
  if (fn_dict == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
  }
  int rc = 0;
  if (PyDict_Check(fn_dict)) {
    PyObject* own = PyObject_GenericGetDict(self, nullptr);
    rc = own == nullptr ? -1 : PyDict_Update(own, fn_dict);
    Py_XDECREF(own);
  }
  Py_DECREF(fn_dict);
  return rc;
}

}  // namespace

nb::handle timed_type() {
  // Created once, kept for the life of the interpreter (the module also holds a reference).
  static PyObject* type = make_type();
  if (type == nullptr) throw nb::python_error();
  return type;
}

nb::object timed(nb::handle fn, std::uint32_t table, std::uint32_t name, std::uint32_t ctx) {
  if (!PyCallable_Check(fn.ptr())) {
    throw nb::type_error("profilemate._core.timed: fn must be callable");
  }
  auto* type = reinterpret_cast<PyTypeObject*>(timed_type().ptr());
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) throw nb::python_error();
  auto* t = reinterpret_cast<TimedObject*>(self);
  t->vectorcall = timed_vectorcall;
  Py_INCREF(fn.ptr());
  t->fn = fn.ptr();
  t->table = table;
  t->name = name;
  t->ctx = ctx;
  nb::object result = nb::steal(self);
  if (copy_metadata(self, fn.ptr()) < 0) throw nb::python_error();
  return result;
}

}  // namespace profilemate::pyext
