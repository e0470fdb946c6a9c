"""What a probe category declares: its tables (columns with units), its targets, its hooks.

A category is one module under ``profilemate/probes/categories/`` (see docs/PROBES.md)::

    OPS = Table("cpu_operations_timing", (Column("timestamp_sec", "ts_sec", "s"), ...))
    TABLES = (OPS,)
    TARGETS = (
        Target("vllm.v1.core.sched.scheduler:Scheduler.schedule", "schedule", OPS,
               hooks=schedule_hooks, sets_step=True, roles=EC,
               alternatives=("vllm.v1.core.scheduler:Scheduler.schedule",)),
    )

Every target is wrapped by the C++ ``_core.timed``: C++ takes both timestamps, calls vLLM's
function exactly once and records one row; the optional Python hooks only pull numbers off vLLM's
objects and return them as the row's values (``a0..a15``). Several targets may name one site
(e.g. ``Scheduler.schedule`` for the CPU-time, KV-cache and batch categories): the registry stacks
their wrappers, each records its own row. A hook is a plain function of the vLLM
parameters it reads, by name: ``before(self, scheduler_output)``, ``after(result, self)`` (the
result first; both hooks read the same names). The registry resolves those names against vLLM's
signature once, at patch time (position, keyword, default), and the C++ wrapper hands the hooks
exactly those arguments -- no ``*args``/``**kwargs`` per call. A name vLLM's function lacks skips
the target with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from profilemate.probes import versions

# Process roles (where a target fires): documentation and `profilemate doctor`.
API = ("api",)
ENGINECORE = ("enginecore",)
WORKER = ("worker",)

# Column sources the C++ core understands (docs/CORE_API.md, `define_table`).
MAX_VALUES = 16  # a row carries a0..a15 (numbers) / s0..s15 (the same slots as interned strings)
# `text`: the row's one string that must not go through the interner (a request id): a hook returns
# it as a str value, or recorder.row(..., text=...); at most 112 UTF-8 bytes.
SOURCES = frozenset(
    "ts_sec end_sec dur_ms dur_us step name ctx pid tid text".split()
    + [f"a{i}" for i in range(MAX_VALUES)]
    + [f"s{i}" for i in range(MAX_VALUES)]
)


@dataclass(frozen=True)
class Column:
    header: str  # the CSV header
    source: str  # which field of the event it prints (SOURCES)
    unit: str = ""  # "s", "ms", "tokens", ... ("" for ids and names)
    doc: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"column {self.header}: unknown source {self.source!r}")


@dataclass(frozen=True)
class Table:
    """One CSV file of each process: ``<process dir>/<name>.csv``."""

    name: str
    columns: tuple[Column, ...]
    doc: str = ""

    def core_columns(self) -> list[tuple[str, str]]:
        return [(c.header, c.source) for c in self.columns]


@dataclass(frozen=True)
class Site:
    """A place in vLLM: ``module:qualname`` and the vLLM range where it exists."""

    module: str
    qualname: str  # "Class.method" or "function"
    vllm_min: str | None = None  # inclusive
    vllm_below: str | None = None  # exclusive

    @property
    def key(self) -> str:
        return f"{self.module}:{self.qualname}"

    @property
    def vllm_range(self) -> str:
        return versions.describe_range(self.vllm_min, self.vllm_below)

    def __post_init__(self) -> None:
        if not self.module or not self.qualname:
            raise ValueError(f"a site is 'module:qualname', got {self.key!r}")
        versions.in_range(versions.parse("0") or (), self.vllm_min, self.vllm_below)  # bounds parse


def at(where: str, *, vllm_min: str | None = None, vllm_below: str | None = None) -> Site:
    """``at("vllm.v1.core.scheduler:Scheduler.schedule", vllm_below="0.11")``."""
    module, sep, qualname = where.partition(":")
    if not sep:
        raise ValueError(f"a site is 'module:qualname', got {where!r}")
    return Site(module, qualname, vllm_min, vllm_below)


class Hooks(NamedTuple):
    before: Callable[..., Any] | None = None  # before(*named params) -> values
    after: Callable[..., Any] | None = None  # after(result, *named params) -> values


@dataclass
class HookContext:
    """What a hooks factory gets: the wrapped vLLM callable, the recorder, the target."""

    target: Target
    original: Callable
    recorder: Any

    def table_id(self, table: Table) -> int:
        return self.recorder.table(table)

    def intern(self, s: str) -> int:
        return self.recorder.intern(s)

    @property
    def table(self) -> int:
        """The id of the target's own table."""
        return self.recorder.table(self.target.table)


@dataclass(frozen=True)
class Target:
    """One thing a probe measures, at one site in vLLM (older locations as alternatives)."""

    site: Site | str
    operation: str  # the name recorded in the table (the `operation` column for cpu_ops)
    table: Table | None  # None: the wrapper records no row of its own; the hooks record theirs
    hooks: Callable[[HookContext], Hooks] | None = None  # factory: one Hooks per patch
    sets_step: bool = False  # the before hook's first value is the engine step id
    alternatives: tuple[Site | str, ...] = ()  # older (or newer) locations of the same thing
    rebind: bool = False  # also patch names bound elsewhere by `from module import name`
    roles: tuple[str, ...] = ()
    note: str = ""
    category: str = field(default="", compare=False)  # set by discovery: the module's name

    def __post_init__(self) -> None:
        site = at(self.site) if isinstance(self.site, str) else self.site
        alts = tuple(at(a) if isinstance(a, str) else a for a in self.alternatives)
        object.__setattr__(self, "site", site)
        object.__setattr__(self, "alternatives", alts)
        if self.sets_step and self.hooks is None:
            raise ValueError(f"{site.key}: sets_step needs hooks with a before hook")
        keys = [s.key for s in self.sites]
        if len(keys) != len(set(keys)):
            raise ValueError(f"{site.key}: an alternative repeats a site")

    @property
    def key(self) -> str:
        return self.site.key  # type: ignore[union-attr]

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.site, *self.alternatives)  # type: ignore[return-value]
