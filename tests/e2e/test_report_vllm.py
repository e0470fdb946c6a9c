"""`profilemate report` on real profiled vLLM runs (CPU build): its totals equal the per-process CSV
files and vLLM's own counters (steps, generated tokens, preemptions in the forced-preemption run),
and its slow-request table names the requests that really were preempted.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from . import headless
from .workloads import DENSE, MOE, PREEMPT

pytestmark = pytest.mark.vllm

NUM_PROMPTS, PREEMPT_MAX_TOKENS = 32, 200


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _report(session: Path, out: Path) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run(
        [sys.executable, "-m", "profilemate.cli", "report", "--out", str(out), str(session)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "summary.json").read_text()), proc


def _one(entries: list[dict], process: str) -> dict:
    found = [e for e in entries if e["process"] == process]
    assert len(found) == 1, (process, entries)
    return found[0]


def _check_common(run, summary: dict, out: Path) -> tuple[Path, dict]:
    """What holds for every run: rows per table, steps, tokens, requests, the merged trace;
    returns the EngineCore's folder and its generation entry."""
    assert summary["warnings"] == []
    # trace.json: strict JSON with every event line of every process's trace, each process named
    trace = json.loads((out / "trace.json").read_text())
    dirs = [d for d in run.session_dir.iterdir() if d.is_dir() and d.name != "report"]
    lines = [
        line.rstrip(",")
        for d in dirs
        for line in (d / "trace.json").read_text().splitlines()
        if line.startswith("{")
    ]
    assert len(trace) == len(lines) == summary["trace"]["events"] > 0
    assert summary["trace"]["processes"] == len(dirs)
    names = {e["args"]["name"] for e in trace if e.get("name") == "process_name"}
    assert names == {d.name for d in dirs}
    ecs = run.process_dirs("enginecore-")
    assert len(ecs) == 1
    ec = ecs[0]
    # every CSV file of every process, row for row
    by_name = {p["process"]: p for p in summary["processes"]}
    assert set(by_name) == {d.name for d in run.session_dir.iterdir() if d.is_dir()}
    for d in run.session_dir.iterdir():
        if d.is_dir():
            want = {f.stem: len(_csv(f)) for f in d.glob("*.csv")}
            assert by_name[d.name]["tables"] == want, d.name
    assert summary["rows_read"] == sum(sum(p["tables"].values()) for p in summary["processes"])
    # every process ended normally and lost nothing (its own summary.json)
    assert all(p["final"] is True for p in summary["processes"])
    assert all(p["dropped"] == p["lost"] == 0 for p in summary["processes"])

    batch = _csv(ec / "batch_utilization.csv")
    steps = _one(summary["steps"], ec.name)
    assert steps["events"] == steps["steps"] == len(batch) == int(batch[-1]["step_id"])
    assert steps["last_step_id"] == int(batch[-1]["step_id"])
    assert steps["working_steps"] == sum(1 for r in batch if int(r["scheduled_tokens"]) > 0)
    assert steps["scheduled_tokens"] == sum(int(r["scheduled_tokens"]) for r in batch)
    # vLLM counts an iteration for every step that scheduled tokens
    assert steps["working_steps"] == run.metrics["vllm:iteration_tokens_total:count"]
    sched = [r for r in _csv(ec / "cpu_operations_timing.csv") if r["operation"] == "schedule"]
    assert (
        _one([e for e in summary["cpu_ops"] if e["operation"] == "schedule"], ec.name)["events"]
        == len(sched)
        == len(batch)
    )

    # generated tokens: the EngineCore's rows, vLLM's counter and what generate() returned
    lifecycle = _csv(ec / "request_lifecycle.csv")
    gen = _one(summary["generation"], ec.name)
    generated = sum(len(r["output_token_ids"]) for r in run.requests)
    assert gen["requests"] == len(lifecycle) == len(run.requests) == NUM_PROMPTS
    assert gen["generated_tokens"] == sum(int(r["output_tokens"]) for r in lifecycle) == generated
    assert gen["generated_tokens"] == run.metrics["vllm:generation_tokens"]
    assert gen["prompt_tokens"] == sum(r["prompt_tokens"] for r in run.requests)

    # serving forwards of the worker: one per step that scheduled tokens
    (worker,) = run.process_dirs("worker-")
    fwd = [r for r in _csv(worker / "forward_pass_timing.csv") if r["run"] == "serve"]
    phases = Counter(r["phase"] for r in fwd)
    ft = [e for e in summary["forward_time"] if e["process"] == worker.name]
    assert {e["phase"]: e["events"] for e in ft} == dict(phases)
    assert sum(phases.values()) == steps["working_steps"]
    for e in ft:
        assert e["host_p50_ms"] <= e["host_p95_ms"] <= e["host_p99_ms"] <= e["host_max_ms"]
        assert e["gpu_events"] == 0 and e["gpu_p50_ms"] is None  # no device on the CPU build
    graphs = _one(summary["cuda_graphs"], worker.name)
    timeline = [r for r in _csv(worker / "cuda_graph_timeline.csv") if r["step_id"]]
    assert graphs["forwards"] == len(timeline) == len(fwd)
    assert graphs["graph_forwards"] == sum(1 for r in timeline if r["graph_action"] == "replay")
    assert graphs["eager_reasons"] == dict(
        Counter(r["eager_reason"] for r in timeline if r["graph_action"] == "eager")
    )

    kv = _one(summary["kv_cache"], ec.name)
    usage = _csv(ec / "kv_cache_usage.csv")
    assert kv["events"] == len(usage)
    assert kv["peak_usage_pct"] == max(float(r["usage_pct"]) for r in usage)
    return ec, gen


def test_report_of_the_forced_preemption_run(vllm_run, tmp_path):
    run = vllm_run(*PREEMPT, profile=True)
    summary, proc = _report(run.session_dir, tmp_path / "report")
    ec, _ = _check_common(run, summary, tmp_path / "report")
    assert _one(summary["generation"], ec.name)["generated_tokens"] == (
        NUM_PROMPTS * PREEMPT_MAX_TOKENS
    )

    events = _csv(ec / "preemption_events.csv")
    pre = Counter(r["request_id"] for r in events if r["event"] == "preempted")
    recomputed = Counter()
    for r in events:
        if r["event"] == "resumed":
            recomputed[r["request_id"]] += int(r["recomputed_tokens"])
    p = _one(summary["preemptions"], ec.name)
    assert p["preempted"] == sum(pre.values()) == run.metrics["vllm:num_preemptions"] > 0
    assert p["resumed"] == p["preempted"]
    assert p["requests_hit"] == len(pre)
    assert p["recomputed_tokens"] == sum(recomputed.values())
    assert p["hardest_hit"]
    for h in p["hardest_hit"]:
        assert h["preemptions"] == pre[h["request_id"]]
        assert h["recomputed_tokens"] == recomputed[h["request_id"]]
    # the batch table sees the same preemptions
    b = _one(summary["batch"], ec.name)
    assert b["preempted_reqs"] == p["preempted"]
    assert b["limits"]["kv_cache"] > 0

    # the slow-request tables name the requests that really were preempted, with their counts
    lifecycle = {r["request_id"]: r for r in _csv(ec / "request_lifecycle.csv")}
    for key in ("by_e2e", "by_ttft"):
        slow = summary["slow_requests"][key]
        assert len(slow) == 10
        for s in slow:
            row = lifecycle[s["request_id"]]
            assert s["preemptions"] == pre[s["request_id"]] == int(row["num_preemptions"])
            assert s["recomputed_tokens"] == recomputed[s["request_id"]]
            assert (s["preempted_s"] > 0) == (s["request_id"] in pre)
            assert s["e2e_s"] == pytest.approx(float(row["finish_s"]) - float(row["arrival_s"]))
            split = s["queued_s"] + s["prefill_s"] + s["decode_s"]
            assert split == pytest.approx(s["e2e_s"])
            assert s["eager_step_pct"] == 100  # enforce_eager: every step ran eager
    slowest = sorted(lifecycle.values(), key=lambda r: float(r["arrival_s"]) - float(r["finish_s"]))
    assert [s["request_id"] for s in summary["slow_requests"]["by_e2e"]] == [
        r["request_id"] for r in slowest[:10]
    ]
    assert any(s["request_id"] in pre for s in summary["slow_requests"]["by_e2e"])

    # summary.txt is printed; the text names the preemptions and where the HTML is
    text = (tmp_path / "report" / "summary.txt").read_text()
    assert text in proc.stdout
    assert f"{p['preempted']} preemptions of {len(pre)} requests" in text
    assert "report.html" in proc.stdout


def test_report_of_the_dense_run_and_its_html_is_self_contained(vllm_run, tmp_path):
    run = vllm_run(*DENSE, profile=True)
    summary, _ = _report(run.session_dir, tmp_path / "report")
    ec, _ = _check_common(run, summary, tmp_path / "report")
    assert _one(summary["preemptions"], ec.name)["preempted"] == 0
    html = (tmp_path / "report" / "report.html").read_text()
    # nothing to fetch: no script, no link, no remote URL (the SVG namespace is a name, not a fetch)
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"\b(src|href)\s*=", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    # the charts have data: KV usage and batch utilization lines, forward-time bars, slow requests
    points = [int(n) for n in re.findall(r'class="series" data-points="(\d+)"', html)]
    assert len(points) == 3 and all(n > 0 for n in points)
    assert html.count('<rect class="bar"') > 0
    tables = dict(re.findall(r'<table class="slow" id="slow-(\w+)">(.*?)</table>', html, re.S))
    assert sorted(tables) == ["e2e", "ttft"]
    assert all(t.count("<tr>") == 11 for t in tables.values())  # a header and 10 requests
    for s in summary["slow_requests"]["by_e2e"]:
        assert f"<td>{s['request_id']}</td>" in tables["e2e"]


def test_report_html_of_a_real_run_in_headless_chromium(vllm_run, tmp_path):
    """report.html of the profiled dense run in real headless Chromium: no network request of any
    kind (DevTools and a proxy both watch), no console message, and every chart drew its data."""
    run = vllm_run(*DENSE, profile=True)
    _report(run.session_dir, tmp_path / "report")
    html = tmp_path / "report" / "report.html"
    visit = headless.visit(html)
    assert headless.problems(visit, chart_ids=("kv-", "batch-", "fwd-")) == []
    # what drew is what the HTML declares: 3 data series (KV usage, running requests, scheduled
    # tokens) and every forward-time bar, each with a rendered area
    charts = [c for c in visit.charts if c["cls"] == "chart"]
    lines = [line for c in charts for line in c["lines"]]
    declared = [int(n) for n in re.findall(r'class="series" data-points="(\d+)"', html.read_text())]
    assert [line["points"] for line in lines] == declared and len(declared) == 3
    bars = [b for c in charts for b in c["bars"]]
    assert len(bars) == html.read_text().count('<rect class="bar"') > 0
    assert all(b["width"] > 0 for b in bars) and any(b["height"] > 0 for b in bars)


def test_report_of_the_moe_run_per_layer_and_its_heat_map_in_chromium(vllm_run, tmp_path):
    """The MoE run: per layer, the report's routed tokens and hottest experts are the sums of
    moe_expert_activations.csv, its worst interval is moe_load_imbalance.csv's, and the expert x
    layer heat map draws one cell per (layer, expert) that got tokens, in real headless Chromium."""
    run = vllm_run(*MOE, profile=True)
    summary, _ = _report(run.session_dir, tmp_path / "report")
    assert summary["warnings"] == []
    (worker,) = run.process_dirs("worker-")
    acts = _csv(worker / "moe_expert_activations.csv")
    imb = _csv(worker / "moe_load_imbalance.csv")
    totals: dict[int, Counter] = {}
    for r in acts:
        totals.setdefault(int(r["layer_idx"]), Counter())[int(r["expert_id"])] += int(
            r["activation_count"]
        )
    entries = {e["layer"]: e for e in summary["moe"] if e["process"] == worker.name}
    assert set(entries) == set(totals) and len(totals) > 0
    for layer, by_expert in totals.items():
        e = entries[layer]
        rows = [r for r in imb if int(r["layer_idx"]) == layer]
        assert e["events"] == e["intervals"] == len(rows)
        assert e["routed_tokens"] == sum(by_expert.values())
        assert e["max_mean_ratio_worst"] == max(float(r["max_mean_ratio"]) for r in rows)
        top = sorted(by_expert.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert [(h["expert_id"], h["tokens"]) for h in e["hottest"]] == top
        busiest = max(n for x, n in by_expert.items() if x >= 0)
        in_range = sum(n for x, n in by_expert.items() if x >= 0)
        assert e["run_max_mean_ratio"] == pytest.approx(busiest / (in_range / e["experts"]))

    html = tmp_path / "report" / "report.html"
    cells = re.findall(
        r'<rect class="cell" data-layer="(\d+)" data-expert="(\d+)" data-tokens="(\d+)"',
        html.read_text(),
    )
    assert sorted((int(a), int(b), int(c)) for a, b, c in cells) == sorted(
        (layer, x, n) for layer, c in totals.items() for x, n in c.items() if x >= 0
    )
    visit = headless.visit(html)
    assert headless.problems(visit, chart_ids=("kv-", "batch-", "fwd-", "moe-")) == []
    (heat,) = [c for c in visit.charts if c["id"].startswith("moe-")]
    assert len(heat["cells"]) == len(cells)
