"""The report benchmark still runs (bench/bench_report.py --quick): it reports a synthetic session
and cat's the same files, and prints numbers. No timing threshold here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_report_quick_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_report.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["rows"] == 60_000 and res["bytes"] > 0
    assert res["cat_s"] > 0 and res["report_s"] > 0 and res["ratio_median"] > 0
