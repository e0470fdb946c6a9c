"""The lifecycle probes (final files before vLLM's teardown; the API's bounded wait for them) on
stand-in functions, through the real C++ wrapper and a real core session."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from types import SimpleNamespace

import pytest
from test_core_readers import read_csv
from test_registry import Core

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import load_category
from profilemate.probes.registry import APPLIED, Registry
from profilemate.probes.spec import Site

LIFECYCLE = load_category("lifecycle")

SRC = """
    CALLS = []

    class EngineCore:
        def shutdown(self):
            CALLS.append("engine")

    class WorkerProc:
        def shutdown(self):
            CALLS.append("worker")

    def shutdown(procs, timeout=None):
        # vLLM: SIGTERM, wait up to timeout, SIGKILL; the stand-in only kills.
        CALLS.append(("stop", timeout))
        for p in procs:
            p.kill()
"""

# A stand-in EngineCore: its folder at once, its final summary.json 0.2 s after SIGTERM.
CHILD = """
import json, os, signal, sys, time
d = os.path.join(sys.argv[1], f"enginecore-{os.getpid()}")
os.makedirs(d)
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append(1))
print("ready", flush=True)
while not got:
    time.sleep(0.01)
if sys.argv[2] == "writes":
    time.sleep(0.2)
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"final": True}, f)
time.sleep(60)
"""


@pytest.fixture
def mod(tmp_path, monkeypatch):
    name = f"pm_lifecycle_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    wd = ModuleWatchdog()
    wd.install()
    m = importlib.import_module(name)
    yield m, wd
    wd.uninstall()
    sys.modules.pop(name, None)


def _registry(m, wd, core: Core, operation: str) -> Registry:
    t = next(t for t in LIFECYCLE.TARGETS if t.operation == operation)
    t = dataclasses.replace(t, site=Site(m.__name__, t.site.qualname), alternatives=())
    reg = Registry([t], core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    assert {r["state"] for r in reg.status()} == {APPLIED}
    return reg


def _rows(process_dir: str) -> list[dict]:
    path = os.path.join(process_dir, "lifecycle.csv")
    if not os.path.exists(path):
        return []
    header, rows = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


class FakeRuntime:
    def __init__(self, label: str, session_dir: str = "") -> None:
        self.label = label
        self.session = SimpleNamespace(dir=session_dir)
        self.finished = 0

    def finish(self) -> None:
        self.finished += 1
        _core.stop()


@pytest.mark.parametrize("operation", ["engine_shutdown", "worker_shutdown"])
def test_final_files_are_written_before_vllms_teardown(mod, tmp_path, monkeypatch, operation):
    m, wd = mod
    lifecycle = sys.modules[LIFECYCLE.__name__]
    role = "enginecore" if operation == "engine_shutdown" else "worker-0"
    rt = FakeRuntime(role)
    monkeypatch.setattr(lifecycle, "_runtime", lambda: rt)
    core = Core(tmp_path / "s")
    reg = _registry(m, wd, core, operation)
    try:
        _core.set_step(41)
        obj = m.EngineCore() if operation == "engine_shutdown" else m.WorkerProc()
        obj.shutdown()
        assert m.CALLS == ["engine" if operation == "engine_shutdown" else "worker"]
        assert rt.finished == 1 and not _core.enabled()  # stopped before vLLM's own shutdown ran
        summary = json.loads(open(os.path.join(core.dir, "summary.json")).read())
        assert summary["final"] is True
        (row,) = _rows(core.dir)  # vLLM's call itself is not recorded: the core is stopped
        assert row["operation"] == "final_flush" and row["step_id"] == "41"
        assert row["context"].endswith(".shutdown")
    finally:
        reg.deactivate()
        _core.stop()


def test_an_engine_in_the_users_process_keeps_profiling(mod, tmp_path, monkeypatch):
    """VLLM_ENABLE_V1_MULTIPROCESSING=0: EngineCore.shutdown runs in the api process."""
    m, wd = mod
    rt = FakeRuntime("api")
    monkeypatch.setattr(sys.modules[LIFECYCLE.__name__], "_runtime", lambda: rt)
    core = Core(tmp_path / "s")
    reg = _registry(m, wd, core, "engine_shutdown")
    try:
        m.EngineCore().shutdown()
        assert rt.finished == 0 and _core.enabled()
        _core.flush()
        assert [r["operation"] for r in _rows(core.dir)] == ["engine_shutdown"]
    finally:
        reg.deactivate()
        _core.stop()


def test_signals_during_the_final_write_are_held_then_delivered():
    lifecycle = sys.modules[LIFECYCLE.__name__]
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append("vllm handler"))

    class Rt:
        def finish(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler would run here if the signal were not held
            seen.append("finished")

    try:
        lifecycle._finish_holding_signals(Rt())
        assert seen == ["finished", "vllm handler"]
        assert signal.getsignal(signal.SIGTERM) is not None
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_held_sigterm_still_ends_a_process_that_had_the_default_action():
    """The EngineCore case: vLLM set SIG_DFL before its teardown; the SIGTERM kills after the write."""
    code = textwrap.dedent(
        """
        import os, signal, sys
        from profilemate.probes import load_category
        lifecycle = sys.modules[load_category("lifecycle").__name__]
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        class Rt:
            def finish(self):
                os.kill(os.getpid(), signal.SIGTERM)
                print("finished", flush=True)

        lifecycle._finish_holding_signals(Rt())
        print("survived", flush=True)
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGTERM, p.stderr
    assert p.stdout.split() == ["finished"]


class Proc:
    """What vLLM's shutdown() reads of a multiprocessing.Process."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen, self.pid = popen, popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        self.popen.terminate()

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()


def _child(session: str, mode: str) -> Proc:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, session, mode], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "ready"
    return Proc(p)


@pytest.mark.parametrize("mode", ["writes", "hangs"])
def test_api_waits_for_final_files_only_when_vllm_gives_no_grace(mod, tmp_path, monkeypatch, mode):
    m, wd = mod
    lifecycle = sys.modules[LIFECYCLE.__name__]
    monkeypatch.setattr(lifecycle, "FLUSH_WAIT_S", 0.6)
    session = tmp_path / "session"
    session.mkdir()
    monkeypatch.setattr(lifecycle, "_runtime", lambda: FakeRuntime("api", str(session)))
    core = Core(tmp_path / "api")
    reg = _registry(m, wd, core, "stop_processes")
    try:
        # A grace of 5 s (the offline LLM at exit): vLLM's own wait suffices, nothing is added.
        child = _child(str(session), mode)
        t = time.monotonic()
        m.shutdown([child], timeout=5)
        assert time.monotonic() - t < 0.2
        # A grace of 0 s (the API server): terminate, wait for the final files, then vLLM kills.
        child = _child(str(session), mode)
        m.shutdown([child], 0)
        assert m.CALLS == [("stop", 5), ("stop", 0)]
        _core.flush()
        rows = _rows(core.dir)
        assert [r["operation"] for r in rows] == ["stop_processes", "flush_wait", "stop_processes"]
        wait = rows[1]
        waited = float(wait["duration_ms"])
        assert wait["processes"] == "1"
        if mode == "writes":
            assert 150 < waited < 600 and wait["unfinished"] == "0"
            folder = session / f"enginecore-{child.pid}"
            assert json.loads((folder / "summary.json").read_text())["final"] is True
        else:
            assert 550 < waited < 1500 and wait["unfinished"] == "1"
        assert rows[2]["processes"] == "1"
    finally:
        reg.deactivate()
        _core.stop()


def test_targets_are_well_formed():
    keys = [s.key for t in LIFECYCLE.TARGETS for s in t.sites]
    assert len(keys) == len(set(keys))
    for t in LIFECYCLE.TARGETS:
        assert all(s.module.startswith("vllm.") for s in t.sites)
        assert t.category == "lifecycle" and t.table.name == "lifecycle"
