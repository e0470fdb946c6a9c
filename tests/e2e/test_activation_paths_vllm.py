"""The two activation paths other than `profilemate run`, on real vLLM (CPU build).

- Environment only: `PROFILEMATE=1 python my_script.py` — the `.pth` start-up hook arms every Python
  process, and the ones that import vLLM (the script, and the EngineCore and worker that vLLM
  spawns) activate.
- vLLM's plugin entry point: the script sets PROFILEMATE itself, after interpreter start-up, so the
  start-up hook never saw it; vLLM's `load_general_plugins()` calls our entry point in the API
  process before the engine starts. The spawned children inherit the variable and activate at
  start-up.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import run_workload
from .workloads import DENSE

pytestmark = pytest.mark.vllm

NUM_PROMPTS = 32


def _session(out_dir: Path) -> Path:
    sessions = sorted(p for p in out_dir.iterdir() if p.is_dir())
    assert len(sessions) == 1, sessions
    return sessions[0]


def _procs(session: Path) -> dict[str, Path]:
    return {p.name.rsplit("-", 1)[0]: p for p in session.iterdir() if p.is_dir()}


def _status(d: Path) -> dict:
    return json.loads((d / "patch_status.json").read_text())


def _ops(d: Path) -> list[str]:
    with (d / "cpu_operations_timing.csv").open(newline="") as f:
        return [r["operation"] for r in csv.DictReader(f)]


def _check_three_processes(session: Path) -> dict[str, Path]:
    procs = _procs(session)
    assert set(procs) == {"api", "enginecore", "worker-0"}, sorted(procs)
    assert _ops(procs["api"]).count("process_inputs") == NUM_PROMPTS
    n_sched = _ops(procs["enginecore"]).count("schedule")
    assert n_sched >= 16  # at least one engine step per generated token
    assert _ops(procs["worker-0"]).count("execute_model") == n_sched
    return procs


def test_environment_only_activation(tmp_path):
    out = tmp_path / "out"
    run = run_workload(
        tmp_path / "wd", *DENSE, env={"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)}
    )
    assert run.returncode == 0, run.log[-5000:]
    assert len(run.requests) == NUM_PROMPTS
    procs = _check_three_processes(_session(out))
    for d in procs.values():
        st = _status(d)
        assert st["state"] == "active"
        assert st["activation"] == "pth", st  # the .pth start-up hook


def test_plugin_activation_when_variable_set_after_startup(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "late_enable.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            from profilemate.demo.workload import main

            if __name__ == "__main__":
                # Too late for the start-up hook of this interpreter: only vLLM's plugin
                # entry point can activate ProfileMate here.
                os.environ["PROFILEMATE"] = "1"
                os.environ["PROFILEMATE_DIR"] = {str(out)!r}
                assert "profilemate.activation.runtime" not in sys.modules
                sys.exit(main({list(DENSE)!r} + ["--out-json", {str(tmp_path / "w.json")!r}]))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    procs = _check_three_processes(_session(out))
    assert _status(procs["api"])["activation"] == "plugin"
    for role in ("enginecore", "worker-0"):
        assert _status(procs[role])["activation"] == "pth"
