"""The worker-probe benchmark still runs (bench/bench_worker_probes.py --quick): the real wrappers
of forward_timing / cuda_graphs / encoder_timing around vLLM's real runner methods, with and
without, and numbers come out. No timing threshold here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_worker_probes_quick_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_worker_probes.py"),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [(r["batch"], r["scenario"]) for r in data["results"]] == [(1, "eager"), (1, "graph")]
    for r in data["results"]:
        assert r["targets_applied"] >= 5
        assert r["us_per_step_without"] > 0 and r["us_per_step_with"] > 0
    # The probes really recorded while "with" ran: a forward row and a timeline row per step, and
    # a usage row per replayed step in the graph scenario.
    rows = data["csv_rows"]
    assert rows["forward_pass_timing"] == rows["cuda_graph_timeline"] > 0
    assert rows["cuda_graph_usage"] == rows["cuda_graph_timeline"] // 2
