"""Import-order cases against the installed vLLM's real modules (no model run; fresh interpreters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

_has_vllm = (
    subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; exit(u.find_spec('vllm') is None)"]
    ).returncode
    == 0
)
if not _has_vllm:
    pytest.skip("vLLM is not installed in this interpreter", allow_module_level=True)

SCHED = "vllm.v1.core.sched.scheduler:Scheduler.schedule"
WORKER = "vllm.v1.worker.gpu_worker:Worker.execute_model"
INPUT = "vllm.v1.engine.input_processor:InputProcessor.process_inputs"


def run(code: str, env: dict[str, str], timeout: float = 300) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    base.update(env)
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, p.stderr[-5000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_hook_first_then_lazy_imports_and_reload(tmp_path):
    r = run(
        """
        import importlib, json
        import profilemate
        from profilemate.probes.registry import is_wrapper
        armed = profilemate.status()["state"]
        import vllm  # activation: the process turned out to be vLLM
        at_import = {t["target"]: t["state"] for t in profilemate.status()["targets"]}
        from vllm.v1.core.sched import scheduler  # lazy submodule, patched as it loads
        from vllm.v1.worker.cpu_worker import CPUWorker  # the CPU platform's worker class
        from vllm.v1.worker.gpu_worker import Worker
        inherited = CPUWorker.execute_model is Worker.__dict__["execute_model"]
        wrapped = is_wrapper(scheduler.Scheduler.__dict__["schedule"])
        scheduler = importlib.reload(scheduler)
        st = {t["target"]: t for t in profilemate.status()["targets"]}
        print(json.dumps({
            "armed": armed, "at_import": at_import, "inherited": inherited, "wrapped": wrapped,
            "rewrapped": is_wrapper(scheduler.Scheduler.__dict__["schedule"]),
            "states": {k: v["state"] for k, v in st.items()}, "patches": st[SCHED]["patches"],
            "reasons": {k: v["reason"] for k, v in st.items()},
            "vllm": profilemate.status()["vllm_version"], "label": profilemate.status()["label"]}))
        """.replace("SCHED", repr(SCHED)),
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(tmp_path / "out")},
    )
    assert r["armed"] == "armed"
    assert r["at_import"][SCHED] == "pending"
    assert r["inherited"] is True and r["wrapped"] is True and r["rewrapped"] is True
    assert r["states"][SCHED] == "applied" and r["patches"] == 2
    assert r["states"][WORKER] == "applied"
    assert r["states"]["vllm.v1.engine.processor:Processor.process_inputs"] == "skipped"
    assert "not in vLLM 0.32.0" in r["reasons"]["vllm.v1.engine.processor:Processor.process_inputs"]
    assert r["vllm"] == "0.32.0" and r["label"] == "api"


def test_vllm_imported_first_then_enable_and_rebind(tmp_path):
    r = run(
        """
        import json, vllm.forward_context as fc
        from vllm.v1.worker import gpu_model_runner as gmr  # binds set_forward_context by name
        from vllm.v1.core.sched.scheduler import Scheduler
        from vllm.v1.engine.input_processor import InputProcessor
        original = fc.set_forward_context
        assert gmr.set_forward_context is original
        import profilemate
        d = profilemate.enable(OUT)
        st = {t["target"]: t["state"] for t in profilemate.status()["targets"]}

        # A rebind target on the real modules: the runner's own binding must follow.
        from profilemate.hooks.watchdog import get_watchdog
        from profilemate import _core
        from profilemate.probes.recorder import CoreRecorder
        from profilemate.probes.registry import Registry, is_wrapper
        from profilemate.probes.spec import Column, Table, Target
        table = Table("rebind_test", (Column("operation", "name"),))
        t = Target("vllm.forward_context:set_forward_context", "set_forward_context", table,
                   rebind=True)
        reg = Registry([t], CoreRecorder(_core), watchdog=get_watchdog(), vllm_version="0.32.0")
        reg.activate()
        rebound = gmr.set_forward_context is fc.set_forward_context is not original
        reg.deactivate()
        restored = gmr.set_forward_context is original and fc.set_forward_context is original
        print(json.dumps({"dir": d, "st": st, "rebound": rebound, "restored": restored,
                          "wrapped": is_wrapper(Scheduler.__dict__["schedule"])}))
        """.replace("OUT", repr(str(tmp_path / "out"))),
        {},
    )
    assert r["dir"] and "/api-" in r["dir"]
    assert r["st"][SCHED] == "applied" and r["st"][INPUT] == "applied"
    assert r["wrapped"] is True
    assert r["rebound"] is True and r["restored"] is True
