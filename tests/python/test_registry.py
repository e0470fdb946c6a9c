"""The probe registry and the never-break-the-host guard, with a fake recorder (no C++ core needed)."""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import textwrap
import time
import uuid

import pytest

from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import guard, versions
from profilemate.probes.registry import APPLIED, FAILED, PENDING, SKIPPED, Registry, Target


class FakeRecorder:
    """Same methods as probes.recorder.CoreRecorder; keeps spans in a list."""

    def __init__(self) -> None:
        self.spans: list[tuple] = []
        self.step = -1
        self.tables: dict[str, int] = {}
        self.strings: dict[str, int] = {}
        self.timed_calls = 0

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def set_step(self, s: int) -> None:
        self.step = s

    def current_step(self) -> int:
        return self.step

    def span(self, table, name, start, dur, step=-1, ctx=0, a0=0, *rest):
        self.spans.append((table, name, start, dur, step, ctx, a0))

    def table(self, name: str) -> int:
        return self.tables.setdefault(name, len(self.tables) + 1)

    def intern(self, s: str) -> int:
        return self.strings.setdefault(s, len(self.strings) + 1)

    def timed(self, fn, table, name, ctx=0):
        rec = self

        @functools.wraps(fn)
        def timed_wrapper(*a, **k):
            rec.timed_calls += 1
            t0 = time.monotonic_ns()
            try:
                return fn(*a, **k)
            finally:
                rec.span(table, name, t0, time.monotonic_ns() - t0, rec.step, ctx)

        return timed_wrapper

    def names(self) -> list[str]:
        inv = {v: k for k, v in self.strings.items()}
        return [inv[s[1]] for s in self.spans]


PKG_SRC = {
    "__init__.py": "",
    "engine.py": """
        CALLS = []
        class Base:
            def inherited(self, x):
                return ("base", x)
        class Scheduler(Base):
            def schedule(self, n, *, flag=False):
                CALLS.append(n)
                if n < 0:
                    raise ValueError("negative")
                return n * 2
            @staticmethod
            def static(x):
                return x + 1
            @classmethod
            def klass(cls, x):
                return (cls.__name__, x)
        def set_forward_context(x):
            return ("ctx", x)
        class Frozen:
            def method(self):
                return 1
            def __setattr__(self, k, v):
                raise AttributeError("frozen")
        FROZEN = Frozen()
    """,
    "runner.py": """
        from {pkg}.engine import set_forward_context
        def run(x):
            return set_forward_context(x)
    """,
    "later.py": "def f(x):\n    return x * 3\n",
}


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    name = f"pm_fake_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    for rel, body in PKG_SRC.items():
        (root / rel).write_text(textwrap.dedent(body).replace("{pkg}", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    wd = ModuleWatchdog()
    wd.install()
    yield name, wd
    wd.uninstall()
    for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[m]


def T(pkg: str, mod: str, qualname: str, **kw) -> Target:
    kw.setdefault("category", "cpu_ops")
    kw.setdefault("operation", qualname.rsplit(".", 1)[-1])
    return Target(module=f"{pkg}.{mod}", qualname=qualname, **kw)


def by_target(reg: Registry) -> dict[str, dict]:
    return {row["target"]: row for row in reg.status()}


def counting_probe(ctx):
    rec = ctx.recorder
    table, name = ctx.table_id, ctx.name_id

    def before(args, kwargs):
        return rec.now_ns()

    def after(t0, result, exc):
        rec.span(table, name, t0, rec.now_ns() - t0, rec.step, 0)

    return before, after


def test_patch_on_import_and_status(pkg):
    name, wd = pkg
    rec = FakeRecorder()
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert by_target(reg)[t.key]["state"] == PENDING
    eng = importlib.import_module(f"{name}.engine")
    assert by_target(reg)[t.key]["state"] == APPLIED
    assert eng.Scheduler().schedule(3) == 6
    assert eng.CALLS == [3]
    assert rec.names() == ["schedule"]
    assert eng.Scheduler.schedule.__name__ == "schedule"
    assert eng.Scheduler.schedule.__wrapped__.__qualname__ == "Scheduler.schedule"


def test_already_imported_module_patched_at_activation(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    rec = FakeRecorder()
    reg = Registry(
        [T(name, "engine", "Scheduler.schedule")], rec, watchdog=wd, vllm_version="0.32.0"
    )
    reg.activate()
    eng.Scheduler().schedule(1)
    assert len(rec.spans) == 1


def test_idempotent_no_double_wrap_and_unpatch_restores(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    original = eng.Scheduler.__dict__["schedule"]
    rec = FakeRecorder()
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    reg.activate()
    wrapped = eng.Scheduler.__dict__["schedule"]
    # A second registry (e.g. the plugin after the start-up hook) must not wrap the wrapper.
    rec2 = FakeRecorder()
    reg2 = Registry([t], rec2, watchdog=wd, vllm_version="0.32.0")
    reg2.activate()
    assert eng.Scheduler.__dict__["schedule"] is wrapped
    assert by_target(reg2)[t.key]["reason"] == "already wrapped"
    eng.Scheduler().schedule(2)
    assert len(rec.spans) == 1 and rec2.spans == []
    reg.deactivate()
    reg.deactivate()
    assert eng.Scheduler.__dict__["schedule"] is original
    assert by_target(reg)[t.key]["state"] == PENDING


def test_reload_repatches_new_class(pkg):
    name, wd = pkg
    rec = FakeRecorder()
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    eng = importlib.import_module(f"{name}.engine")
    eng = importlib.reload(eng)
    eng.Scheduler().schedule(5)
    assert len(rec.spans) == 1
    assert by_target(reg)[t.key]["patches"] == 2
    reg.deactivate()
    assert not hasattr(eng.Scheduler.__dict__["schedule"], "__wrapped__")


def test_static_class_and_inherited_methods(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    rec = FakeRecorder()
    ts = [
        T(name, "engine", "Scheduler.static"),
        T(name, "engine", "Scheduler.klass", wrap="python", probe=counting_probe),
        T(name, "engine", "Scheduler.inherited"),
    ]
    reg = Registry(ts, rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert {r["state"] for r in reg.status()} == {APPLIED}
    assert isinstance(eng.Scheduler.__dict__["static"], staticmethod)
    assert isinstance(eng.Scheduler.__dict__["klass"], classmethod)
    s = eng.Scheduler()
    assert eng.Scheduler.static(1) == 2 and s.static(1) == 2
    assert eng.Scheduler.klass(1) == ("Scheduler", 1)
    assert s.inherited(7) == ("base", 7)
    assert len(rec.spans) == 4
    reg.deactivate()
    assert "inherited" not in eng.Scheduler.__dict__  # was inherited: removed, not shadowed
    assert eng.Scheduler().inherited(1) == ("base", 1)
    assert isinstance(eng.Scheduler.__dict__["static"], staticmethod)


def test_skips_failures_and_version_ranges(pkg):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    rec = FakeRecorder()
    ts = [
        T(name, "engine", "Scheduler.schedule", vllm_min="0.40"),
        T(name, "engine", "Scheduler.gone"),
        T(name, "engine", "Nope.schedule"),
        T(name, "missing_mod", "X.y"),
        T(name, "later", "f"),
        T(
            name,
            "engine",
            "Scheduler.static",
            wrap="python",
            probe=counting_probe,
            params=("nope",),
        ),
        T(name, "engine", "FROZEN.method"),
    ]
    reg = Registry(ts, rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    st = by_target(reg)
    assert st[ts[0].key]["state"] == SKIPPED and "not for vLLM 0.32.0" in st[ts[0].key]["reason"]
    assert st[ts[1].key]["state"] == SKIPPED and "Scheduler.gone not in" in st[ts[1].key]["reason"]
    assert st[ts[2].key]["state"] == SKIPPED and "Nope not in" in st[ts[2].key]["reason"]
    assert st[ts[3].key]["state"] == SKIPPED and "module" in st[ts[3].key]["reason"]
    assert st[ts[4].key]["state"] == PENDING  # exists, not imported yet
    assert st[ts[5].key]["state"] == SKIPPED and "signature changed" in st[ts[5].key]["reason"]
    assert st[ts[6].key]["state"] == FAILED and "frozen" in st[ts[6].key]["error"]
    importlib.import_module(f"{name}.later")
    assert by_target(reg)[ts[4].key]["state"] == APPLIED
    # Out-of-range targets stay unpatched even though the module is there.
    eng = sys.modules[f"{name}.engine"]
    assert not hasattr(eng.Scheduler.__dict__["schedule"], "__wrapped__")


def test_unknown_version_applies_what_exists(pkg, caplog):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    ts = [
        T(name, "engine", "Scheduler.schedule", vllm_min="9.0"),
        T(name, "engine", "Scheduler.gone"),
    ]
    reg = Registry(ts, FakeRecorder(), watchdog=wd, vllm_version="dev")
    with caplog.at_level(logging.INFO, logger="profilemate"):
        reg.activate()
    st = by_target(reg)
    assert st[ts[0].key]["state"] == APPLIED
    assert st[ts[1].key]["state"] == SKIPPED
    lines = [r.getMessage() for r in caplog.records if "not recognised" in r.getMessage()]
    assert len(lines) == 1 and "1 applied" in lines[0] and "1 skipped" in lines[0]


def test_group_alternatives(pkg):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    ts = [
        T(name, "engine", "Scheduler.schedule", group="g"),
        T(name, "old_location", "Scheduler.schedule", group="g"),
    ]
    reg = Registry(ts, FakeRecorder(), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    st = by_target(reg)
    assert st[ts[0].key]["state"] == APPLIED
    assert st[ts[1].key]["state"] == SKIPPED
    assert st[ts[1].key]["reason"] == f"alternative {ts[0].key} is applied"


def test_rebind_names_imported_with_from(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    runner = importlib.import_module(f"{name}.runner")
    original = eng.set_forward_context
    rec = FakeRecorder()
    ts = [T(name, "engine", "set_forward_context", rebind=True)]
    reg = Registry(ts, rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert runner.set_forward_context is eng.set_forward_context is not original
    assert runner.run(1) == ("ctx", 1)
    assert len(rec.spans) == 1
    reg.deactivate()
    assert runner.set_forward_context is original and eng.set_forward_context is original


def test_without_rebind_the_from_import_is_untouched(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    runner = importlib.import_module(f"{name}.runner")
    reg = Registry(
        [T(name, "engine", "set_forward_context")],
        FakeRecorder(),
        watchdog=wd,
        vllm_version="0.32.0",
    )
    reg.activate()
    assert runner.set_forward_context is not eng.set_forward_context


# --- never break the host ---------------------------------------------------------------------


def _probe(before_raises=False, after_raises=False):
    def factory(ctx):
        def before(args, kwargs):
            if before_raises:
                raise KeyError("probe bug (before)")
            return None

        def after(state, result, exc):
            if after_raises:
                raise KeyError("probe bug (after)")

        return before, after

    return factory


@pytest.mark.parametrize("where", ["before", "after"])
def test_raising_probe_switches_off_and_host_runs_once(pkg, where, caplog):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    t = T(
        name,
        "engine",
        "Scheduler.schedule",
        wrap="python",
        probe=_probe(where == "before", where == "after"),
    )
    reg = Registry([t], FakeRecorder(), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    s = eng.Scheduler()
    with caplog.at_level(logging.WARNING, logger="profilemate"):
        results = [s.schedule(i) for i in range(3)]
    assert results == [0, 2, 4]
    assert eng.CALLS == [0, 1, 2]  # exactly once per call
    row = by_target(reg)[t.key]
    assert row["probe"]["active"] is False and row["probe"]["errors"] == 1
    assert f"probe bug ({where})" in row["probe"]["first_error"]
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1


def test_host_exception_passes_through_untouched(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    seen = []

    def factory(ctx):
        return (lambda a, k: None), (lambda st, res, exc: seen.append(exc))

    t = T(name, "engine", "Scheduler.schedule", wrap="python", probe=factory)
    Registry([t], FakeRecorder(), watchdog=wd, vllm_version="0.32.0").activate()
    with pytest.raises(ValueError, match="negative") as info:
        eng.Scheduler().schedule(-1)
    assert seen == [info.value]
    assert eng.CALLS == [-1]


def test_fault_injection_makes_every_probe_raise(pkg):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    ts = [
        T(name, "engine", "Scheduler.schedule", wrap="python", probe=counting_probe),
        T(name, "engine", "set_forward_context", wrap="python", probe=counting_probe),
    ]
    rec = FakeRecorder()
    reg = Registry(ts, rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    guard.set_fault_injection(True)
    try:
        assert eng.Scheduler().schedule(4) == 8
        assert eng.set_forward_context(1) == ("ctx", 1)
    finally:
        guard.set_fault_injection(False)
    rows = reg.status()
    assert all(r["probe"]["errors"] == 1 and not r["probe"]["active"] for r in rows)
    assert all("FaultInjected" in r["probe"]["first_error"] for r in rows)
    assert rec.spans == []


def test_arg_reader_binds_by_name():
    def f(self, scheduler_output, extra=None):
        pass

    r = guard.ArgReader(f, "scheduler_output")
    assert r.get(("self", "SO"), {}) == "SO"
    assert r.get(("self",), {"scheduler_output": "KW"}) == "KW"
    assert r.get(("self",), {}) is None
    with pytest.raises(LookupError):
        guard.ArgReader(f, "nope")


def test_target_validation():
    with pytest.raises(ValueError):
        Target(module="m", qualname="f", category="c", operation="o", wrap="python")
    with pytest.raises(ValueError):
        Target(module="m", qualname="f", category="c", operation="o", wrap="magic")
    with pytest.raises(ValueError):
        Target(module="m", qualname="f", category="c", operation="o", vllm_min="not-a-version")


@pytest.mark.parametrize(
    "a,b",
    [
        ("0.11.0", "0.32.0"),
        ("0.11.0rc1", "0.11.0"),
        ("0.11.0.dev5+gabc", "0.11.0rc1"),
        ("0.11.0a1", "0.11.0b1"),
        ("0.11.0", "0.11.0.post1"),
        ("0.9.9", "0.10"),
        ("0.10.1.dev3", "0.10.1.dev10"),
    ],
)
def test_version_order(a, b):
    assert versions.parse(a) < versions.parse(b)


def test_version_parse_edges():
    assert versions.parse("0.32.0+cpu") == versions.parse("0.32.0") == versions.parse("v0.32")
    assert (
        versions.parse("dev") is None
        and versions.parse("") is None
        and versions.parse(None) is None
    )
    v = versions.parse("0.32.0")
    assert versions.in_range(v, "0.30", "0.33") and not versions.in_range(v, "0.33", None)
    assert versions.in_range(v, None, None) and not versions.in_range(v, None, "0.32.0")
