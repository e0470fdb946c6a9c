"""The quick start's main job: profile a short vLLM workload on a tiny local model, print the result.

    python -m profilemate.demo [--model dense|moe] [--dir OUT] [workload options ...]

Runs ``profilemate run --dir OUT -- python -m profilemate.demo.workload ...`` (so the API,
EngineCore and worker processes are all profiled exactly as a user's would be), then runs
``profilemate report`` on the session: prints its summary.txt and says where report.html is.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KILLED = "a process killed while writing it?"


def _csv_rows(path: Path) -> tuple[list[dict], str | None]:
    """The complete rows of a CSV file, and a warning when the file is empty, torn or unreadable."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return [], f"cannot read {path} ({e.strerror or e}); skipped"
    if not data:
        return [], f"{path} is empty ({KILLED}); skipped"
    try:
        text = data.decode("utf-8")
        if "\0" in text:
            raise ValueError("NUL bytes")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (ValueError, csv.Error) as e:
        return [], f"{path} is not a readable CSV file ({e}; {KILLED}); skipped"
    # A killed process may leave a torn last line: csv yields a short row, dropped here.
    complete = [r for r in rows if None not in r.values() and None not in r]
    torn = len(rows) - len(complete)
    warning = None
    if torn:
        warning = f"{path}: {torn} incomplete row(s) dropped ({KILLED})"
    return complete, warning


def _patch_status(path: Path) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data, None
    except (OSError, ValueError) as e:
        reason = "empty" if path.exists() and path.stat().st_size == 0 else str(e)
        return None, f"{path} is unreadable ({reason}; {KILLED}); skipped"


def summarize_session(session: Path, out=sys.stdout, err=None) -> None:
    """A plain-text view of one session folder (the C++ `profilemate report` supersedes it).

    An empty, torn or unreadable file (left by a killed process) gets one warning on ``err``,
    naming it; everything else is still read."""

    def warn(message: str | None) -> None:
        if message:
            print(f"warning: {message}", file=err or sys.stderr)

    print(f"\nProfileMate session: {session}", file=out)
    for proc in sorted(p for p in session.iterdir() if p.is_dir()):
        files = sorted(proc.iterdir())
        print(f"  {proc.name}/", file=out)
        status = proc / "patch_status.json"
        if status.is_file():
            data, problem = _patch_status(status)
            warn(problem)
            if data is not None:
                by_state: dict[str, int] = {}
                for t in data.get("targets", []):
                    state = t.get("state", "?") if isinstance(t, dict) else "?"
                    by_state[state] = by_state.get(state, 0) + 1
                print(f"    probes: {by_state}", file=out)
        for f in files:
            if f.suffix != ".csv":
                continue
            rows, problem = _csv_rows(f)
            warn(problem)
            line = f"    {f.name}: {len(rows)} rows"
            if rows and "operation" in rows[0] and "duration_ms" in rows[0]:
                ops: dict[str, list[float]] = {}
                for r in rows:
                    try:
                        ops.setdefault(r["operation"], []).append(float(r["duration_ms"]))
                    except ValueError:
                        continue
                parts = []
                for op, ds in sorted(ops.items()):
                    ds.sort()
                    parts.append(f"{op} n={len(ds)} median={ds[len(ds) // 2]:.3f} ms")
                line += " (" + "; ".join(parts) + ")"
            print(line, file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="output folder (default: a new temporary folder)")
    args, workload_args = ap.parse_known_args(argv)
    out_dir = Path(args.dir or tempfile.mkdtemp(prefix="profilemate-demo-"))
    result_json = out_dir / "workload.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    if "--model" not in workload_args:
        workload_args = ["--model", "dense", *workload_args]
    cmd = [
        sys.executable, "-m", "profilemate.cli", "run", "--dir", str(out_dir), "--",
        sys.executable, "-m", "profilemate.demo.workload", *workload_args,
        "--out-json", str(result_json),
    ]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep the demo's output readable
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        print(f"the profiled workload failed with exit status {rc}", file=sys.stderr)
        return rc
    sessions = sorted(p for p in out_dir.iterdir() if p.is_dir())
    if not sessions:
        print(f"no session folder was written under {out_dir}", file=sys.stderr)
        return 1
    session = sessions[-1]
    from profilemate.cli import main as cli_main

    print(f"\n$ profilemate report {session}", flush=True)
    rc = cli_main(["report", str(session)])
    if rc != 0:  # the report could read nothing: show what is in the folder
        summarize_session(session)
    return rc


if __name__ == "__main__":
    sys.exit(main())
