"""scripts/check_layering.py: the real tree passes; a tiny fake tree with one wrong-way include or
one forbidden import fails, naming the file, the line and the rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layering.py"

# A minimal tree that follows every rule.
GOOD = {
    "cpp/include/profilemate/event.hpp": "#pragma once\n#include <cstdint>\n",
    "cpp/include/profilemate/internal/ring.hpp": '#include "profilemate/event.hpp"\n',
    "cpp/include/profilemate/engine.hpp": '#include "profilemate/internal/ring.hpp"\n',
    "cpp/core/format.hpp": '#include "profilemate/event.hpp"\n',
    "cpp/sinks/csv_sink.cpp": '#include "core/format.hpp"\n#include "sinks/csv_sink.hpp"\n',
    "cpp/collector/pipeline.cpp": '#include "sinks/csv_sink.hpp"\n#include "core/format.hpp"\n',
    "cpp/pyext/timed.cpp": '#include "pyext/pyext.hpp"\n#include "profilemate/engine.hpp"\n',
    "cpp/bindings/module.cpp": '#include "pyext/pyext.hpp"\n',
    "src/profilemate/__init__.py": "",
    "src/profilemate/hooks/__init__.py": "from profilemate.hooks.watchdog import get\n",
    "src/profilemate/hooks/watchdog.py": "import _thread\nimport sys\nfrom . import other\n",
    "src/profilemate/probes/cpu_ops.py": "import vllm\n",
    "src/profilemate/doctor.py": "def f():\n    import vllm\n",
}


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60
    )


def make_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_real_repository_passes():
    res = run(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == ""


def test_fake_tree_without_violations_passes(tmp_path):
    make_tree(tmp_path, GOOD)
    res = run(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        # A sink reaching up into the collector.
        (
            "cpp/sinks/csv_sink.cpp",
            '#include "core/format.hpp"\n#include "collector/pipeline.hpp"\n',
            'cpp/sinks/csv_sink.cpp:2: sinks may not include "collector/pipeline.hpp"',
        ),
        # The core including a sink.
        (
            "cpp/core/pipeline.hpp",
            '#include "sinks/csv_sink.hpp"\n',
            'cpp/core/pipeline.hpp:1: core may not include "sinks/csv_sink.hpp"',
        ),
        # The Python-facing layer reaching into the ring internals.
        (
            "cpp/pyext/timed.cpp",
            '#include "profilemate/internal/ring.hpp"\n',
            'cpp/pyext/timed.cpp:1: pyext may not include "profilemate/internal/ring.hpp"',
        ),
        # A public header including an internal layer.
        (
            "cpp/include/profilemate/engine.hpp",
            '#include "collector/state.hpp"\n',
            'cpp/include/profilemate/engine.hpp:1: public may not include "collector/state.hpp"',
        ),
        # The host application named in the core.
        (
            "cpp/core/format.hpp",
            "#pragma once\n// used by vLLM's scheduler\n",
            "cpp/core/format.hpp:2: cpp/ must not mention vLLM",
        ),
        # A folder outside the layer table.
        ("cpp/misc/util.cpp", "int x;\n", "cpp/misc/util.cpp:1: file in no layer"),
        # The report (reads files back) reaching into the engine.
        (
            "cpp/report/load.cpp",
            '#include "collector/pipeline.hpp"\n',
            'cpp/report/load.cpp:1: report may not include "collector/pipeline.hpp"',
        ),
        # hooks/ importing outside the standard library.
        (
            "src/profilemate/hooks/watchdog.py",
            "import sys\n\nimport numpy\n",
            "src/profilemate/hooks/watchdog.py:3: hooks/ may import only the standard library",
        ),
        (
            "src/profilemate/hooks/watchdog.py",
            "from .. import config\n",
            "src/profilemate/hooks/watchdog.py:1: hooks/ may import only the standard library",
        ),
        # vllm imported outside probes/, doctor.py and demo/ (also inside a function).
        (
            "src/profilemate/activation/runtime.py",
            "def f():\n    from vllm.config import X\n",
            "src/profilemate/activation/runtime.py:2: only probes/, doctor.py and demo/ may import",
        ),
    ],
)
def test_one_violation_fails_naming_it(tmp_path, rel, text, expected):
    make_tree(tmp_path, {**GOOD, rel: text})
    res = run(tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout
    assert lines[0].startswith(expected), res.stdout
