"""Configuration from ``PROFILEMATE_*`` environment variables (the launcher's options become these).

Every value is validated here, once, so that a typo produces one clear message naming the variable and
the allowed values -- and profiling stays off while the host (vLLM) runs normally.
"""

from __future__ import annotations

import os

TYPE_CHECKING = (
    False  # not `from typing import ...`: typing costs ~10 ms at every interpreter start
)
if TYPE_CHECKING:
    from collections.abc import Mapping

# The default output folder: one per user, so that no local user reads or plants another's files
# (ProfileMate creates it 0700 and refuses it if it is a symlink or belongs to someone else:
# activation/session.py). Not $XDG_RUNTIME_DIR: that tmpfs is small and removed at logout, which
# would lose the profile of a server started over ssh. The docs write it as DEFAULT_DIR_DOC.
DEFAULT_DIR_DOC = "/tmp/profilemate-<uid>"


def default_dir(uid: int | None = None) -> str:
    return DEFAULT_DIR_DOC.replace("<uid>", str(os.geteuid() if uid is None else uid))


DEFAULT_DIR = default_dir()

# The core's start() defaults and limits (docs/CORE_API.md), kept here rather than read from
# profilemate._core: this module runs in every Python process with PROFILEMATE=1, and importing the
# extension costs time. tests/python/test_config_core_agree.py checks them against the _core
# constants of the same names (taken from cpp/include/profilemate/engine.hpp).
RING_CAPACITY_DEFAULT = 65536  # events per thread ring, 64 bytes each; a power of two
RING_CAPACITY_MIN = 64
RING_CAPACITY_MAX = 1 << 24
FLUSH_INTERVAL_MS_DEFAULT = 100
FLUSH_INTERVAL_MS_MIN = 1
FLUSH_INTERVAL_MS_MAX = 1000  # rows must reach disk within a second
TRACE_DEFAULT = True

# Variables the first profiled process of a run exports so that every child joins the same session.
ENV_SESSION_DIR = "PROFILEMATE_SESSION_DIR"
ENV_SESSION_START_NS = "PROFILEMATE_SESSION_START_NS"
ENV_ACTIVATION = "PROFILEMATE_ACTIVATION"  # set by `profilemate run`: names the path in metadata

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_MODES = {
    **{v: "auto" for v in _TRUE},
    **{v: "off" for v in _FALSE},
    "auto": "auto",
    "force": "force",
}
LOG_LEVELS = ("info", "debug", "warning")


def categories() -> tuple[str, ...]:
    """Probe categories (one module each under profilemate/probes/categories/, listed by name)."""
    from profilemate.probes import category_names

    return category_names()


# The seed's variable names, honoured with a one-line notice. vLLM warns about unknown VLLM_*
# variables since Feb 2026, which is why this project's own names start with PROFILEMATE_.
ALIASES = {
    "VLLM_ENABLE_PROFILING": "PROFILEMATE",
    "VLLM_PROFILING_DIR": "PROFILEMATE_DIR",
}


class ConfigError(ValueError):
    """A malformed PROFILEMATE_* value; the message names the variable and what is allowed."""


_FIELDS = {
    "mode": "off",  # off | auto (profile processes that turn out to be vLLM) | force (any process)
    "dir": DEFAULT_DIR,
    "log": "info",
    "probes": (),  # filled by load(): every category unless PROFILEMATE_PROBES names some
    "fault_inject": False,
    "ring_capacity": RING_CAPACITY_DEFAULT,
    "flush_interval_ms": FLUSH_INTERVAL_MS_DEFAULT,
    "trace": TRACE_DEFAULT,
    "session_dir": None,  # inherited from the process that created the session
    "session_start_ns": None,
    "notices": (),  # one-line notices (aliases) for the first process to print
}


class Config:
    """Immutable settings of one process. A plain class, not a dataclass: importing ``dataclasses``
    (and ``inspect`` behind it) would add ~15 ms to every Python process started with PROFILEMATE=1."""

    __slots__ = tuple(_FIELDS)

    def __init__(self, **values) -> None:
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown Config fields: {sorted(unknown)}")
        for k, default in _FIELDS.items():
            object.__setattr__(self, k, values.get(k, default))

    def __setattr__(self, k, v):
        raise AttributeError("Config is immutable; use replace()")

    def replace(self, **changes) -> Config:
        return Config(**{**{k: getattr(self, k) for k in _FIELDS}, **changes})

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.public() == other.public()

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={getattr(self, k)!r}' for k in _FIELDS)})"

    def public(self) -> dict:
        """What metadata.json and `profilemate doctor` show."""
        d = {k: getattr(self, k) for k in _FIELDS if k != "notices"}
        d["probes"] = list(self.probes)
        return d


def _bad(name: str, value: str, allowed: str) -> ConfigError:
    return ConfigError(f"{name}={value!r} is not valid (allowed: {allowed})")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _bad(name, raw, "1, 0, true, false, yes, no, on, off")


def _int_in(env: Mapping[str, str], name: str, default: int, lower: int, upper: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        n = int(raw.strip())
    except ValueError:
        raise _bad(name, raw, f"an integer from {lower} to {upper}") from None
    if not lower <= n <= upper:
        raise _bad(name, raw, f"an integer from {lower} to {upper}")
    return n


def _ring_capacity(env: Mapping[str, str]) -> int:
    name = "PROFILEMATE_RING_CAPACITY"
    allowed = f"a power of two from {RING_CAPACITY_MIN} to {RING_CAPACITY_MAX}"
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return RING_CAPACITY_DEFAULT
    try:
        n = int(raw.strip())
    except ValueError:
        raise _bad(name, raw, allowed) from None
    if not (RING_CAPACITY_MIN <= n <= RING_CAPACITY_MAX and n & (n - 1) == 0):
        raise _bad(name, raw, allowed)
    return n


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def export_absolute_dir(environ=None) -> None:
    """Make a relative PROFILEMATE_DIR (or its alias) absolute in ``environ`` (``os.environ``), so
    that children started in another working directory write into the same folder."""
    env = os.environ if environ is None else environ
    for name in ("PROFILEMATE_DIR", "VLLM_PROFILING_DIR"):
        raw = env.get(name, "").strip()
        if raw and raw != _absolute(raw):
            env[name] = _absolute(raw)


def parse_mode(raw: str | None, name: str = "PROFILEMATE") -> str:
    if raw is None:
        return "off"
    mode = _MODES.get(raw.strip().lower())
    if mode is None:
        raise _bad(
            name, raw, "1/true/on/auto (profile vLLM processes), force (any process), 0/false/off"
        )
    return mode


def mode_variable(environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """Which variable says whether ProfileMate is on, and its raw value: PROFILEMATE, else the
    seed's alias VLLM_ENABLE_PROFILING; ``("PROFILEMATE", None)`` when neither is set."""
    env = os.environ if environ is None else environ
    for name in ("PROFILEMATE", "VLLM_ENABLE_PROFILING"):
        raw = env.get(name)
        if raw is not None:
            return name, raw
    return "PROFILEMATE", None


def mode_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Is ProfileMate on: ``"off"``, ``"auto"`` (profile vLLM processes) or ``"force"`` (any).

    The one reading of PROFILEMATE (or its alias VLLM_ENABLE_PROFILING) used by every activation
    path (the start-up hook, the vLLM plugin, :func:`load`) and by ``profilemate doctor``. Raises
    ConfigError, naming the variable that was read, for a malformed value.
    """
    name, raw = mode_variable(environ)
    return parse_mode(raw, name)


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration; raises ConfigError on the first malformed value."""
    env = dict(os.environ if environ is None else environ)
    mode = mode_from_env(env)
    notices = []
    for old, new in ALIASES.items():
        if old in env and new not in env:
            env[new] = env[old]
            notices.append(f"{old} is a deprecated alias: use {new}={env[old]}")

    # Absolute from here on: the session folder made inside it is exported to children, which may
    # run in another working directory.
    out_dir = _absolute(env.get("PROFILEMATE_DIR", "").strip() or DEFAULT_DIR)

    log = env.get("PROFILEMATE_LOG", "info").strip().lower() or "info"
    if log not in LOG_LEVELS:
        raise _bad("PROFILEMATE_LOG", env["PROFILEMATE_LOG"], ", ".join(LOG_LEVELS))

    raw_probes = env.get("PROFILEMATE_PROBES", "all").strip().lower() or "all"
    known = categories()
    if raw_probes == "all":
        probes = known
    else:
        probes = tuple(p.strip() for p in raw_probes.split(",") if p.strip())
        unknown = [p for p in probes if p not in known]
        if unknown or not probes:
            raise _bad(
                "PROFILEMATE_PROBES",
                env["PROFILEMATE_PROBES"],
                "all, or a comma list of: " + ", ".join(known),
            )

    session_dir = _absolute(env[ENV_SESSION_DIR]) if env.get(ENV_SESSION_DIR) else None
    start_raw = env.get(ENV_SESSION_START_NS)
    session_start_ns = None
    if start_raw:
        try:
            session_start_ns = int(start_raw)
        except ValueError:
            raise _bad(
                ENV_SESSION_START_NS, start_raw, "an integer (set by ProfileMate itself; unset it)"
            ) from None

    return Config(
        mode=mode,
        dir=out_dir,
        log=log,
        probes=probes,
        fault_inject=_flag(env, "PROFILEMATE_FAULT_INJECT", False),
        ring_capacity=_ring_capacity(env),
        flush_interval_ms=_int_in(
            env,
            "PROFILEMATE_FLUSH_MS",
            FLUSH_INTERVAL_MS_DEFAULT,
            FLUSH_INTERVAL_MS_MIN,
            FLUSH_INTERVAL_MS_MAX,
        ),
        trace=_flag(env, "PROFILEMATE_TRACE", TRACE_DEFAULT),
        session_dir=session_dir,
        session_start_ns=session_start_ns,
        notices=tuple(notices),
    )
