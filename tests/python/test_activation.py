"""Activation paths, each in a fresh interpreter, against a small fake ``vllm`` package.

The fake package has vLLM 0.32.0's module and class names for the cpu_ops and lifecycle targets and
mimics its process model: an API process, an ``EngineCore`` child and a ``VllmWorker-0``
grandchild, started with spawn or fork, the SchedulerOutput travelling by pickle. The real vLLM
run is in tests/e2e/test_activation_vllm.py.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FAKE_VLLM = {
    "vllm/__init__.py": '__version__ = "0.32.0"\n',
    "vllm/v1/__init__.py": "",
    "vllm/v1/engine/__init__.py": "",
    "vllm/v1/engine/input_processor.py": """
        class InputProcessor:
            def process_inputs(self, request_id, prompt, params=None):
                return {"id": request_id, "prompt": prompt}
    """,
    "vllm/v1/core/__init__.py": "",
    "vllm/v1/core/sched/__init__.py": "",
    "vllm/v1/core/sched/output.py": """
        from dataclasses import dataclass
        @dataclass
        class SchedulerOutput:
            total_num_scheduled_tokens: int
    """,
    "vllm/v1/core/sched/scheduler.py": """
        from vllm.v1.core.sched.output import SchedulerOutput
        class Scheduler:
            def __init__(self):
                self.n = 0
            def schedule(self, throttle_prefills=False):
                self.n += 1
                return SchedulerOutput(total_num_scheduled_tokens=self.n)
    """,
    "vllm/v1/worker/__init__.py": "",
    "vllm/v1/worker/gpu_worker.py": """
        class Worker:
            def execute_model(self, scheduler_output):
                return scheduler_output.total_num_scheduled_tokens * 10
    """,
    # The lifecycle probes' sites (never called here: these tests end their processes themselves).
    "vllm/v1/utils.py": """
        def shutdown(procs, timeout=None):
            pass
    """,
    "vllm/v1/engine/core.py": """
        class EngineCore:
            def shutdown(self):
                pass
    """,
    "vllm/v1/executor/__init__.py": "",
    "vllm/v1/executor/multiproc_executor.py": """
        class WorkerProc:
            def shutdown(self):
                pass
    """,
    # vLLM's process model in miniature: API -> EngineCore -> VllmWorker-0.
    "vllm/fake_engine.py": """
        import multiprocessing as mp

        def worker_main(q, r):
            from vllm.v1.worker.gpu_worker import Worker
            w = Worker()
            while True:
                so = q.get()
                if so is None:
                    break
                r.put(w.execute_model(so))

        def engine_core_main(method, steps, out):
            from vllm.v1.core.sched.scheduler import Scheduler
            ctx = mp.get_context(method)
            q, r = ctx.Queue(), ctx.Queue()
            w = ctx.Process(target=worker_main, args=(q, r), name="VllmWorker-0")
            w.start()
            s = Scheduler()
            results = []
            for _ in range(steps):
                q.put(s.schedule())  # pickled on the way, like vLLM's MessageQueue
                results.append(r.get())
            q.put(None)
            w.join(60)
            out.put(results)

        def run(method, steps):
            from vllm.v1.engine.input_processor import InputProcessor
            ip = InputProcessor()
            for i in range(3):
                ip.process_inputs(str(i), "hello")
            ctx = mp.get_context(method)
            out = ctx.Queue()
            p = ctx.Process(target=engine_core_main, args=(method, steps, out), name="EngineCore")
            p.start()
            res = out.get(timeout=120)
            p.join(60)
            return res
    """,
}

INPUT_KEY = "vllm.v1.engine.input_processor:InputProcessor.process_inputs"
SCHED_KEY = "vllm.v1.core.sched.scheduler:Scheduler.schedule"
WORKER_KEY = "vllm.v1.worker.gpu_worker:Worker.execute_model"


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Path:
    root = tmp_path / "pkgs"
    for rel, body in FAKE_VLLM.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body))
    return root


def run(
    code: str, root: Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout=180
):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    base["PYTHONPATH"] = str(root)
    base.update(env or {})
    script = (cwd or root.parent) / "main_script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd or root.parent,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sessions(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def status_of(process_dir: Path, category: str = "cpu_ops") -> dict[str, dict]:
    """patch_status.json rows of one category by site (several categories may share a site)."""
    data = json.loads((process_dir / "patch_status.json").read_text())
    return {t["target"]: t for t in data["targets"] if t["category"] == category}


def all_status(process_dir: Path) -> list[dict]:
    return json.loads((process_dir / "patch_status.json").read_text())["targets"]


def rows(process_dir: Path) -> list[dict]:
    f = process_dir / "cpu_operations_timing.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))


ENGINE_RUN = """
import json, sys
if __name__ == "__main__":
    from vllm import fake_engine
    print(json.dumps({"results": fake_engine.run(sys.argv[1] if len(sys.argv) > 1 else "%s", 5)}))
"""


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_env_activation_follows_vllm_into_every_process(fake_vllm, tmp_path, method):
    out = tmp_path / "out"
    proc = run(ENGINE_RUN % method, fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)})
    assert last_json(proc)["results"] == [10, 20, 30, 40, 50]
    (session,) = sessions(out)  # one session for the whole run
    dirs = {p.name.rsplit("-", 1)[0]: p for p in session.iterdir() if p.is_dir()}
    assert set(dirs) == {"api", "enginecore", "worker-0"}, sorted(dirs)
    # Each process: its own target applied, the others present but not imported there.
    assert status_of(dirs["api"])[INPUT_KEY]["state"] == "applied"
    assert status_of(dirs["enginecore"])[SCHED_KEY]["state"] == "applied"
    assert status_of(dirs["worker-0"])[WORKER_KEY]["state"] == "applied"
    assert status_of(dirs["api"])[SCHED_KEY]["state"] == "pending"
    assert (
        status_of(dirs["api"])["vllm.v1.engine.processor:Processor.process_inputs"]["state"]
        == "skipped"
    )
    # One schedule span per step, and the worker's rows carry the same step ids.
    ec = rows(dirs["enginecore"])
    wk = rows(dirs["worker-0"])
    assert [r["operation"] for r in ec] == ["schedule"] * 5
    assert [int(r["step_id"]) for r in ec] == [1, 2, 3, 4, 5]
    assert [r["operation"] for r in wk] == ["execute_model"] * 5
    assert [int(r["step_id"]) for r in wk] == [1, 2, 3, 4, 5]
    assert [int(r["num_tokens"]) for r in ec] == [1, 2, 3, 4, 5]  # the fake's token counts
    assert [int(r["num_tokens"]) for r in wk] == [1, 2, 3, 4, 5]
    assert [r["operation"] for r in rows(dirs["api"])] == ["process_inputs"] * 3
    assert all(float(r["duration_ms"]) >= 0 for r in ec + wk)
    meta = json.loads((session / "metadata.json").read_text())
    assert meta["versions"]["vllm"] == "0.32.0"
    assert meta["created_by"]["activation"] == "pth"
    assert meta["config"]["dir"] == str(out)
    # The clock object every JSON file shares (summary.json has the same keys, plus written_at_ns).
    clock = meta["clock"]
    assert set(clock) == {"name", "session_start_ns", "monotonic_ns", "realtime_ns"}
    assert clock["name"] == "CLOCK_MONOTONIC"
    assert meta["session_start_realtime_ns"] == clock["realtime_ns"] - (
        clock["monotonic_ns"] - clock["session_start_ns"]
    )
    summary = json.loads((dirs["api"] / "summary.json").read_text())
    assert set(clock) <= set(summary["clock"]) and summary["clock"]["name"] == clock["name"]
    assert summary["clock"]["session_start_ns"] == clock["session_start_ns"]
    # Default logging: one start-up line per process, naming its folder.
    lines = [ln for ln in proc.stderr.splitlines() if "profiling into" in ln]
    assert len(lines) == 3, proc.stderr
    assert all(str(session) in ln for ln in lines)


def test_fork_exec_children_of_a_profiled_process_leave_no_folder(fake_vllm, tmp_path):
    # subprocess's preexec_fn, os.fork + exec and pty.fork + exec all run the after-fork hooks
    # (the core's and the runtime's); the exec'd program is not profiled: no folder for the child.
    out = tmp_path / "out"
    proc = run(
        """
        import json, os, pty, subprocess, sys
        import vllm  # activates this process
        import profilemate
        from vllm.v1.engine.input_processor import InputProcessor
        InputProcessor().process_inputs("0", "hello")
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=lambda: None, check=True)
        pid = os.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", "pass"])
        os.waitpid(pid, 0)
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", "pass"])
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass
        os.waitpid(pid, 0)
        InputProcessor().process_inputs("1", "hello")
        profilemate.flush()
        print(json.dumps({"dir": profilemate.status()["process_dir"]}))
        """,
        fake_vllm,
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)},
    )
    d = Path(last_json(proc)["dir"])
    (session,) = sessions(out)
    assert sorted(p.name for p in session.iterdir() if p.is_dir()) == [d.name]
    assert [r["operation"] for r in rows(d)] == ["process_inputs"] * 2


def test_unrelated_process_is_not_instrumented(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        """
        import json, sys
        import profilemate
        print(json.dumps({"state": profilemate.status()["state"], "vllm": "vllm" in sys.modules}))
        """,
        fake_vllm,
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)},
    )
    assert last_json(proc) == {"state": "armed", "vllm": False}
    assert not out.exists()
    assert proc.stderr == ""


# What the start-up hook may load for a PROFILEMATE that says "off": the shared reading of the
# variable (config.mode_from_env) and nothing that arms (runtime, watchdog, logging, the core).
OFF_MODULES = [
    "profilemate",
    "profilemate._version",
    "profilemate.activation",
    "profilemate.activation.startup",
    "profilemate.config",
]


def test_unset_costs_nothing_and_zero_forces_off(fake_vllm, tmp_path):
    code = """
        import json, sys
        import vllm.v1.core.sched.scheduler
        print(json.dumps({
            "loaded": sorted(m for m in sys.modules if m.startswith("profilemate")),
            "finders": [type(f).__name__ for f in sys.meta_path],
        }))
    """
    unset = last_json(run(code, fake_vllm))
    assert unset["loaded"] == []
    out = tmp_path / "out"
    for env in (
        {"PROFILEMATE": "0", "VLLM_ENABLE_PROFILING": "1"},
        {"PROFILEMATE": "off"},
        {"VLLM_ENABLE_PROFILING": "0"},  # the alias's notice only when it turns profiling on
    ):
        proc = run(code, fake_vllm, {**env, "PROFILEMATE_DIR": str(out)})
        r = last_json(proc)
        assert r["loaded"] == OFF_MODULES, env
        assert r["finders"] == unset["finders"], env  # nothing armed
        assert proc.stderr == "", env
    assert not out.exists()


def test_malformed_mode_one_message_per_process_across_paths(fake_vllm, tmp_path):
    # The .pth start-up hook and the vLLM plugin both meet the bad value: one line.
    code = """
        import json
        from profilemate.activation import plugin
        plugin.register()
        import profilemate
        print(json.dumps({"state": profilemate.status()["state"]}))
    """
    proc = run(code, fake_vllm, {"PROFILEMATE": "yess", "PROFILEMATE_DIR": str(tmp_path / "o")})
    assert last_json(proc) == {"state": "off"}
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("[profilemate ") and "PROFILEMATE='yess' is not valid" in lines[0]
    assert "profiling is off for this process, vLLM runs normally" in lines[0]
    proc = run(code, fake_vllm, {"VLLM_ENABLE_PROFILING": "maybe"})
    assert last_json(proc) == {"state": "off"}
    assert proc.stderr.count("VLLM_ENABLE_PROFILING='maybe' is not valid") == 1, proc.stderr


def test_seed_alias_works_with_one_notice(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        ENGINE_RUN % "spawn", fake_vllm, {"VLLM_ENABLE_PROFILING": "1", "PROFILEMATE_DIR": str(out)}
    )
    last_json(proc)
    assert proc.stderr.count("VLLM_ENABLE_PROFILING is a deprecated alias") == 1, proc.stderr
    (session,) = sessions(out)
    assert len([p for p in session.iterdir() if p.is_dir()]) == 3


@pytest.mark.parametrize(
    "var,value,allowed",
    [
        ("PROFILEMATE", "banana", "force"),
        ("PROFILEMATE_LOG", "loud", "info, debug, warning"),
        ("PROFILEMATE_PROBES", "gpu_magic", "cpu_ops"),
        ("PROFILEMATE_FLUSH_MS", "-5", "an integer from 1"),
    ],
)
def test_malformed_value_names_variable_and_vllm_runs(fake_vllm, tmp_path, var, value, allowed):
    out = tmp_path / "out"
    env = {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out), var: value}
    proc = run(ENGINE_RUN % "spawn", fake_vllm, env)
    assert last_json(proc)["results"] == [10, 20, 30, 40, 50]
    assert f"{var}={value!r} is not valid" in proc.stderr
    assert allowed in proc.stderr
    assert "profiling is off" in proc.stderr
    assert not out.exists()


def test_unwritable_dir_one_warning_and_vllm_runs(fake_vllm, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = blocker / "sub"  # fails even for root, unlike a chmod-ed folder
    proc = run(ENGINE_RUN % "spawn", fake_vllm, {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(bad)})
    assert last_json(proc)["results"] == [10, 20, 30, 40, 50]
    warnings = [ln for ln in proc.stderr.splitlines() if "PROFILEMATE_DIR" in ln]
    assert len(warnings) == 1, proc.stderr  # children inherit "off" instead of repeating it
    assert str(blocker) in warnings[0] and "vLLM runs normally" in warnings[0]


def test_vllm_imported_first_then_enable(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        """
        import json
        from vllm.v1.core.sched.scheduler import Scheduler
        from vllm.v1.worker.gpu_worker import Worker
        import profilemate
        d = profilemate.enable("OUT_DIR")
        s, w = Scheduler(), Worker()
        res = [w.execute_model(s.schedule()) for _ in range(4)]
        profilemate.flush()
        st = profilemate.status()
        print(json.dumps({"dir": d, "res": res, "states": {t["target"]: t["state"] for t in st["targets"]},
                          "again": profilemate.enable() == d, "activation": st["activation"]}))
        """.replace("OUT_DIR", str(out)),
        fake_vllm,
    )
    r = last_json(proc)
    assert r["res"] == [10, 20, 30, 40]
    assert r["again"] is True and r["activation"] == "enable"
    assert r["states"][SCHED_KEY] == "applied" and r["states"][WORKER_KEY] == "applied"
    assert r["states"][INPUT_KEY] == "pending"
    d = Path(r["dir"])
    assert d.name.startswith("api-")
    ops = [(x["operation"], int(x["step_id"])) for x in rows(d)]
    assert ops == [(op, i) for i in range(1, 5) for op in ("schedule", "execute_model")]


def test_lazy_submodule_reload_and_disable(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        """
        import importlib, json
        import vllm  # activation happens here; no target module imported yet
        import profilemate
        first = {t["target"]: t["state"] for t in profilemate.status()["targets"]}
        import vllm.v1.core.sched.scheduler as sm  # lazy: patched as it loads
        sm.Scheduler().schedule()
        sm = importlib.reload(sm)  # the reloaded class is patched again
        sm.Scheduler().schedule()
        st = {t["target"]: t for t in profilemate.status()["targets"]}
        profilemate.flush()
        d = profilemate.status()["process_dir"]
        profilemate.disable()
        sm.Scheduler().schedule()  # not recorded any more
        wrapped_after = hasattr(sm.Scheduler.__dict__["schedule"], "__wrapped__")
        print(json.dumps({"first": first[KEY], "state": st[KEY]["state"], "patches": st[KEY]["patches"],
                          "dir": d, "wrapped_after": wrapped_after,
                          "after": profilemate.status()["state"]}))
        """.replace("KEY", repr(SCHED_KEY)),
        fake_vllm,
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out)},
    )
    r = last_json(proc)
    assert r["first"] == "pending"
    assert r["state"] == "applied" and r["patches"] == 2
    assert r["wrapped_after"] is False and r["after"] == "off"
    assert [x["operation"] for x in rows(Path(r["dir"]))] == ["schedule", "schedule"]


def test_launcher_chains_user_sitecustomize(fake_vllm, tmp_path):
    out = tmp_path / "out"
    user_site = tmp_path / "usersite"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text(
        "import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = 'yes'\n"
    )
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            import sitecustomize
            if __name__ == "__main__":
                from vllm import fake_engine
                res = fake_engine.run("spawn", 2)
                print(json.dumps({"res": res, "user": os.environ.get("USER_SITECUSTOMIZE_RAN"),
                                  "sc": sitecustomize.__file__,
                                  "ray": os.environ.get("VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY")}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(fake_vllm), str(user_site)])
    env["VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY"] = "MYTOOL_"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "profilemate.cli",
            "run",
            "--dir",
            str(out),
            "--",
            sys.executable,
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    r = last_json(proc)
    assert r["res"] == [10, 20]
    assert r["user"] == "yes"
    assert r["sc"] == str(user_site / "sitecustomize.py")
    assert r["ray"] == "MYTOOL_,PROFILEMATE_"
    (session,) = sessions(out)
    meta = json.loads((session / "metadata.json").read_text())
    assert meta["created_by"]["activation"] == "run"
    assert {p.name.rsplit("-", 1)[0] for p in session.iterdir() if p.is_dir()} == {
        "api",
        "enginecore",
        "worker-0",
    }


def test_plugin_activates_when_startup_hook_missed(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        """
        import json, os
        import vllm.v1.core.sched.scheduler as sm
        # As if PROFILEMATE reached this process after interpreter start (e.g. set by a launcher
        # that the .pth never saw): vLLM's load_general_plugins() calls our entry point.
        os.environ["PROFILEMATE"] = "1"
        os.environ["PROFILEMATE_DIR"] = OUT_DIR
        from importlib.metadata import entry_points
        (ep,) = [e for e in entry_points(group="vllm.general_plugins") if e.name == "profilemate"]
        ep.load()()
        ep.load()()  # vLLM may call it more than once per process: no-op
        import profilemate
        sm.Scheduler().schedule()
        st = profilemate.status()
        print(json.dumps({"activation": st["activation"], "state": st["state"],
                          "sched": [t["state"] for t in st["targets"] if t["target"] == KEY][0]}))
        """.replace("OUT_DIR", repr(str(out))).replace("KEY", repr(SCHED_KEY)),
        fake_vllm,
    )
    assert last_json(proc) == {"activation": "plugin", "state": "active", "sched": "applied"}


def test_debug_logging(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        "import vllm.v1.core.sched.scheduler\n",
        fake_vllm,
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out), "PROFILEMATE_LOG": "debug"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "patched vllm.v1.core.sched.scheduler:Scheduler.schedule" in proc.stderr
    # The summary is taken at activation (`import vllm`), before any target module loaded.
    # (A fake vLLM: whatever it lacks is skipped, what it may have is pending; none failed.)
    assert re.search(
        r"probes: 0 applied, [1-9]\d* pending, \d+ skipped, 0 failed \(vLLM 0\.32\.0\)", proc.stderr
    ), proc.stderr


def test_fault_injection_run_gives_identical_results(fake_vllm, tmp_path):
    out = tmp_path / "out"
    plain = last_json(run(ENGINE_RUN % "spawn", fake_vllm))
    proc = run(
        ENGINE_RUN % "spawn",
        fake_vllm,
        {"PROFILEMATE": "1", "PROFILEMATE_DIR": str(out), "PROFILEMATE_FAULT_INJECT": "1"},
    )
    assert last_json(proc) == plain
    (session,) = sessions(out)
    ec = next(p for p in session.iterdir() if p.name.startswith("enginecore-"))
    st = status_of(ec)[SCHED_KEY]
    assert st["state"] == "applied"
    assert st["health"]["active"] is False and st["health"]["errors"] == 1
    assert "FaultInjected" in st["health"]["first_error"]
    # One report per hooked target that ran (stacked targets at schedule/execute_model each report).
    errors = sum(
        (t["health"] or {}).get("errors", 0)
        for p in session.iterdir()
        if p.is_dir()
        for t in all_status(p)
    )
    assert errors >= 2 and proc.stderr.count("switched off") == errors


def test_force_starts_before_vllm_and_learns_its_version_later(fake_vllm, tmp_path):
    out = tmp_path / "out"
    proc = run(
        """
        import json
        import profilemate
        before = profilemate.status()
        import vllm.v1.core.sched.scheduler as sm
        sm.Scheduler().schedule()
        after = profilemate.status()
        print(json.dumps({"before": [before["state"], before["vllm_version"]],
                          "after": [after["state"], after["vllm_version"]],
                          "sched": [t["state"] for t in after["targets"] if t["target"] == KEY][0]}))
        """.replace("KEY", repr(SCHED_KEY)),
        fake_vllm,
        {"PROFILEMATE": "force", "PROFILEMATE_DIR": str(out)},
    )
    r = last_json(proc)
    assert r["before"] == ["active", None]  # forced: no vLLM needed to start
    assert r["after"] == ["active", "0.32.0"]
    assert r["sched"] == "applied"
    (session,) = sessions(out)
    assert json.loads((session / "metadata.json").read_text())["created_by"]["reason"] == "forced"
