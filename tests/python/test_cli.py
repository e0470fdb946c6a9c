"""`profilemate run` (environment it builds, errors) and `profilemate doctor` (in subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from profilemate import cli


def parse_run(*argv: str):
    return cli.build_parser().parse_args(["run", *argv])


def test_launch_env_sets_bootstrap_and_config():
    args = parse_run(
        "--dir",
        "/tmp/x",
        "--log",
        "debug",
        "--probes",
        "cpu_ops",
        "--fault-inject",
        "--",
        "python",
        "a.py",
    )
    env = cli.launch_env(
        args,
        {
            "PYTHONPATH": "/mine:/other",
            "PROFILEMATE_SESSION_DIR": "/old/session",
            "PROFILEMATE_SESSION_START_NS": "5",
            "VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY": "FOO_, BAR_",
        },
    )
    boot = cli.bootstrap_dir()
    assert env["PYTHONPATH"].split(os.pathsep) == [boot, "/mine", "/other"]
    assert (Path(boot) / "sitecustomize.py").is_file()
    assert env["PROFILEMATE"] == "1" and env["PROFILEMATE_ACTIVATION"] == "run"
    assert env["PROFILEMATE_DIR"] == "/tmp/x" and env["PROFILEMATE_LOG"] == "debug"
    assert env["PROFILEMATE_PROBES"] == "cpu_ops" and env["PROFILEMATE_FAULT_INJECT"] == "1"
    assert "PROFILEMATE_SESSION_DIR" not in env and "PROFILEMATE_SESSION_START_NS" not in env
    assert env["VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY"] == "FOO_,BAR_,PROFILEMATE_"
    assert args.command[-2:] == ["python", "a.py"]


def test_launch_env_idempotent_when_nested():
    args = parse_run("--force", "--", "x")
    env1 = cli.launch_env(args, {})
    env2 = cli.launch_env(args, env1)
    assert env2["PYTHONPATH"] == cli.bootstrap_dir()
    assert env2["VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY"] == "PROFILEMATE_"
    assert env2["PROFILEMATE"] == "force"


def _cli(*argv: str, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILEMATE", "VLLM_"))}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "profilemate.cli", *argv],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_execs_command_with_environment(tmp_path):
    p = _cli("run", "--dir", str(tmp_path / "o"), "--", sys.executable, "-c",
             "import os, json; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('PROFILEMATE')}))")  # fmt: skip
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["PROFILEMATE"] == "1" and env["PROFILEMATE_DIR"] == str(tmp_path / "o")
    # Not a vLLM process: nothing was written.
    assert not (tmp_path / "o").exists()


def test_run_errors():
    p = _cli("run", "--")
    assert p.returncode == 2 and "no command given" in p.stderr
    p = _cli("run", "--", "definitely-not-a-command-xyz")
    assert p.returncode == 127 and "command not found: definitely-not-a-command-xyz" in p.stderr
    p = _cli("run", "--flush-ms", "0", "--", "true")
    assert p.returncode == 2 and "PROFILEMATE_FLUSH_MS='0' is not valid" in p.stderr
    p = _cli("run", "--log", "loud", "--", "true")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_exit_code_of_command_is_preserved():
    p = _cli("run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert p.returncode == 7


FAKE_DOCTOR_VLLM = {
    "vllm/__init__.py": '__version__ = "0.32.0"\n',
    "vllm/v1/__init__.py": "",
    "vllm/v1/engine/__init__.py": "",
    "vllm/v1/engine/input_processor.py": "class InputProcessor:\n    def process_inputs(self, request_id, prompt):\n        pass\n",
    "vllm/v1/core/__init__.py": "",
    "vllm/v1/core/sched/__init__.py": "",
    "vllm/v1/core/sched/scheduler.py": "class Scheduler:\n    def schedule(self):\n        pass\n",
    "vllm/v1/worker/__init__.py": "",
    # A changed signature: the doctor must flag it.
    "vllm/v1/worker/gpu_worker.py": "class Worker:\n    def execute_model(self, batch):\n        pass\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body))


def test_doctor_json_reports_targets_paths_and_output(tmp_path):
    _write(tmp_path / "pkgs", FAKE_DOCTOR_VLLM)
    p = _cli(
        "doctor", "--json",
        env={"PYTHONPATH": str(tmp_path / "pkgs"), "PROFILEMATE": "1", "PROFILEMATE_DIR": str(tmp_path / "out")},
    )  # fmt: skip
    assert p.returncode == 1, p.stderr  # the signature problem makes it fail
    r = json.loads(p.stdout)
    assert r["versions"]["vllm"] == "0.32.0"
    t = {row["target"]: row for row in r["targets"]}
    assert t["vllm.v1.core.sched.scheduler:Scheduler.schedule"]["present"] is True
    assert t["vllm.v1.engine.processor:Processor.process_inputs"]["present"] is False
    w = t["vllm.v1.worker.gpu_worker:Worker.execute_model"]
    assert w["present"] is True and w["signature_ok"] is False and "scheduler_output" in w["detail"]
    assert any("cpu_ops" in prob or "execute_model" in prob for prob in r["problems"])
    assert r["output"] == {
        "dir": str(tmp_path / "out"),
        "writable": True,
        "detail": f"will be created (in {tmp_path})",
    }
    assert r["activation"]["mode"] == "auto"
    assert any("start-up hook" in w for w in r["activation"]["would_fire"])
    assert any("plugin" in w for w in r["activation"]["would_fire"])
    assert r["activation"]["pth"].endswith("profilemate_startup.pth")
    # The doctor imported vLLM but must not have profiled itself.
    assert not (tmp_path / "out").exists()


def test_doctor_human_output_and_unwritable(tmp_path):
    _write(tmp_path / "pkgs", FAKE_DOCTOR_VLLM)
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = _cli(
        "doctor", env={"PYTHONPATH": str(tmp_path / "pkgs"), "PROFILEMATE_DIR": str(blocker / "x")}
    )
    assert p.returncode == 1
    assert "ProfileMate doctor" in p.stdout and "vllm 0.32.0" in p.stdout
    assert "NOT WRITABLE" in p.stdout and "set PROFILEMATE_DIR" in p.stdout
    assert "[+] vllm.v1.core.sched.scheduler:Scheduler.schedule" in p.stdout
    assert "[!] vllm.v1.worker.gpu_worker:Worker.execute_model" in p.stdout
    assert "would fire: nothing" in p.stdout


def test_doctor_bad_config_is_reported(tmp_path):
    _write(tmp_path / "pkgs", FAKE_DOCTOR_VLLM)
    p = _cli(
        "doctor", "--json", env={"PYTHONPATH": str(tmp_path / "pkgs"), "PROFILEMATE_LOG": "loud"}
    )
    r = json.loads(p.stdout)
    assert any("PROFILEMATE_LOG='loud' is not valid" in prob for prob in r["problems"])


def test_doctor_reports_an_output_folder_profiling_would_refuse(tmp_path):
    _write(tmp_path / "pkgs", FAKE_DOCTOR_VLLM)
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "out"
    link.symlink_to(real)
    p = _cli(
        "doctor", "--json", env={"PYTHONPATH": str(tmp_path / "pkgs"), "PROFILEMATE_DIR": str(link)}
    )
    r = json.loads(p.stdout)
    assert r["output"]["writable"] is False
    assert "symbolic link" in r["output"]["detail"]
    assert any(f"refusing to write profiling output to {link}" in prob for prob in r["problems"])
