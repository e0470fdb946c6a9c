"""scripts/setup.sh names the missing piece and what to do, and fails (non-zero) when it cannot set up.

Each case runs the real script against a fresh, empty venv location, so nothing is installed and the
developer's .venv is untouched.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full["PROFILEMATE_VENV"] = str(tmp_path / "venv")
    full.update(env)
    return subprocess.run(
        ["bash", str(SETUP)], env=full, capture_output=True, text=True, timeout=300
    )


def test_cpu_without_avx2_is_named(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("flags\t\t: fpu sse sse2 avx\n")
    proc = _run(tmp_path, PROFILEMATE_SETUP_CPUINFO=str(fake))
    assert proc.returncode != 0
    assert "lacks AVX2" in proc.stderr
    assert not (tmp_path / "venv").exists()  # stopped before installing anything


def test_not_enough_disk_is_named(tmp_path):
    proc = _run(tmp_path, PROFILEMATE_SETUP_MIN_FREE_GB="100000000")
    assert proc.returncode != 0
    assert "GiB free" in proc.stderr and "PROFILEMATE_VENV" in proc.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.timeout(300)
def test_unreachable_package_index_is_named(tmp_path):
    # Point pip at a closed loopback port and away from every local wheel folder.
    proc = _run(
        tmp_path,
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_EXTRA_INDEX_URL="",
        PIP_FIND_LINKS="",
        PIP_NO_CACHE_DIR="1",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
        PIP_CONFIG_FILE=os.devnull,
    )
    assert proc.returncode != 0
    assert "package index could not be reached" in proc.stderr, proc.stderr[-3000:]


TEST_SH = ROOT / "scripts" / "test.sh"


def _run_test_sh(tmp_path: Path, pyenv: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        PYENV_ROOT=str(pyenv),
        PATH="/usr/bin:/bin",  # no pyenv shims: only what PYENV_ROOT holds
        PROFILEMATE_VENV=str(tmp_path / "venv"),
        PROFILEMATE_SETUP_MIN_FREE_GB="100000000",  # if setup is reached, it stops at once
    )
    return subprocess.run(
        ["bash", str(TEST_SH)], env=env, capture_output=True, text=True, timeout=120
    )


def test_test_script_fails_naming_a_missing_interpreter(tmp_path):
    pyenv = tmp_path / "pyenv"
    (pyenv / "versions").mkdir(parents=True)
    proc = _run_test_sh(tmp_path, pyenv)
    assert proc.returncode != 0
    for v in ("3.10", "3.12", "3.13"):
        assert f"python{v} not found" in proc.stderr, proc.stderr
        assert f"pyenv install {v}" in proc.stderr
    assert "skipped" not in proc.stdout + proc.stderr
    assert "[setup]" not in proc.stderr  # failed first, before the long stages
    assert not (tmp_path / "venv").exists()


def test_test_script_finds_pyenv_interpreters(tmp_path):
    pyenv = tmp_path / "pyenv"
    for v in ("3.10.1", "3.12.0", "3.13.2"):
        (pyenv / "versions" / v / "bin").mkdir(parents=True)
        (pyenv / "versions" / v / "bin" / "python").symlink_to("/bin/true")
    proc = _run_test_sh(tmp_path, pyenv)
    assert "not found" not in proc.stderr
    assert "GiB free" in proc.stderr  # went on to the setup (stopped there by the disk guard)
