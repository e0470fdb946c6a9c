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
            assert t.category == name and t.table in mod.TABLES


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
