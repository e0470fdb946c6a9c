"""The end-to-end benchmark of record still runs (bench/bench_e2e_overhead.py --quick): real vLLM
offline with profiling switched on and off in one engine, and vLLM's OpenAI server loaded by vLLM's
own benchmark client, plain and under `profilemate run`. It asserts that every run happened and
produced numbers, and that "with" really profiled -- never a timing threshold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_e2e_quick_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_e2e_overhead.py"),
            "--quick",
            "--json",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["environment"]["vllm"]
    (offline,) = data["offline"]
    (s,) = offline["sets"]
    assert s["categories"] == "all" and s["targets_applied"] > 10
    (pair,) = s["pairs"]
    assert pair["without_tok_s"] > 0 and pair["with_tok_s"] > 0
    assert offline["rows_recorded"] > 0 and offline["rows_dropped"] == 0
    (spair,) = data["served"]["pairs"]
    for variant in ("without", "with"):
        assert spair[variant]["completed"] == 8, spair
        assert spair[variant]["output_throughput"] > 0
        assert spair[variant]["p99_ttft_ms"] > 0
    assert "batch_utilization.csv" in spair["with"]["profiled_tables"]
    assert "request_lifecycle.csv" in spair["with"]["profiled_tables"]
