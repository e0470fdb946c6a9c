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


# --- hooks (before/after run by the C++ wrapper) ------------------------------------------------


@pytest.fixture
def hooked(tmp_path):
    pdir = _core.start(str(tmp_path), "hooked", flush_interval_ms=20)
    table = _core.define_table(
        "hooked_spans",
        [
            ("step", "step"),
            ("name", "name"),
            ("a0", "a0"),
            ("a1", "a1"),
            ("a2", "a2"),
            ("a3", "a3"),
        ],
    )
    try:
        yield pdir, table
    finally:
        _core.stop()
        _core.set_step(-1)


def hrows(pdir):
    _core.flush()
    return read_csv(os.path.join(pdir, "hooked_spans.csv"))[1]


class Sched:
    def __init__(self):
        self.running = 5

    def schedule(self, budget, *, flag=False):
        return budget * 2


SELF_BUDGET = ((0, "self", None), (1, "budget", None))


def test_hooks_get_the_named_arguments_and_fill_the_row(hooked):
    pdir, table = hooked
    seen = []

    def before(self, budget):
        seen.append(("before", self.running, budget))
        return self.running, budget

    def after(result, self, budget):
        seen.append(("after", result))
        return result

    Sched.schedule_h = _core.timed(
        Sched.schedule, table, _core.intern("h"), before=before, after=after, params=SELF_BUDGET
    )
    s = Sched()
    assert s.schedule_h(3) == 6
    assert s.schedule_h(budget=4, flag=True) == 8  # by keyword: found by name
    assert Sched.schedule_h(s, 5) == 10  # through the class
    assert [r[2:5] for r in hrows(pdir)] == [["5", "3", "6"], ["5", "4", "8"], ["5", "5", "10"]]
    assert seen[:2] == [("before", 5, 3), ("after", 6)]


def test_missing_argument_gets_the_default_and_values_convert(hooked):
    pdir, table = hooked
    f = _core.timed(
        lambda a, b=7: a,
        table,
        _core.intern("d"),
        before=lambda a, b: (b, None, True, 2.5),  # None -> nan, bool -> 1
        params=((0, "a", None), (1, "b", 7)),
    )
    f(1)
    assert hrows(pdir)[0][2:6] == ["7", "", "1", "2.5"]  # None: an empty field


def test_sets_step_before_the_call(hooked):
    pdir, table = hooked
    inside = []
    f = _core.timed(
        lambda: inside.append(_core.current_step()),
        table,
        _core.intern("s"),
        before=lambda: (42, 9),
        sets_step=True,
    )
    f()
    assert inside == [42] and _core.current_step() == 42
    assert hrows(pdir)[0][:3] == ["42", "s", "9"]  # the step is not one of the values


@pytest.mark.parametrize(
    "bad",
    [
        lambda: 1 / 0,
        lambda: ("one text", "two texts"),  # a row has at most one text
        lambda: b"bytes",
        lambda: tuple(range(17)),  # a row carries at most 16 values
        lambda: [1],
    ],
)
def test_a_failing_hook_is_switched_off_reported_once_and_fn_runs(hooked, bad):
    pdir, table = hooked
    calls, errors = [], []
    f = _core.timed(
        lambda: calls.append(1) or "ok",
        table,
        _core.intern("bad"),
        before=bad,
        on_error=errors.append,
    )
    assert [f(), f(), f()] == ["ok"] * 3
    assert calls == [1, 1, 1] and len(errors) == 1 and isinstance(errors[0], Exception)
    assert f.hooks_live is False and f.hook_errors == 1
    assert len(hrows(pdir)) == 3  # timing goes on


def test_without_on_error_one_warning_on_the_profilemate_logger(hooked, caplog):
    _, table = hooked
    f = _core.timed(lambda: 1, table, 1, after=lambda r: r.nope)
    with caplog.at_level("WARNING", logger="profilemate"):
        assert f() == 1 and f() == 1
    msgs = [r for r in caplog.records if "switched off" in r.getMessage()]
    assert len(msgs) == 1 and msgs[0].exc_info is not None


def test_an_interrupt_in_a_hook_is_the_hosts(hooked):
    _, table = hooked
    calls = []

    def interrupt():
        raise KeyboardInterrupt

    f = _core.timed(lambda: calls.append(1), table, 1, before=interrupt)
    with pytest.raises(KeyboardInterrupt):
        f()
    assert calls == [1]  # fn still ran exactly once, then the interrupt surfaced
    assert f.hooks_live is True and f.hook_errors == 0  # not a probe bug


def test_fn_exception_passes_and_after_is_not_called(hooked):
    pdir, table = hooked
    afters = []
    err = ValueError("vllm's own")

    def fails():
        raise err

    f = _core.timed(fails, table, 1, before=lambda: 3, after=lambda r: afters.append(r))
    with pytest.raises(ValueError) as info:
        f()
    assert info.value is err and afters == []
    assert hrows(pdir)[0][2] == "3"


def test_no_hooks_run_when_not_recording():
    assert not _core.enabled()
    ran = []
    f = _core.timed(lambda: 5, 0, 1, before=lambda: ran.append(1), after=lambda r: ran.append(2))
    assert f() == 5 and ran == []


def test_coroutine_and_generator_functions_are_refused():
    async def co():
        pass

    def gen():
        yield 1

    for fn in (co, gen):
        with pytest.raises(TypeError, match="coroutine or generator"):
            _core.timed(fn, 0, 1)


def test_bad_hook_arguments_are_refused():
    with pytest.raises(TypeError):
        _core.timed(target, 0, 1, before=3)
    with pytest.raises(ValueError):
        _core.timed(target, 0, 1, sets_step=True)
    with pytest.raises(ValueError):
        _core.timed(target, 0, 1, before=target, params=[(0, "a", None)] * 9)
    with pytest.raises(ValueError):
        _core.timed(target, 0, 1, before=target, params=[(-1, None, None)])


def module_level(x):
    return x


def test_pickles_by_name(hooked):
    import pickle

    _, table = hooked
    mod = sys.modules[__name__]
    original = mod.module_level
    mod.module_level = _core.timed(original, table, 1, before=lambda: 1)
    try:
        # While installed, the name resolves to the wrapper: pickle stores a reference to it.
        assert pickle.loads(pickle.dumps(mod.module_level)) is mod.module_level
        assert mod.module_level.__reduce__() == "module_level"
    finally:
        mod.module_level = original
    assert pickle.loads(pickle.dumps(original)) is original


def test_hooks_add_no_allocation_per_call(hooked):
    _, table = hooked

    class K:
        def __init__(self):
            self.x = 3

        def m(self, v):
            return v

    K.m = _core.timed(
        K.m,
        table,
        1,
        before=lambda self, v: self.x,
        after=lambda r, self, v: r,
        params=((0, "self", None), (1, "v", None)),
    )
    k = K()
    for _ in range(1000):
        k.m(1)
        k.m(v=2)
    before = sys.getallocatedblocks()
    for _ in range(50000):
        k.m(1)
        k.m(v=2)
    assert sys.getallocatedblocks() - before < 50
