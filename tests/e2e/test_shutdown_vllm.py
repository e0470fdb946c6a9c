"""Nothing is lost when the vLLM API server is stopped (docs/OUTPUTS.md, "At shutdown").

vLLM 0.32.0's API server stops its engine with a 0 s timeout: it sends SIGTERM to the EngineCore
and SIGKILLs its process tree right after, so without ProfileMate's shutdown probes the EngineCore
and worker never reach their own exit and their last rows and final `summary.json` are lost
(probes/categories/lifecycle.py has the sequence). The server is stopped the two usual ways:
Ctrl-C of the whole process group (a terminal) and SIGTERM to the API process alone (`kill`,
`docker stop`, systemd), each right after the last response, without waiting for a periodic flush.
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

NUM_REQUESTS, MAX_TOKENS = 4, 8
START_TIMEOUT_S, STOP_TIMEOUT_S = 600, 120
# ProfileMate's wait in the API process is bounded by lifecycle.FLUSH_WAIT_S (2 s) and recorded
# in the API process's lifecycle.csv; a normal stop needs far less.
MAX_ADDED_WAIT_MS = 1500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_json(url: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values()]


@pytest.fixture(scope="module", params=["ctrl-c", "sigterm-api"])
def stopped(request, tmp_path_factory, tiny_model_dir):
    """Serve under `profilemate run`, answer a few requests, stop at once after the last one."""
    how = request.param
    work = tmp_path_factory.mktemp(f"shutdown-{how}")
    out_dir = work / "profile"
    port = _free_port()
    model = str(tiny_model_dir["dense"])
    cmd = [
        sys.executable, "-m", "profilemate.cli", "run", "--dir", str(out_dir), "--",
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model, "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", "512",
        "--kv-cache-memory-bytes", str(64 << 20), "--seed", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    log_path = work / "server.log"
    completions: list[dict] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert proc.poll() is None, "server exited early:\n" + log_path.read_text()[-5000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "server did not come up in time"
                    time.sleep(1.0)
            for i in range(NUM_REQUESTS):
                completions.append(
                    _post_json(
                        f"http://127.0.0.1:{port}/v1/completions",
                        {
                            "model": model,
                            "prompt": f"a short story about lake {i}",
                            "max_tokens": MAX_TOKENS,
                            "temperature": 0.0,
                            "ignore_eos": True,
                        },
                    )  # fmt: skip
                )
        finally:
            # No sleep: the last steps ran a few milliseconds ago.
            t_signal = time.monotonic()
            if how == "ctrl-c":
                os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
            else:
                # `profilemate run` execs the server, so this is the API process itself.
                os.kill(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
                pytest.fail(f"server did not stop within {STOP_TIMEOUT_S} s of the signal")
            stop_s = time.monotonic() - t_signal
    sessions = sorted(p for p in out_dir.iterdir() if p.is_dir()) if out_dir.is_dir() else []
    return {
        "how": how,
        "rc": rc,
        "stop_s": stop_s,
        "log": log_path.read_text(),
        "completions": completions,
        "session": sessions[-1] if sessions else None,
    }


def _dirs(stopped) -> dict[str, Path]:
    session = stopped["session"]
    assert session is not None, stopped["log"][-5000:]
    dirs = {p.name.rsplit("-", 1)[0]: p for p in session.iterdir() if p.is_dir()}
    assert {"api", "enginecore", "worker-0"} <= set(dirs), sorted(dirs)
    return dirs


def test_every_process_has_its_final_summary(stopped):
    """Checked the moment the server's process has exited: nothing is written after that."""
    assert len(stopped["completions"]) == NUM_REQUESTS
    missing = {}
    for label, d in _dirs(stopped).items():
        path = d / "summary.json"
        if not path.is_file():
            missing[label] = "no summary.json"
            continue
        summary = json.loads(path.read_text())
        if summary.get("final") is not True:
            missing[label] = f"final={summary.get('final')!r}"
        status = d / "patch_status.json"
        assert status.is_file(), f"{label}: no patch_status.json"
    assert not missing, f"{stopped['how']}: {missing}\n{stopped['log'][-4000:]}"


def test_every_step_reached_disk(stopped):
    dirs = _dirs(stopped)
    ec = [r for r in _rows(dirs["enginecore"] / "cpu_operations_timing.csv")
          if r["operation"] == "schedule"]  # fmt: skip
    wk = [r for r in _rows(dirs["worker-0"] / "cpu_operations_timing.csv")
          if r["operation"] == "execute_model"]  # fmt: skip
    ec_steps = {int(r["step_id"]) for r in ec}
    wk_steps = {int(r["step_id"]) for r in wk}
    assert wk_steps, f"{stopped['how']}: the worker wrote no execute_model row"
    # Every step the worker ran was scheduled, and its schedule row is on disk...
    assert wk_steps <= ec_steps, (
        f"{stopped['how']}: missing schedule rows {sorted(wk_steps - ec_steps)}"
    )
    # ... and every token vLLM generated for the requests: the last request's steps included.
    ec_tokens = sum(int(r["num_tokens"]) for r in ec)
    wk_tokens = sum(int(r["num_tokens"]) for r in wk)
    prompt_tokens = sum(c["usage"]["prompt_tokens"] for c in stopped["completions"])
    expected = prompt_tokens + NUM_REQUESTS * (MAX_TOKENS - 1)
    assert ec_tokens == expected, (stopped["how"], ec_tokens, expected)
    assert wk_tokens == expected, (stopped["how"], wk_tokens, expected)
    # The summary counts the same rows as the file (written by the same final stop).
    summary = json.loads((dirs["enginecore"] / "summary.json").read_text())
    assert summary["tables"]["cpu_operations_timing"]["schedule"]["count"] == len(ec)


def test_server_stops_by_itself_and_the_wait_is_short(stopped):
    assert stopped["rc"] != -signal.SIGKILL, stopped["log"][-3000:]
    dirs = _dirs(stopped)
    api = _rows(dirs["api"] / "lifecycle.csv")
    waits = [r for r in api if r["operation"] == "flush_wait"]
    assert len(waits) == 1, (api, stopped["log"][-3000:])
    waited_ms = float(waits[0]["duration_ms"])
    print(f"\n{stopped['how']}: server stopped {stopped['stop_s']:.2f} s after the signal; "
          f"ProfileMate waited {waited_ms:.0f} ms for {waits[0]['processes']} process(es)")  # fmt: skip
    assert 0 <= waited_ms < MAX_ADDED_WAIT_MS
    # After a Ctrl-C the EngineCore and worker have often finished before the API gets there.
    assert int(waits[0]["processes"]) in (0, 1, 2) and int(waits[0]["unfinished"]) == 0
    # vLLM's own terminate-and-kill ran after the wait, once.
    assert [r["operation"] for r in api].count("stop_processes") == 1
    for label in ("enginecore", "worker-0"):
        rows = _rows(dirs[label] / "lifecycle.csv")
        assert [r["operation"] for r in rows] == ["final_flush"], (label, rows)
        assert float(rows[0]["timestamp_sec"]) <= float(waits[0]["timestamp_sec"]) + waited_ms / 1e3
