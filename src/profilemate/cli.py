"""``profilemate run | doctor | report``: the launcher, the diagnostics and the report.

``profilemate run [options] -- command ...`` puts the bootstrap folder first on PYTHONPATH, passes the
options as PROFILEMATE_* variables and ``exec``s the command, so the command and every Python child it
starts (vLLM's EngineCore and workers, spawned or forked) are profiled into one session.
``profilemate report SESSION [SESSION ...]`` reads the session folders back (the C++ core does the
work) and writes ``<session>/report/``: summary.txt (printed), summary.json, report.html and
trace.json (every process's timeline in one file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from profilemate import config
from profilemate._version import __version__

RAY_PREFIXES = "VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY"


def bootstrap_dir() -> str:
    return str(Path(__file__).resolve().parent / "activation" / "bootstrap")


def _append_csv(existing: str | None, item: str) -> str:
    parts = [p.strip() for p in (existing or "").split(",") if p.strip()]
    if item not in parts:
        parts.append(item)
    return ",".join(parts)


def launch_env(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment ``run`` execs the command with (pure: tested without exec)."""
    env = dict(environ)
    # A fresh run is a fresh session, even when launched from inside a profiled process.
    env.pop(config.ENV_SESSION_DIR, None)
    env.pop(config.ENV_SESSION_START_NS, None)
    env["PROFILEMATE"] = "force" if args.force else "1"
    env[config.ENV_ACTIVATION] = "run"
    if args.dir is not None:
        env["PROFILEMATE_DIR"] = str(Path(args.dir).expanduser().absolute())
    if args.log is not None:
        env["PROFILEMATE_LOG"] = args.log
    if args.probes is not None:
        env["PROFILEMATE_PROBES"] = args.probes
    if args.fault_inject:
        env["PROFILEMATE_FAULT_INJECT"] = "1"
    if args.no_trace:
        env["PROFILEMATE_TRACE"] = "0"
    if args.ring_capacity is not None:
        env["PROFILEMATE_RING_CAPACITY"] = str(args.ring_capacity)
    if args.flush_ms is not None:
        env["PROFILEMATE_FLUSH_MS"] = str(args.flush_ms)
    boot = bootstrap_dir()
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != boot]
    env["PYTHONPATH"] = os.pathsep.join([boot, *rest])
    # Ray workers get only the variables vLLM copies (vllm/ray/ray_env.py, vLLM 0.32.0): add our
    # prefix to the user's list instead of replacing it.
    env[RAY_PREFIXES] = _append_csv(env.get(RAY_PREFIXES), "PROFILEMATE_")
    return env


def _cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "profilemate run: no command given (usage: profilemate run [options] -- command ...)",
            file=sys.stderr,
        )
        return 2
    env = launch_env(args, os.environ)
    try:
        config.load(env)  # refuse bad options here rather than in every child process
    except config.ConfigError as e:
        print(f"profilemate run: {e}", file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"profilemate run: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"profilemate run: not executable: {command[0]}", file=sys.stderr)
        return 126
    return 0  # not reached


def _cmd_doctor(args: argparse.Namespace) -> int:
    from profilemate import doctor

    report = doctor.collect()
    if args.json:
        import json

        print(json.dumps(report, indent=2, default=str))
    else:
        print(doctor.render(report))
    return 0 if report["ok"] else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from profilemate import _core

    try:
        out_dir, text, warnings, tables, _rows = _core.report(
            [str(Path(f).expanduser()) for f in args.folders], args.out or ""
        )
    except OSError as e:
        print(f"profilemate report: {e}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if tables == 0:
        print(
            "profilemate report: nothing readable in "
            + ", ".join(args.folders)
            + " (give a session folder: <PROFILEMATE_DIR>/<session id>/)",
            file=sys.stderr,
        )
        return 1
    if not args.quiet:
        print(text, end="")
    print(f"\nreport: {out_dir}/summary.txt, {out_dir}/summary.json")
    print(f"charts: {out_dir}/report.html (one file, opens offline)")
    print(f"timeline: {out_dir}/trace.json (every process; Perfetto UI or chrome://tracing)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="profilemate", description="Runtime profiler for vLLM.")
    p.add_argument("--version", action="version", version=f"profilemate {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser(
        "run",
        help="run a command with profiling in it and every process it starts",
        usage="profilemate run [options] -- command [args ...]",
    )
    run.add_argument("--dir", help=f"output folder (PROFILEMATE_DIR, default {config.DEFAULT_DIR})")
    run.add_argument("--log", choices=config.LOG_LEVELS, help="PROFILEMATE_LOG (default info)")
    run.add_argument("--probes", help="'all' or a comma list of: " + ", ".join(config.categories()))
    run.add_argument(
        "--force", action="store_true", help="profile every Python process, not only vLLM ones"
    )
    run.add_argument(
        "--fault-inject", action="store_true", help="(tests) make every probe's own code raise"
    )
    run.add_argument("--no-trace", action="store_true", help="do not write trace.json")
    run.add_argument(
        "--ring-capacity",
        type=int,
        help=f"events per thread ring, a power of two {config.RING_CAPACITY_MIN}.."
        f"{config.RING_CAPACITY_MAX} (default {config.RING_CAPACITY_DEFAULT})",
    )
    run.add_argument(
        "--flush-ms",
        type=int,
        help=f"collector flush interval in ms, {config.FLUSH_INTERVAL_MS_MIN}.."
        f"{config.FLUSH_INTERVAL_MS_MAX} (default {config.FLUSH_INTERVAL_MS_DEFAULT})",
    )
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=_cmd_run)

    doc = sub.add_parser("doctor", help="what would be profiled here, and why not")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.set_defaults(func=_cmd_doctor)

    rep = sub.add_parser(
        "report",
        help="one report from every process of a run: summary.txt/json, report.html, trace.json",
        usage="profilemate report [--out DIR] SESSION_DIR [MORE_SESSION_DIRS ...]",
    )
    rep.add_argument("folders", nargs="+", help="session folders (reported as one)")
    rep.add_argument("--out", help="output folder (default: <first session>/report)")
    rep.add_argument("--quiet", action="store_true", help="do not print summary.txt")
    rep.set_defaults(func=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
