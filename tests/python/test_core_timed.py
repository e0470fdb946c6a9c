"""The C++ timing wrapper _core.timed: transparency, method binding, introspection, spans."""

from __future__ import annotations

import gc
import inspect
import os
import sys
import weakref

import pytest
from test_core_readers import read_csv

from profilemate import _core


@pytest.fixture
def rec(tmp_path):
    pdir = _core.start(str(tmp_path), "timed", flush_interval_ms=20)
    table = _core.define_table(
        "timed_spans", [("step", "step"), ("name", "name"), ("ctx", "ctx"), ("dur_ms", "dur_ms")]
    )
    try:
        yield pdir, table
    finally:
        _core.stop()


def rows(pdir):
    _core.flush()
    return read_csv(os.path.join(pdir, "timed_spans.csv"))[1]


def target(a, b=2, *args, key=None, **kw):
    """Target doc."""
    return (a, b, args, key, kw)


def test_result_args_and_kwargs_pass_through(rec):
    _, table = rec
    f = _core.timed(target, table, _core.intern("target"))
    assert f(1) == (1, 2, (), None, {})
    assert f(1, 3, 4, 5, key="k", extra=6) == (1, 3, (4, 5), "k", {"extra": 6})
    sentinel = object()
    assert _core.timed(lambda: sentinel, table, 1)() is sentinel


def test_called_exactly_once_and_exception_untouched(rec):
    pdir, table = rec
    calls = []
    err = KeyError("boom")

    def fails(x):
        calls.append(x)
        raise err

    f = _core.timed(fails, table, _core.intern("fails"), _core.intern("ctx-a"))
    _core.set_step(17)
    with pytest.raises(KeyError) as info:
        f(5)
    assert info.value is err and calls == [5]
    tb_names = []
    tb = info.value.__traceback__
    while tb is not None:
        tb_names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert tb_names[-1] == "fails"  # the original traceback, ending in the target
    assert rows(pdir) == [["17", "fails", "ctx-a", rows(pdir)[0][3]]]  # span recorded anyway
    _core.set_step(-1)


def test_span_carries_current_step_and_duration(rec):
    pdir, table = rec
    import time

    f = _core.timed(lambda: time.sleep(0.02), table, _core.intern("sleepy"))
    _core.set_step(41)
    f()
    _core.set_step(42)
    f()
    _core.set_step(-1)
    got = rows(pdir)
    assert [r[0] for r in got] == ["41", "42"]
    assert all(r[1] == "sleepy" for r in got)
    assert all(20.0 <= float(r[3]) < 2000.0 for r in got)


def test_works_as_method_and_bound_attribute(rec):
    pdir, table = rec

    class Runner:
        def __init__(self):
            self.n = 0

        def step(self, k, *, by=1):
            """Step doc."""
            self.n += k * by
            return self

    Runner.step = _core.timed(Runner.step, table, _core.intern("Runner.step"))
    r = Runner()
    assert r.step(2, by=3) is r and r.n == 6  # LOAD_METHOD path (no bound method)
    m = r.step  # descriptor path: a bound method
    assert inspect.ismethod(m) and m.__self__ is r
    m(1)
    assert r.n == 7
    assert Runner.step(r, 1) is r  # through the class: unbound
    assert r.n == 8
    assert len(rows(pdir)) == 3


def test_introspection_follows_wrapped(rec):
    _, table = rec
    f = _core.timed(target, table, 1)
    assert f.__wrapped__ is target
    assert f.__name__ == "target" and f.__qualname__ == "target"
    assert f.__doc__ == "Target doc." and f.__module__ == __name__
    assert inspect.signature(f) == inspect.signature(target)
    assert isinstance(f, _core.TimedCallable)
    assert "target" in repr(f)

    class C:
        def meth(self, x, y=1):
            return x

    C.meth = _core.timed(C.meth, table, 1)
    assert str(inspect.signature(C().meth)) == "(x, y=1)"
    assert C.meth.__qualname__.endswith("C.meth")


def test_copies_function_dict_and_allows_attributes(rec):
    _, table = rec

    def g():
        pass

    g.marker = "m"
    f = _core.timed(g, table, 1)
    assert f.marker == "m"
    f.probe_state = 3
    assert f.probe_state == 3


def test_not_callable_is_type_error():
    with pytest.raises(TypeError):
        _core.timed(42, 0, 1)


def test_no_allocation_per_call(rec):
    _, table = rec

    class K:
        def m(self, x):
            return x

    K.m = _core.timed(K.m, table, 1)
    free = _core.timed(lambda x: x, table, 1)
    k = K()
    for _ in range(1000):  # warm up: the thread's ring, caches
        k.m(1)
        free(1)
    before = sys.getallocatedblocks()
    for _ in range(100000):
        k.m(1)
        free(1)
    after = sys.getallocatedblocks()
    assert after - before < 50  # 200k calls: anything per call would show as thousands


def test_passthrough_when_not_recording(tmp_path):
    assert not _core.enabled()
    calls = []
    f = _core.timed(lambda x: calls.append(x) or x, 0, 1)
    assert f(3) == 3 and calls == [3]


def test_garbage_collected_in_cycles():
    def fn():
        pass

    f = _core.timed(fn, 0, 1)
    fn.self_ref = f  # cycle: f -> fn -> f (through fn.__dict__)
    ref = weakref.ref(f)
    del f, fn
    gc.collect()
    assert ref() is None
