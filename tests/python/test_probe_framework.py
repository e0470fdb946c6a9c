"""A category is one file: discovery, registration of a test-only category, end to end on the core."""

from __future__ import annotations

import importlib
import os
import sys

import pm_test_category
import pytest
from test_core_readers import read_csv
from test_registry import Core

from profilemate import _core, config, probes
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes.registry import APPLIED, Registry

TARGET_SRC = """
class Engine:
    def __init__(self):
        self.queue = []

    def step(self):
        self.queue.append(len(self.queue))
        return len(self.queue)
"""


def test_every_category_module_declares_tables_and_targets():
    names = probes.category_names()
    assert "cpu_ops" in names
    for name in names:
        mod = probes.load_category(name)
        assert mod.TABLES and mod.TARGETS, name
        for t in mod.TARGETS:
            assert t.category == name and (t.table is None or t.table in mod.TABLES)


def test_config_lists_categories_without_importing_them():
    code = (
        "import sys; from profilemate import config; names = config.categories(); "
        "assert 'cpu_ops' in names, names; "
        "bad = [m for m in sys.modules if m.startswith('profilemate.probes.') or m in "
        "('dataclasses', 'inspect')]; assert not bad, bad"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_test_only_category_needs_no_other_file(tmp_path, monkeypatch):
    (tmp_path / f"{pm_test_category.SITE_MODULE}.py").write_text(TARGET_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = probes.register_category(pm_test_category, "test_queue")
    wd = ModuleWatchdog()
    wd.install()
    core = Core(tmp_path / "session")
    try:
        assert "test_queue" in probes.category_names()
        cfg = config.load({"PROFILEMATE_PROBES": "test_queue"})
        assert cfg.probes == ("test_queue",)
        with pytest.raises(config.ConfigError, match="test_queue"):
            config.load({"PROFILEMATE_PROBES": "no_such_category"})  # names the known ones
        reg = Registry(
            probes.targets_for(cfg.probes), core.recorder, watchdog=wd, vllm_version="0.32.0"
        )
        reg.activate()
        mod = importlib.import_module(pm_test_category.SITE_MODULE)
        assert [r["state"] for r in reg.status()] == [APPLIED]
        assert reg.status()[0]["category"] == name
        engine = mod.Engine()
        assert [engine.step() for _ in range(3)] == [1, 2, 3]
        _core.flush()
        header, rows = read_csv(os.path.join(core.dir, "test_queue_depth.csv"))
        assert header == ["timestamp_sec", "step_id", "depth", "duration_ms"]
        assert [r[2] for r in rows] == ["1", "2", "3"]
        reg.deactivate()
    finally:
        _core.stop()
        wd.uninstall()
        probes.unregister_category(name)
        sys.modules.pop(pm_test_category.SITE_MODULE, None)
    assert "test_queue" not in probes.category_names()


def test_targets_of_several_categories_stack_on_one_site(tmp_path, monkeypatch):
    """Two categories observe one method: both rows per call, vLLM's function once, and
    deactivation restores the original whatever order the wrappers went on in."""
    from profilemate.probes.spec import Column, Hooks, Table, Target

    (tmp_path / "pm_stack_target.py").write_text(TARGET_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    wide = Table(
        "test_stack_wide",
        (Column("step_id", "step"), *(Column(f"v{i}", f"a{i}") for i in range(16))),
    )

    def wide_hooks(ctx):
        def before(self):
            return (len(self.queue) + 1, *range(7))  # the step, then seven values

        def after(result, self):
            return tuple(range(100, 109))  # nine more: sixteen in all

        return Hooks(before, after)

    targets = [
        Target("pm_stack_target:Engine.step", "step", pm_test_category.QUEUE,
               hooks=pm_test_category.queue_hooks),
        Target("pm_stack_target:Engine.step", "step", wide, hooks=wide_hooks, sets_step=True),
        Target("pm_stack_target:Engine.step", "step_time", pm_test_category.QUEUE),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="duplicate target"):
        Registry([targets[0], targets[0]], None, watchdog=None, vllm_version="0.32.0")
    wd = ModuleWatchdog()
    wd.install()
    core = Core(tmp_path / "session")
    try:
        mod = importlib.import_module("pm_stack_target")
        original = mod.Engine.__dict__["step"]
        reg = Registry(targets, core.recorder, watchdog=wd, vllm_version="0.32.0")
        reg.activate()
        assert [r["state"] for r in reg.status()] == [APPLIED] * 3
        engine = mod.Engine()
        assert [engine.step() for _ in range(3)] == [1, 2, 3]  # vLLM's function ran once a call
        _core.flush()
        _, q = read_csv(os.path.join(core.dir, "test_queue_depth.csv"))
        header, w = read_csv(os.path.join(core.dir, "test_stack_wide.csv"))
        assert sorted(r[2] for r in q) == ["0", "0", "0", "1", "2", "3"]  # + timing-only rows
        assert [r[0] for r in w] == ["1", "2", "3"]
        assert w[0][1:] == [str(i) for i in range(7)] + [str(i) for i in range(100, 109)]
        reg.deactivate()
        assert mod.Engine.__dict__["step"] is original
    finally:
        _core.stop()
        wd.uninstall()
        sys.modules.pop("pm_stack_target", None)
