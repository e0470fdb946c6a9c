"""The cpu_ops probes' logic (step ids across a pickle hop, fallback counting) on stand-in classes,
through the real C++ wrapper and a real core session."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import sys
import textwrap
import uuid

import pytest
from test_core_readers import read_csv
from test_registry import Core

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import load_category
from profilemate.probes.registry import APPLIED, Registry
from profilemate.probes.spec import Site

SRC = """
    from dataclasses import dataclass

    @dataclass
    class SchedulerOutput:
        total_num_scheduled_tokens: int

    class Scheduler:
        def schedule(self, throttle_prefills=False):
            return SchedulerOutput(7)

    class Worker:
        def execute_model(self, scheduler_output):
            return scheduler_output.total_num_scheduled_tokens
"""

CPU_OPS = load_category("cpu_ops")


@pytest.fixture
def mod(tmp_path, monkeypatch):
    name = f"pm_cpuops_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    wd = ModuleWatchdog()
    wd.install()
    m = importlib.import_module(name)
    yield m, wd
    wd.uninstall()
    sys.modules.pop(name, None)


def _target(module_name: str, operation: str):
    t = next(t for t in CPU_OPS.TARGETS if t.operation == operation)
    qualname = t.site.qualname
    return dataclasses.replace(t, site=Site(module_name, qualname), alternatives=())


def _rows(core: Core) -> list[dict]:
    _core.flush()
    header, rows = read_csv(os.path.join(core.dir, "cpu_operations_timing.csv"))
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_step_id_travels_with_the_pickled_scheduler_output(mod, tmp_path):
    m, wd = mod
    # Two sessions on one module stand in for two processes: patch for the EngineCore, run
    # schedule, stop; then patch for the worker in a new session and run execute_model.
    ec = Core(tmp_path / "ec")
    reg = Registry(
        [_target(m.__name__, "schedule")], ec.recorder, watchdog=wd, vllm_version="0.32.0"
    )
    reg.activate()
    sched = m.Scheduler()  # one per EngineCore, as in vLLM
    outs = [pickle.dumps(sched.schedule()) for _ in range(3)]
    ec_rows = _rows(ec)
    reg.deactivate()
    _core.stop()
    wk = Core(tmp_path / "wk")
    try:
        reg2 = Registry(
            [_target(m.__name__, "execute_model")], wk.recorder, watchdog=wd, vllm_version="0.32.0"
        )
        reg2.activate()
        assert {r["state"] for r in reg2.status()} == {APPLIED}
        w = m.Worker()
        assert [w.execute_model(pickle.loads(o)) for o in outs] == [7, 7, 7]
        w.execute_model(scheduler_output=pickle.loads(outs[0]))  # by keyword: found by name
        wk_rows = _rows(wk)
        assert _core.current_step() == 1
    finally:
        reg2.deactivate()
        _core.stop()
    assert [r["step_id"] for r in ec_rows] == ["1", "2", "3"]
    assert [r["step_id"] for r in wk_rows] == ["1", "2", "3", "1"]
    assert {r["operation"] for r in ec_rows} == {"schedule"}
    assert {r["operation"] for r in wk_rows} == {"execute_model"}
    assert {r["num_tokens"] for r in ec_rows + wk_rows} == {"7"}
    assert {r["context"] for r in ec_rows} == {"Scheduler.schedule"}


def test_worker_counts_its_own_steps_without_a_stamp(mod, tmp_path):
    m, wd = mod
    wk = Core(tmp_path / "wk")
    try:
        reg = Registry(
            [_target(m.__name__, "execute_model")], wk.recorder, watchdog=wd, vllm_version="0.32.0"
        )
        reg.activate()
        w = m.Worker()
        for _ in range(4):
            w.execute_model(m.SchedulerOutput(1))
        assert [r["step_id"] for r in _rows(wk)] == ["1", "2", "3", "4"]
        reg.deactivate()
    finally:
        _core.stop()


def test_schedule_span_covers_the_call_and_none_result_is_fine(mod, tmp_path):
    m, wd = mod
    m.Scheduler.schedule = lambda self, throttle_prefills=False: None
    ec = Core(tmp_path / "ec")
    try:
        reg = Registry(
            [_target(m.__name__, "schedule")], ec.recorder, watchdog=wd, vllm_version="0.32.0"
        )
        reg.activate()
        assert m.Scheduler().schedule() is None
        (row,) = _rows(ec)
        assert row["step_id"] == "1" and float(row["duration_ms"]) >= 0 and row["num_tokens"] == "0"
        assert reg.status()[0]["health"]["errors"] == 0
        reg.deactivate()
    finally:
        _core.stop()


def test_targets_are_well_formed():
    keys = [s.key for t in CPU_OPS.TARGETS for s in t.sites]
    assert len(keys) == len(set(keys))
    for t in CPU_OPS.TARGETS:
        assert all(s.module.startswith("vllm.") for s in t.sites)
        assert t.category == "cpu_ops" and t.table.name == "cpu_operations_timing"
