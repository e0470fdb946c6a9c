// TimedCallable: the C++ wrapper every probe puts around a host function or method.
//
//   timed(fn, table, name, ctx=0, *, before=None, after=None, params=(), sets_step=False,
//         on_error=None)
//
// One call of the wrapper, while recording:
//   p = the arguments named by `params`, picked out of this call's arguments
//   values = before(*p)                       (optional hook: pulls fields off the host's objects)
//   t0 = now; result = fn(*args, **kwargs); t1 = now      (fn runs exactly once, always)
//   values += after(result, *p)               (optional hook, only when fn returned)
//   record_span(table, name, t0, t1 - t0, step, ctx, values...)
// `params` binds fn's arguments by name, resolved once from fn's signature by the caller: one
// (position, name, default) per hook parameter; position -1 for keyword-only (or **kwargs)
// arguments, name None for positional-only ones. An argument the call did not pass is the default
// (None when there is none). So a hook is a plain function of exactly the values it reads -- no
// *args tuple, no **kwargs dict per call.
// A hook returns None, a number, or a tuple of numbers (None inside a tuple = NaN); the values fill
// the row's a0..a15 in order, the before hook's first. With sets_step, the before hook's first
// value is the engine step id: it becomes the process's current step *before* fn runs (so events
// recorded inside fn carry it) and is not one of the row's values.
//
// Never break the host: a hook that raises (or returns something that is not numbers) is switched
// off for this wrapper, counted (hook_errors), and reported once through on_error(exc) -- or, with
// no on_error, one warning on the `profilemate` logger. fn still runs exactly once and its result
// or exception reaches the caller untouched. A KeyboardInterrupt/SystemExit raised inside a hook is
// the host's, not ours: fn still runs, then the interrupt is re-raised as if it had arrived just
// after the call.
//
// Cost model (why the CPython C API rather than nanobind):
//  - vectorcall in, PyObject_Vectorcall out: the argument vector and kwnames are forwarded as they
//    came, so no tuple/dict is built; the hooks get their few arguments in a C stack array;
//    nothing is allocated per call;
//  - Py_TPFLAGS_METHOD_DESCRIPTOR: `obj.method(...)` calls us with obj prepended, no bound method;
//  - recording off: one relaxed load and a direct forward; no hooks run.
// Introspection: __wrapped__, and __module__/__name__/__qualname__/__doc__/__annotations__ plus
// fn.__dict__ copied as functools.update_wrapper does (inspect.signature follows __wrapped__).
// Pickling: __reduce__ names the wrapped function by its qualified name, so pickle stores a
// reference that resolves to whatever that name holds where it is loaded.
//
// pyext.hpp brings in nanobind and with it Python.h, which structmember.h needs first.
#include "pyext/pyext.hpp"
// clang-format off
#include <structmember.h>
// clang-format on

#include <cmath>
#include <limits>

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"

namespace nb = nanobind;

namespace profilemate::pyext {
namespace {

constexpr int kMaxValues = kMaxRowValues;  // a0..a15 of a row (engine.hpp: record_row)
constexpr Py_ssize_t kMaxParams = 8;

struct Param {
  Py_ssize_t pos;  // index in the positional arguments, or -1 (keyword only)
  PyObject* name;  // str, or nullptr for a positional-only parameter
  PyObject* dflt;  // used when the call did not pass it (never nullptr: Py_None at least)
};

struct TimedObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* fn;
  PyObject* before;    // nullptr = no hook
  PyObject* after;     // nullptr = no hook
  PyObject* on_error;  // nullptr = warn on the `profilemate` logger
  PyObject* dict;
  PyObject* weakrefs;
  std::uint32_t table;
  std::uint32_t name;
  std::uint32_t ctx;
  int sets_step;   // T_BOOL-compatible (int)
  int hooks_live;  // 1 while the hooks run; 0 after one raised
  Py_ssize_t hook_errors;
  Py_ssize_t nparams;
  Param params[kMaxParams];
};

// --- exceptions (the hook error path; never on the fast path) --------------------------------

// The raised exception, taken out of the thread state (normalized), or nullptr.
PyObject* take_exception() {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (type == nullptr) return nullptr;
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
#endif
}

void restore_exception(PyObject* exc) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(exc);
#else
  PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(exc))), exc,
                PyException_GetTraceback(exc));
#endif
}

// Reports exc once (on_error(exc), or a warning on the `profilemate` logger). Swallows anything
// the report itself raises: the host must not see it.
void report_hook_error(TimedObject* t, PyObject* exc) {
  PyObject* r = nullptr;
  if (t->on_error != nullptr) {
    r = PyObject_CallOneArg(t->on_error, exc);
  } else if (PyObject* logging = PyImport_ImportModule("logging")) {
    PyObject* logger = PyObject_CallMethod(logging, "getLogger", "s", "profilemate");
    Py_DECREF(logging);
    if (logger != nullptr) {
      PyObject* msg = PyUnicode_FromFormat(
          "a probe hook around %R raised %R and is switched off for this process; the wrapped "
          "call is unaffected",
          t->fn, exc);
      PyObject* kwargs = msg != nullptr ? Py_BuildValue("{s:O}", "exc_info", exc) : nullptr;
      PyObject* warning = PyObject_GetAttrString(logger, "warning");
      if (warning != nullptr && kwargs != nullptr) {
        PyObject* args = PyTuple_Pack(1, msg);
        if (args != nullptr) r = PyObject_Call(warning, args, kwargs);
        Py_XDECREF(args);
      }
      Py_XDECREF(warning);
      Py_XDECREF(kwargs);
      Py_XDECREF(msg);
      Py_DECREF(logger);
    }
  }
  if (r == nullptr) PyErr_Clear();
  Py_XDECREF(r);
}

// A hook raised (the exception is set). Switch the hooks off and report. Returns the exception
// when it is the host's own interrupt (KeyboardInterrupt, SystemExit, ...: anything that is not an
// Exception), to be re-raised after fn; nullptr otherwise.
PyObject* hook_failed(TimedObject* t) {
  PyObject* exc = take_exception();
  if (exc == nullptr) return nullptr;
  if (!PyObject_TypeCheck(exc, reinterpret_cast<PyTypeObject*>(PyExc_Exception))) return exc;
  t->hooks_live = 0;
  ++t->hook_errors;
  if (t->hook_errors == 1) report_hook_error(t, exc);
  Py_DECREF(exc);
  return nullptr;
}

// Appends a hook's return value to vals. Returns -1 with an exception set when it is not None, a
// number, or a tuple of numbers/None, or when there would be more than `limit` values in all.
// A str value (at most one per row) becomes the row's text: a new reference in *text.
int take_values(PyObject* r, double* vals, int& n, PyObject** text, int limit = kMaxValues) {
  auto one = [&](PyObject* v) -> int {
    if (PyUnicode_CheckExact(v)) {
      if (*text != nullptr) {
        PyErr_SetString(PyExc_ValueError, "probe hooks returned more than one text value");
        return -1;
      }
      Py_INCREF(v);
      *text = v;
      return 0;
    }
    if (n >= limit) {
      PyErr_Format(PyExc_ValueError, "probe hooks returned more than %d values", kMaxValues);
      return -1;
    }
    if (v == Py_None) {
      vals[n++] = std::numeric_limits<double>::quiet_NaN();
      return 0;
    }
    if (PyFloat_CheckExact(v)) {
      vals[n++] = PyFloat_AS_DOUBLE(v);
      return 0;
    }
    if (PyLong_CheckExact(v)) {  // no float object made on the way (unlike PyFloat_AsDouble)
      const double d = PyLong_AsDouble(v);
      if (d == -1.0 && PyErr_Occurred()) return -1;
      vals[n++] = d;
      return 0;
    }
    if (!PyNumber_Check(v)) {
      PyErr_Format(PyExc_TypeError, "a probe hook returned %R, not a number", v);
      return -1;
    }
    const double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    vals[n++] = d;
    return 0;
  };
  if (r == Py_None) return 0;
  if (PyTuple_CheckExact(r)) {
    const Py_ssize_t k = PyTuple_GET_SIZE(r);
    for (Py_ssize_t i = 0; i < k; ++i) {
      if (one(PyTuple_GET_ITEM(r, i)) < 0) return -1;
    }
    return 0;
  }
  return one(r);
}

// Fills out[0..nparams) with the call's arguments named by t->params (borrowed references).
void bind(const TimedObject* t, PyObject* const* args, size_t nargsf, PyObject* kwnames,
          PyObject** out) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < t->nparams; ++i) {
    const Param& p = t->params[i];
    PyObject* v = nullptr;
    if (p.pos >= 0 && p.pos < nargs) {
      v = args[p.pos];
    } else if (p.name != nullptr) {
      // Keyword names are interned identifiers on both sides: a pointer match is the rule.
      for (Py_ssize_t k = 0; k < nkw && v == nullptr; ++k) {
        PyObject* kw = PyTuple_GET_ITEM(kwnames, k);
        if (kw == p.name) v = args[nargs + k];
      }
      for (Py_ssize_t k = 0; k < nkw && v == nullptr; ++k) {
        if (PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, k), p.name) == 0) v = args[nargs + k];
      }
    }
    out[i] = v != nullptr ? v : p.dflt;
  }
}

PyObject* timed_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf,
                           PyObject* kwnames) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  if (!recording()) {
    return PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
  }
  if (!t->hooks_live) {
    const std::int64_t start = now_ns();
    PyObject* result = PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
    const std::int64_t end = now_ns();
    if (t->table != kNoRowTable) {
      record_span(t->table, t->name, start, end - start, current_step(), t->ctx);
    }
    return result;
  }

  double vals[kMaxValues + 1] = {};  // + the step a sets_step before hook returns first
  PyObject* text = nullptr;          // a hook's str value: the row's text column
  int n = 0;
  std::int64_t step = -1;
  bool have_step = false;
  PyObject* interrupt = nullptr;  // the host's KeyboardInterrupt/SystemExit caught in a hook
  // stack[0] is the after hook's result slot; the bound arguments follow.
  PyObject* stack[1 + kMaxParams];
  bind(t, args, nargsf, kwnames, stack + 1);
  const auto hook_nargs = static_cast<size_t>(t->nparams);
  if (t->before != nullptr) {
    // stack[0] is free during this call: the offset flag lets a callee borrow it.
    PyObject* r = PyObject_Vectorcall(t->before, stack + 1,
                                      hook_nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
    if (r == nullptr || take_values(r, vals, n, &text, kMaxValues + (t->sets_step ? 1 : 0)) < 0) {
      interrupt = hook_failed(t);
      n = 0;
      Py_CLEAR(text);
    } else if (t->sets_step && n > 0) {
      step = static_cast<std::int64_t>(vals[0]);
      have_step = true;
      set_step(step);
      for (int i = 1; i < n; ++i) vals[i - 1] = vals[i];
      vals[--n] = 0;
    }
    Py_XDECREF(r);
  }

  const std::int64_t start = now_ns();
  PyObject* result = PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
  const std::int64_t end = now_ns();

  if (result != nullptr && t->after != nullptr && t->hooks_live) {
    const int before_n = n;
    stack[0] = result;
    PyObject* r = PyObject_Vectorcall(t->after, stack, hook_nargs + 1, nullptr);
    if (r == nullptr || take_values(r, vals, n, &text) < 0) {
      PyObject* intr = hook_failed(t);
      if (intr != nullptr) {
        Py_XDECREF(interrupt);
        interrupt = intr;
      }
      for (int i = before_n; i < kMaxValues; ++i) vals[i] = 0;
      n = before_n;
      Py_CLEAR(text);
    }
    Py_XDECREF(r);
  }
  if (t->table != kNoRowTable) {
    std::string_view tv;
    // Not while fn's exception is pending (the conversion could disturb it): such a row goes
    // without its text.
    if (text != nullptr && result != nullptr) {
      Py_ssize_t len = 0;
      const char* s = PyUnicode_AsUTF8AndSize(text, &len);
      if (s != nullptr) {
        tv = std::string_view(s, static_cast<std::size_t>(len));
      } else {
        PyErr_Clear();  // not encodable (lone surrogates): the row goes without its text
      }
    }
    record_row(EventKind::kSpan, t->table, t->name, start, end - start,
               have_step ? step : current_step(), t->ctx, vals, n, tv);
  }
  Py_XDECREF(text);
  if (interrupt != nullptr) {
    if (result == nullptr) {  // fn's own exception came later: it wins
      Py_DECREF(interrupt);
    } else {
      Py_DECREF(result);
      restore_exception(interrupt);
      return nullptr;
    }
  }
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
  Py_VISIT(t->before);
  Py_VISIT(t->after);
  Py_VISIT(t->on_error);
  Py_VISIT(t->dict);
  for (Py_ssize_t i = 0; i < t->nparams; ++i) {
    Py_VISIT(t->params[i].name);
    Py_VISIT(t->params[i].dflt);
  }
  return 0;
}

int timed_clear(PyObject* self) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  Py_CLEAR(t->fn);
  Py_CLEAR(t->before);
  Py_CLEAR(t->after);
  Py_CLEAR(t->on_error);
  Py_CLEAR(t->dict);
  for (Py_ssize_t i = 0; i < t->nparams; ++i) {
    Py_CLEAR(t->params[i].name);
    Py_CLEAR(t->params[i].dflt);
  }
  t->nparams = 0;
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
  return Py_NewRef(fn);
}

PyObject* get_ids(PyObject* self, void*) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  return Py_BuildValue("(III)", t->table, t->name, t->ctx);
}

PyObject* get_hooks(PyObject* self, void*) {
  auto* t = reinterpret_cast<TimedObject*>(self);
  return Py_BuildValue("(OO)", t->before ? t->before : Py_None, t->after ? t->after : Py_None);
}

// pickle: a string result means "the global of this name in obj.__module__", which pickle then
// checks resolves to this very object -- true while the wrapper is installed.
PyObject* timed_reduce(PyObject* self, PyObject*) {
  return PyObject_GetAttrString(self, "__qualname__");
}

PyMethodDef timed_methods[] = {
    {"__reduce__", timed_reduce, METH_NOARGS, "Pickled by the wrapped function's qualified name."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef timed_getset[] = {
    {"__wrapped__", get_wrapped, nullptr, "The wrapped callable.", nullptr},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {"_profilemate_ids", get_ids, nullptr, "(table, name, ctx) this wrapper records.", nullptr},
    {"_profilemate_hooks", get_hooks, nullptr, "(before, after): the hooks, None where absent.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef timed_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(TimedObject, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(TimedObject, dict), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TimedObject, weakrefs), READONLY, nullptr},
    {"hooks_live", T_BOOL, offsetof(TimedObject, hooks_live), READONLY,
     "False once a hook raised (the wrapper then only times)."},
    {"hook_errors", T_PYSSIZET, offsetof(TimedObject, hook_errors), READONLY,
     "How many times a hook raised (at most once per wrapper: it is then switched off)."},
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
      {Py_tp_methods, static_cast<void*>(timed_methods)},
      {Py_tp_getset, static_cast<void*>(timed_getset)},
      {Py_tp_members, static_cast<void*>(timed_members)},
      {Py_tp_doc,
       const_cast<char*>("A callable that calls the wrapped function exactly once, runs the "
                         "probe's hooks around it and records a span (see "
                         "profilemate._core.timed).")},
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

// True for functions whose call only creates a coroutine, async generator or generator: a
// synchronous wrapper would time the creation, not the work.
bool is_deferred(PyObject* fn) {
  constexpr int kDeferred =
      CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR | CO_GENERATOR;
  PyObject* code = PyObject_GetAttrString(fn, "__code__");
  if (code == nullptr) {
    PyErr_Clear();
    return false;
  }
  bool deferred = false;
  if (PyCode_Check(code)) {
    deferred = (reinterpret_cast<PyCodeObject*>(code)->co_flags & kDeferred) != 0;
  }
  Py_DECREF(code);
  return deferred;
}

PyObject* none_to_null(nb::handle h) { return h.is_valid() && !h.is_none() ? h.ptr() : nullptr; }

}  // namespace

nb::handle timed_type() {
  // Created once, kept for the life of the interpreter (the module also holds a reference).
  static PyObject* type = make_type();
  if (type == nullptr) throw nb::python_error();
  return type;
}

nb::object timed(nb::handle fn, std::uint32_t table, std::uint32_t name, std::uint32_t ctx,
                 nb::handle before, nb::handle after, nb::handle params, bool sets_step,
                 nb::handle on_error) {
  if (!PyCallable_Check(fn.ptr())) {
    throw nb::type_error("profilemate._core.timed: fn must be callable");
  }
  if (is_deferred(fn.ptr())) {
    throw nb::type_error(
        "profilemate._core.timed: fn is a coroutine or generator function; a synchronous timing "
        "wrapper would time only the creation of the coroutine/generator, not its work");
  }
  PyObject* hooks[3] = {none_to_null(before), none_to_null(after), none_to_null(on_error)};
  for (PyObject* h : hooks) {
    if (h != nullptr && !PyCallable_Check(h)) {
      throw nb::type_error("profilemate._core.timed: before, after and on_error must be callable");
    }
  }
  if (sets_step && hooks[0] == nullptr) {
    throw nb::value_error("profilemate._core.timed: sets_step needs a before hook");
  }
  // params: a sequence of (position: int, name: str | None, default) triples.
  nb::tuple ps;
  if (params.is_valid() && !params.is_none()) {
    PyObject* tup = PySequence_Tuple(params.ptr());
    if (tup == nullptr) throw nb::python_error();
    ps = nb::steal<nb::tuple>(tup);
  }
  if (static_cast<Py_ssize_t>(ps.size()) > kMaxParams) {
    throw nb::value_error("profilemate._core.timed: at most 8 params");
  }
  Param parsed[kMaxParams];
  for (std::size_t i = 0; i < ps.size(); ++i) {
    PyObject* tup = PySequence_Tuple(ps[i].ptr());
    if (tup == nullptr) throw nb::python_error();
    nb::tuple p = nb::steal<nb::tuple>(tup);
    if (p.size() != 3)
      throw nb::value_error("profilemate._core.timed: params are (pos, name, default)");
    parsed[i].pos = nb::cast<Py_ssize_t>(p[0]);
    parsed[i].name = p[1].is_none() ? nullptr : p[1].ptr();
    parsed[i].dflt = p[2].ptr();
    if (parsed[i].name != nullptr && !PyUnicode_Check(parsed[i].name)) {
      throw nb::type_error("profilemate._core.timed: a param name is a str or None");
    }
    if (parsed[i].pos < 0 && parsed[i].name == nullptr) {
      throw nb::value_error("profilemate._core.timed: a param needs a position or a name");
    }
  }
  auto* type = reinterpret_cast<PyTypeObject*>(timed_type().ptr());
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) throw nb::python_error();
  auto* t = reinterpret_cast<TimedObject*>(self);
  t->vectorcall = timed_vectorcall;
  t->fn = Py_NewRef(fn.ptr());
  t->before = Py_XNewRef(hooks[0]);
  t->after = Py_XNewRef(hooks[1]);
  t->on_error = Py_XNewRef(hooks[2]);
  t->table = table;
  t->name = name;
  t->ctx = ctx;
  t->sets_step = sets_step ? 1 : 0;
  t->hooks_live = (hooks[0] != nullptr || hooks[1] != nullptr) ? 1 : 0;
  t->hook_errors = 0;
  t->nparams = static_cast<Py_ssize_t>(ps.size());
  for (Py_ssize_t i = 0; i < t->nparams; ++i) {
    t->params[i].pos = parsed[i].pos;
    t->params[i].name = Py_XNewRef(parsed[i].name);
    if (t->params[i].name != nullptr) PyUnicode_InternInPlace(&t->params[i].name);
    t->params[i].dflt = Py_NewRef(parsed[i].dflt);
  }
  nb::object result = nb::steal(self);
  if (copy_metadata(self, fn.ptr()) < 0) throw nb::python_error();
  return result;
}

}  // namespace profilemate::pyext
