"""Fixtures for end-to-end tests on real vLLM (the CPU build) and tiny locally generated models.

A vLLM run costs ~50 s here (three processes each import torch + vLLM), so runs are cached for the
whole pytest session: tests that need the same workload share one run via `vllm_run(...)`.
Every run is a subprocess — vLLM's CPU platform spawns its EngineCore and worker processes, and
ProfileMate must be tested the way users start it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RUN_TIMEOUT_S = 900


@dataclass
class VllmRun:
    """One finished workload: what vLLM reported, and (if profiled) the session folder."""

    args: tuple[str, ...]
    profiled: bool
    returncode: int
    log: str
    result: dict = field(default_factory=dict)
    session_dir: Path | None = None

    @property
    def metrics(self) -> dict:
        return self.result.get("metrics", {})

    @property
    def requests(self) -> list[dict]:
        return self.result.get("requests", [])

    def process_dirs(self, prefix: str = "") -> list[Path]:
        assert self.session_dir is not None, "this run was not profiled"
        return sorted(
            p for p in self.session_dir.iterdir() if p.is_dir() and p.name.startswith(prefix)
        )


def _profilemate_cli() -> list[str]:
    return [sys.executable, "-m", "profilemate.cli"]


def run_workload(
    workdir: Path,
    *workload_args: str,
    profile: bool = False,
    profilemate_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> VllmRun:
    """Run `python -m profilemate.demo.workload ARGS` (under `profilemate run` if profile=True)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_json = workdir / "workload.json"
    cmd = [
        sys.executable,
        "-m",
        "profilemate.demo.workload",
        *workload_args,
        "--out-json",
        str(out_json),
    ]
    out_dir = workdir / "profile"
    if profile:
        cmd = [*_profilemate_cli(), "run", "--dir", str(out_dir), *profilemate_args, "--", *cmd]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    full_env.update(env or {})
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    (workdir / "run.log").write_text(proc.stdout)
    run = VllmRun(tuple(workload_args), profile, proc.returncode, proc.stdout)
    if out_json.is_file():
        run.result = json.loads(out_json.read_text())
    if profile and out_dir.is_dir():
        sessions = sorted(p for p in out_dir.iterdir() if p.is_dir())
        run.session_dir = sessions[-1] if sessions else None
    return run


@pytest.fixture(scope="session")
def tiny_model_dir() -> dict[str, Path]:
    """Paths of the generated tiny models: 'dense' (Llama-style) and 'moe' (Qwen2-MoE, 8 experts, top-2)."""
    from profilemate.demo.models import MODELS, ensure_model

    return {name: ensure_model(name) for name in MODELS}


@pytest.fixture(scope="session")
def vllm_run(tmp_path_factory, tiny_model_dir):
    """vllm_run(*workload_args, profile=False, profilemate_args=(), env=None) -> VllmRun, cached per session."""
    cache: dict[tuple, VllmRun] = {}

    def get(*workload_args: str, profile: bool = False, profilemate_args=(), env=None) -> VllmRun:
        key = (workload_args, profile, tuple(profilemate_args), tuple(sorted((env or {}).items())))
        if key not in cache:
            wd = tmp_path_factory.mktemp("vllm-run")
            cache[key] = run_workload(
                wd,
                *workload_args,
                profile=profile,
                profilemate_args=tuple(profilemate_args),
                env=env,
            )
        run = cache[key]
        assert run.returncode == 0, f"workload failed (exit {run.returncode}):\n{run.log[-6000:]}"
        return run

    return get
