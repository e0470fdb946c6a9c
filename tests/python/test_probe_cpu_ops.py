"""The cpu_ops probes' logic (step ids across a pickle hop, fallback counting), on fake classes."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import sys
import textwrap
import uuid

import pytest
from test_registry import FakeRecorder

from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import cpu_ops
from profilemate.probes.registry import APPLIED, Registry

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


def _targets(module_name: str):
    by_op = {
        t.operation: t
        for t in cpu_ops.TARGETS
        if t.module.startswith("vllm.v1.core.sched") or "worker" in t.module
    }
    return [
        dataclasses.replace(by_op["schedule"], module=module_name, group=None),
        dataclasses.replace(by_op["execute_model"], module=module_name, group=None),
    ]


def test_step_id_travels_with_the_pickled_scheduler_output(mod):
    m, wd = mod
    ec, wk = FakeRecorder(), FakeRecorder()
    # Two registries on one module stand in for two processes: patch for the EngineCore, run
    # schedule, then unpatch and patch for the worker.
    reg = Registry(_targets(m.__name__)[:1], ec, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    outs = [pickle.dumps(m.Scheduler().schedule()) for _ in range(3)]
    reg.deactivate()
    reg2 = Registry(_targets(m.__name__)[1:], wk, watchdog=wd, vllm_version="0.32.0")
    reg2.activate()
    assert {r["state"] for r in reg2.status()} == {APPLIED}
    w = m.Worker()
    assert [w.execute_model(pickle.loads(o)) for o in outs] == [7, 7, 7]
    assert [s[4] for s in ec.spans] == [1, 2, 3]
    assert [s[4] for s in wk.spans] == [1, 2, 3]
    assert ec.step == 3 and wk.step == 3
    assert ec.names() == ["schedule"] * 3 and wk.names() == ["execute_model"] * 3
    assert [s[6] for s in ec.spans] == [7, 7, 7] and [s[6] for s in wk.spans] == [7, 7, 7]
    # Keyword call: the argument is found by name.
    w.execute_model(scheduler_output=pickle.loads(outs[0]))
    assert wk.spans[-1][4] == 1


def test_worker_counts_its_own_steps_without_a_stamp(mod):
    m, wd = mod
    wk = FakeRecorder()
    Registry(_targets(m.__name__)[1:], wk, watchdog=wd, vllm_version="0.32.0").activate()
    w = m.Worker()
    for _ in range(4):
        w.execute_model(m.SchedulerOutput(1))
    assert [s[4] for s in wk.spans] == [1, 2, 3, 4]


def test_schedule_span_covers_the_call_and_none_result_is_fine(mod):
    m, wd = mod
    rec = FakeRecorder()
    m.Scheduler.schedule = lambda self, throttle_prefills=False: None
    Registry(_targets(m.__name__)[:1], rec, watchdog=wd, vllm_version="0.32.0").activate()
    assert m.Scheduler().schedule() is None
    (span,) = rec.spans
    assert span[3] >= 0 and span[4] == 1


def test_targets_are_well_formed():
    keys = [t.key for t in cpu_ops.TARGETS]
    assert len(keys) == len(set(keys))
    for t in cpu_ops.TARGETS:
        assert t.module.startswith("vllm.") and t.category == "cpu_ops"
        assert t.table == "cpu_operations_timing"
