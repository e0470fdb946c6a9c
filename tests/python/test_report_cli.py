"""`profilemate report` (the CLI over the C++ report, _core.report): exit status, warnings, files.

The numbers are checked by the C++ tests (tests/cpp/test_report.cpp) on fixture tables and by
tests/e2e/test_report_vllm.py on real vLLM runs; this covers the command itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BATCH = (
    "timestamp_sec,step_id,running_reqs,max_num_seqs,scheduled_reqs,scheduled_tokens,token_budget,"
    "batch_kind,preempted_reqs,limit\n"
    "1.0,1,2,4,2,20,100,prefill,0,nothing_waiting\n"
    "2.0,2,2,4,2,2,100,decode,0,nothing_waiting\n"
)


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "profilemate.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_session_is_reported_and_its_summary_printed(tmp_path: Path):
    ec = tmp_path / "sess" / "enginecore-7"
    ec.mkdir(parents=True)
    (ec / "batch_utilization.csv").write_text(BATCH)
    (ec / "kv_cache_usage.csv").write_text("")  # a killed process's empty file
    res = _report(str(tmp_path / "sess"))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "sess" / "report"
    text = (out / "summary.txt").read_text()
    assert text in res.stdout
    assert "enginecore-7: 2 steps (2 scheduled work) in 1.000 s = 2.0 steps/s" in text
    assert f"{out}/report.html" in res.stdout
    assert res.stderr.count("warning: ") == 1
    assert f"warning: {ec}/kv_cache_usage.csv: empty" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"][0]["steps"] == 2
    assert summary["kv_cache"] == []  # an absent (unreadable) table is left out
    assert len(summary["warnings"]) == 1


def test_nothing_readable_is_exit_status_1(tmp_path: Path):
    (tmp_path / "x").mkdir()
    res = _report(str(tmp_path / "x"), str(tmp_path / "absent"))
    assert res.returncode == 1
    assert "not a session folder" in res.stderr and "not a folder" in res.stderr
    assert "nothing readable" in res.stderr


def test_an_output_folder_that_cannot_be_written_is_exit_status_1(tmp_path: Path):
    ec = tmp_path / "sess" / "enginecore-7"
    ec.mkdir(parents=True)
    (ec / "batch_utilization.csv").write_text(BATCH)
    (tmp_path / "file").write_text("x")
    res = _report("--out", str(tmp_path / "file" / "r"), str(tmp_path / "sess"))
    assert res.returncode == 1
    assert "profilemate report: " in res.stderr and "cannot create" in res.stderr
