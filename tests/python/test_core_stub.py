"""The type stub of profilemate._core: generated at build time, committed as a reference, checked.

The build (CMakeLists.txt, PROFILEMATE_CHECK_STUB=ON in scripts/setup.sh) compares the stub that
nanobind's stubgen writes from the built module with src/profilemate/_core.pyi, using
cmake/CheckCoreStub.cmake; these tests exercise that script and what the wheel ships.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import profilemate

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "src" / "profilemate" / "_core.pyi"
CHECK = ROOT / "cmake" / "CheckCoreStub.cmake"


def _cmake() -> str:
    here = Path(sys.executable).with_name("cmake")
    found = str(here) if here.exists() else shutil.which("cmake")
    if not found:
        pytest.skip("cmake not found")
    return found


def _words(text: str) -> str:
    return " ".join(text.split())  # CMake wraps its messages


def _check(generated: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _cmake(),
            f"-DGENERATED={generated}",
            f"-DREFERENCE={COMMITTED}",
            f"-DPYTHON={sys.executable}",
            "-P",
            str(CHECK),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_committed_stub_is_python_and_names_the_api():
    tree = ast.parse(COMMITTED.read_text(encoding="utf-8"))
    defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"start", "stop", "record_span", "timed", "stats"} <= defs
    consts = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert {"RING_CAPACITY_DEFAULT", "FLUSH_INTERVAL_MS_MAX", "TRACE_DEFAULT"} <= consts


def test_check_passes_when_identical(tmp_path):
    same = tmp_path / "_core.pyi"
    same.write_bytes(COMMITTED.read_bytes())
    proc = _check(same)
    assert proc.returncode == 0, proc.stderr


def test_check_fails_on_drift_and_names_the_refresh_command(tmp_path):
    drifted = tmp_path / "_core.pyi"
    # As if a binding had been added to module.cpp without refreshing the reference.
    drifted.write_text(COMMITTED.read_text(encoding="utf-8") + "\ndef brand_new() -> None: ...\n")
    proc = _check(drifted)
    assert proc.returncode != 0
    err = _words(proc.stderr)
    assert "differs from" in err and "bash scripts/update-core-stub.sh" in err
    assert "+def brand_new() -> None: ..." in proc.stdout  # the diff shows what drifted


def test_check_fails_without_reference(tmp_path):
    proc = subprocess.run(
        [
            _cmake(),
            f"-DGENERATED={COMMITTED}",
            f"-DREFERENCE={tmp_path / 'nope.pyi'}",
            "-P",
            str(CHECK),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "does not exist" in _words(proc.stderr)


def test_package_ships_stub_and_py_typed():
    pkg = Path(profilemate.__file__).resolve().parent
    assert (pkg / "py.typed").is_file()
    shipped = pkg / "_core.pyi"
    assert shipped.is_file()
    # Installed: the stub generated from the built module, which must equal the committed one.
    assert shipped.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8"), (
        "the installed _core.pyi differs from src/profilemate/_core.pyi: "
        "run bash scripts/update-core-stub.sh"
    )


def test_update_script_is_executable():
    script = ROOT / "scripts" / "update-core-stub.sh"
    assert os.access(script, os.X_OK)
    assert "update_core_stub" in script.read_text()
