"""The scheduler benchmark still runs (bench/bench_scheduler.py --quick): it drives vLLM's real
Scheduler with and without the engine probes and prints numbers. No timing threshold here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scheduler_quick_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_scheduler.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    (res,) = data["results"]
    assert res["batch"] == 8 and res["targets_applied"] >= 1
    assert res["us_per_step_without"] > 0 and res["us_per_step_with"] > 0
    assert res["running"] == 8  # the batch really was in steady decode
    assert data["recorded"] > 0  # the probes recorded rows while "with" ran
    assert "all engine probes" in proc.stdout
