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
