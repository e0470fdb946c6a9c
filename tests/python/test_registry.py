"""The probe registry with the real C++ wrapper: patching, status, alternatives, never breaking the host.

Every wrapper is the real ``_core.timed`` recording into a real core session in ``tmp_path``; rows
are read back from the CSV the collector writes.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import textwrap
import uuid

import pytest
from test_core_readers import read_csv

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import versions
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import (
    APPLIED,
    FAILED,
    PENDING,
    SKIPPED,
    Registry,
    module_file_exists,
    set_fault_injection,
)
from profilemate.probes.spec import Column, Hooks, Site, Table, Target, at

TABLE = Table(
    "registry_test",
    (
        Column("step_id", "step"),
        Column("operation", "name"),
        Column("context", "ctx"),
        Column("duration_ms", "dur_ms", "ms"),
        Column("v0", "a0"),
        Column("v1", "a1"),
    ),
)


class Core:
    """A live core session in tmp_path and the recorder the registry writes through."""

    def __init__(self, path) -> None:
        self.dir = _core.start(str(path), "registry", flush_interval_ms=20)
        self.recorder = CoreRecorder(_core)

    def rows(self) -> list[dict]:
        _core.flush()
        f = os.path.join(self.dir, f"{TABLE.name}.csv")
        if not os.path.exists(f):
            return []
        header, rows = read_csv(f)
        return [dict(zip(header, r, strict=True)) for r in rows]

    def names(self) -> list[str]:
        return [r["operation"] for r in self.rows()]


@pytest.fixture
def core(tmp_path):
    c = Core(tmp_path / "session")
    try:
        yield c
    finally:
        _core.stop()


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


def T(pkg: str, mod: str, qualname: str, *, alternatives=(), vllm_min=None, **kw) -> Target:
    kw.setdefault("operation", qualname.rsplit(".", 1)[-1])
    site = Site(f"{pkg}.{mod}", qualname, vllm_min=vllm_min)
    return Target(site, table=TABLE, alternatives=alternatives, **kw)


def by_target(reg: Registry) -> dict[str, dict]:
    return {row["target"]: row for row in reg.status()}


def counting_hooks(ctx) -> Hooks:
    def before():
        return 1

    def after(result):
        return 2

    return Hooks(before, after)


def test_patch_on_import_and_status(pkg, core):
    name, wd = pkg
    rec = core.recorder
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert by_target(reg)[t.key]["state"] == PENDING
    eng = importlib.import_module(f"{name}.engine")
    assert by_target(reg)[t.key]["state"] == APPLIED
    assert eng.Scheduler().schedule(3) == 6
    assert eng.CALLS == [3]
    assert core.names() == ["schedule"]
    assert eng.Scheduler.schedule.__name__ == "schedule"
    assert eng.Scheduler.schedule.__wrapped__.__qualname__ == "Scheduler.schedule"


def test_already_imported_module_patched_at_activation(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    reg = Registry(
        [T(name, "engine", "Scheduler.schedule")], core.recorder, watchdog=wd, vllm_version="0.32.0"
    )
    reg.activate()
    eng.Scheduler().schedule(1)
    assert len(core.rows()) == 1


def test_idempotent_no_double_wrap_and_unpatch_restores(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    original = eng.Scheduler.__dict__["schedule"]
    rec = core.recorder
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    reg.activate()
    wrapped = eng.Scheduler.__dict__["schedule"]
    # A second registry (e.g. the plugin after the start-up hook) must not wrap the wrapper.
    reg2 = Registry([t], CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    reg2.activate()
    assert eng.Scheduler.__dict__["schedule"] is wrapped
    assert by_target(reg2)[t.key]["reason"] == "already wrapped"
    eng.Scheduler().schedule(2)
    assert len(core.rows()) == 1  # one layer: one row
    reg.deactivate()
    reg.deactivate()
    assert eng.Scheduler.__dict__["schedule"] is original
    assert by_target(reg)[t.key]["state"] == PENDING


def test_reload_repatches_new_class(pkg, core):
    name, wd = pkg
    rec = core.recorder
    t = T(name, "engine", "Scheduler.schedule")
    reg = Registry([t], rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    eng = importlib.import_module(f"{name}.engine")
    eng = importlib.reload(eng)
    eng.Scheduler().schedule(5)
    assert len(core.rows()) == 1
    assert by_target(reg)[t.key]["patches"] == 2
    reg.deactivate()
    assert not hasattr(eng.Scheduler.__dict__["schedule"], "__wrapped__")


def klass_hooks(ctx) -> Hooks:
    def before(cls, x):
        return len(cls.__name__), x

    return Hooks(before)


def test_static_class_and_inherited_methods(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    rec = core.recorder
    ts = [
        T(name, "engine", "Scheduler.static"),
        T(name, "engine", "Scheduler.klass", hooks=klass_hooks),
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
    rows = core.rows()
    assert len(rows) == 4
    assert [(r["v0"], r["v1"]) for r in rows if r["operation"] == "klass"] == [("9", "1")]
    reg.deactivate()
    assert "inherited" not in eng.Scheduler.__dict__  # was inherited: removed, not shadowed
    assert eng.Scheduler().inherited(1) == ("base", 1)
    assert isinstance(eng.Scheduler.__dict__["static"], staticmethod)


def nope_hooks(ctx) -> Hooks:
    return Hooks(before=lambda nope: 0)


def test_skips_failures_and_version_ranges(pkg, core):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    rec = core.recorder
    ts = [
        T(name, "engine", "Scheduler.schedule", vllm_min="0.40"),
        T(name, "engine", "Scheduler.gone"),
        T(name, "engine", "Nope.schedule"),
        T(name, "missing_mod", "X.y"),
        T(name, "later", "f"),
        T(name, "engine", "Scheduler.static", hooks=nope_hooks),
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
    assert st[ts[5].key]["state"] == SKIPPED
    assert "signature changed: Scheduler.static has no parameter 'nope'" in st[ts[5].key]["reason"]
    assert st[ts[6].key]["state"] == FAILED and "frozen" in st[ts[6].key]["error"]
    importlib.import_module(f"{name}.later")
    assert by_target(reg)[ts[4].key]["state"] == APPLIED
    # Out-of-range targets stay unpatched even though the module is there.
    eng = sys.modules[f"{name}.engine"]
    assert not hasattr(eng.Scheduler.__dict__["schedule"], "__wrapped__")


def test_unknown_version_applies_what_exists(pkg, core, caplog):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    ts = [
        T(name, "engine", "Scheduler.schedule", vllm_min="9.0"),
        T(name, "engine", "Scheduler.gone"),
    ]
    reg = Registry(ts, core.recorder, watchdog=wd, vllm_version="dev")
    with caplog.at_level(logging.INFO, logger="profilemate"):
        reg.activate()
    st = by_target(reg)
    assert st[ts[0].key]["state"] == APPLIED
    assert st[ts[1].key]["state"] == SKIPPED
    lines = [r.getMessage() for r in caplog.records if "not recognised" in r.getMessage()]
    assert len(lines) == 1 and "1 applied" in lines[0] and "1 skipped" in lines[0]


def test_alternatives_on_one_target(pkg, core):
    name, wd = pkg
    importlib.import_module(f"{name}.engine")
    old = at(f"{name}.old_location:Scheduler.schedule")
    t = T(name, "engine", "Scheduler.schedule", alternatives=(old,))
    reg = Registry([t], core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    st = by_target(reg)
    assert st[t.key]["state"] == APPLIED and st[t.key]["alternative_of"] is None
    assert st[old.key]["state"] == SKIPPED and st[old.key]["alternative_of"] == t.key
    assert st[old.key]["reason"] == f"alternative {t.key} is applied"


def test_an_older_location_is_used_when_the_new_one_is_absent(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    t = T(
        name,
        "gone_module",
        "Scheduler.schedule",
        alternatives=(f"{name}.engine:Scheduler.schedule",),
    )
    reg = Registry([t], core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    st = by_target(reg)
    assert st[f"{name}.engine:Scheduler.schedule"]["state"] == APPLIED
    assert st[t.key]["state"] == SKIPPED and "not in vLLM" in st[t.key]["reason"]
    eng.Scheduler().schedule(1)
    assert core.names() == ["schedule"]


def test_rebind_names_imported_with_from(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    runner = importlib.import_module(f"{name}.runner")
    original = eng.set_forward_context
    rec = core.recorder
    ts = [T(name, "engine", "set_forward_context", rebind=True)]
    reg = Registry(ts, rec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert runner.set_forward_context is eng.set_forward_context is not original
    assert runner.run(1) == ("ctx", 1)
    assert len(core.rows()) == 1
    reg.deactivate()
    assert runner.set_forward_context is original and eng.set_forward_context is original


def test_without_rebind_the_from_import_is_untouched(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    runner = importlib.import_module(f"{name}.runner")
    reg = Registry(
        [T(name, "engine", "set_forward_context")],
        core.recorder,
        watchdog=wd,
        vllm_version="0.32.0",
    )
    reg.activate()
    assert runner.set_forward_context is not eng.set_forward_context


# --- never break the host ---------------------------------------------------------------------


def _raising(where: str):
    def factory(ctx) -> Hooks:
        def before(self, n):
            if where == "before":
                raise KeyError("probe bug (before)")
            return n

        def after(result, self, n):
            if where == "after":
                raise KeyError("probe bug (after)")
            return result

        return Hooks(before, after)

    return factory


@pytest.mark.parametrize("where", ["before", "after"])
def test_raising_hook_switches_off_and_host_runs_once(pkg, core, where, caplog):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    t = T(name, "engine", "Scheduler.schedule", hooks=_raising(where))
    reg = Registry([t], core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    s = eng.Scheduler()
    with caplog.at_level(logging.WARNING, logger="profilemate"):
        results = [s.schedule(i) for i in (1, 2, 3)]
    assert results == [2, 4, 6]
    assert eng.CALLS == [1, 2, 3]  # exactly once per call
    row = by_target(reg)[t.key]
    assert row["health"]["active"] is False and row["health"]["errors"] == 1
    assert f"probe bug ({where})" in row["health"]["first_error"]
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1
    # Timing goes on without the hooks: one row per call; values only before the failure.
    rows = core.rows()
    assert len(rows) == 3
    assert [r["v0"] for r in rows] == (["0", "0", "0"] if where == "before" else ["1", "0", "0"])
    assert eng.Scheduler.schedule.hooks_live is False and eng.Scheduler.schedule.hook_errors == 1


def test_hooks_read_arguments_by_name(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")

    def hooks(ctx) -> Hooks:
        return Hooks(lambda n, flag: (n, flag), lambda result, n, flag: result)

    Registry(
        [T(name, "engine", "Scheduler.schedule", hooks=hooks)],
        core.recorder,
        watchdog=wd,
        vllm_version="0.32.0",
    ).activate()
    s = eng.Scheduler()
    s.schedule(3)
    s.schedule(n=4, flag=True)
    eng.Scheduler.schedule(s, 5, flag=True)
    assert [(r["v0"], r["v1"]) for r in core.rows()] == [("3", "0"), ("4", "1"), ("5", "1")]


def test_host_exception_passes_through_untouched(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    seen = []

    def factory(ctx):
        return Hooks(before=lambda n: n, after=lambda result, n: seen.append(result))

    t = T(name, "engine", "Scheduler.schedule", hooks=factory)
    Registry([t], core.recorder, watchdog=wd, vllm_version="0.32.0").activate()
    with pytest.raises(ValueError, match="negative"):
        eng.Scheduler().schedule(-1)
    assert seen == []  # after runs only when vLLM returned
    assert eng.CALLS == [-1]
    assert [r["v0"] for r in core.rows()] == ["-1"]  # the span is recorded all the same


def test_fault_injection_makes_every_hook_raise(pkg, core):
    name, wd = pkg
    eng = importlib.import_module(f"{name}.engine")
    ts = [
        T(name, "engine", "Scheduler.schedule", hooks=counting_hooks),
        T(name, "engine", "set_forward_context", hooks=counting_hooks),
    ]
    set_fault_injection(True)
    try:
        reg = Registry(ts, core.recorder, watchdog=wd, vllm_version="0.32.0")
        reg.activate()
        assert eng.Scheduler().schedule(4) == 8
        assert eng.set_forward_context(1) == ("ctx", 1)
    finally:
        set_fault_injection(False)
    rows = reg.status()
    assert all(r["health"]["errors"] == 1 and not r["health"]["active"] for r in rows)
    assert all("FaultInjected" in r["health"]["first_error"] for r in rows)
    assert [r["v0"] for r in core.rows()] == ["0", "0"]  # timed, no hook values


@pytest.fixture
def one_module(tmp_path, monkeypatch):
    """Writes a one-file module from source, imports it under the watchdog: (module, watchdog)."""
    made = []

    def make(source: str):
        name = f"pm_one_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        wd = ModuleWatchdog()
        wd.install()
        made.append((name, wd))
        return importlib.import_module(name), wd

    yield make
    for name, wd in made:
        wd.uninstall()
        sys.modules.pop(name, None)


def test_generator_targets_are_skipped_with_the_reason(one_module, core):
    # Coroutine functions are timed by the async wrapper (tests/python/test_async_timed.py); async
    # generators and generators are refused: a wrapper would time only their creation.
    mod, wd = one_module("async def render(x):\n    yield x\n")
    reg = Registry(
        [Target(f"{mod.__name__}:render", "render", TABLE)],
        core.recorder,
        watchdog=wd,
        vllm_version="0.32.0",
    )
    reg.activate()
    (row,) = reg.status()
    assert row["state"] == SKIPPED and "coroutine" in row["reason"]
    assert not hasattr(mod.render, "__wrapped__")


def test_target_validation():
    with pytest.raises(ValueError):
        Target("m:f", "o", TABLE, sets_step=True)  # sets_step without hooks
    with pytest.raises(ValueError):
        Target("no-colon", "o", TABLE)
    with pytest.raises(ValueError):
        Target(Site("m", "f", vllm_min="not-a-version"), "o", TABLE)
    with pytest.raises(ValueError):
        Target("m:f", "o", TABLE, alternatives=("m:f",))
    with pytest.raises(ValueError):
        Column("x", "no-such-source")


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


def test_a_contextmanager_function_is_not_taken_for_a_generator(one_module, core):
    # vLLM's set_forward_context is a @contextmanager: its __wrapped__ is a generator function.
    mod, wd = one_module(
        "import contextlib\n@contextlib.contextmanager\ndef ctx(x):\n    yield x\n"
    )
    reg = Registry(
        [Target(f"{mod.__name__}:ctx", "ctx", TABLE)],
        core.recorder,
        watchdog=wd,
        vllm_version="0.32.0",
    )
    reg.activate()
    assert reg.status()[0]["state"] == APPLIED
    with mod.ctx(3) as v:
        assert v == 3
    assert core.names() == ["ctx"]


def test_a_bare_folder_is_not_a_module(pkg, core, tmp_path):
    # What an upgrade leaves behind: the old subpackage's folder with only __pycache__ in it.
    name, wd = pkg
    importlib.import_module(name)
    root = tmp_path / name
    (root / "stale" / "__pycache__").mkdir(parents=True)
    (root / "stale" / "__pycache__" / "old.cpython-311.pyc").write_bytes(b"")
    (root / "nspkg" / "deeper").mkdir(parents=True)  # a namespace package (PEP 420) ...
    (root / "nspkg" / "deeper" / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (root / "emptyns").mkdir()
    ts = [
        T(name, "stale", "f"),
        T(name, "stale.old", "f"),
        T(name, "emptyns", "f"),
        T(name, "nspkg.deeper.mod", "f"),  # ... whose module is there
    ]
    assert module_file_exists(f"{name}.stale") is False
    assert module_file_exists(f"{name}.nspkg") is True
    assert module_file_exists(f"{name}.nspkg.deeper") is True
    reg = Registry(ts, core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    st = by_target(reg)
    for t in ts[:3]:
        assert st[t.key]["state"] == SKIPPED, st[t.key]
        assert f"module {t.sites[0].module} not in vLLM" in st[t.key]["reason"]
    assert st[ts[3].key]["state"] == PENDING
    mod = importlib.import_module(f"{name}.nspkg.deeper.mod")
    assert by_target(reg)[ts[3].key]["state"] == APPLIED
    assert mod.f(1) == 2 and core.names() == ["f"]
