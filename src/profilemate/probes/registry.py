"""The probe registry: every target is data, patching is idempotent, and every outcome is reported.

A :class:`Target` names a callable inside vLLM (module + qualified name), the vLLM range it applies
to, and how it is wrapped. The :class:`Registry` asks the import watchdog to call it when a target's
module executes (or at once, for modules already imported), patches there, and keeps one status per
target: ``applied``, ``pending`` (module not imported in this process yet), ``skipped`` (with the
reason) or ``failed`` (with the error). Nothing here raises into the host.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from profilemate.probes import versions
from profilemate.probes.guard import WRAPPER_MARK, ProbeState, guarded
from profilemate.probes.tables import CPU_OPERATIONS

log = logging.getLogger("profilemate")

APPLIED, PENDING, SKIPPED, FAILED = "applied", "pending", "skipped", "failed"

# Every wrapper this process installed, by id: a C++ TimedCallable cannot carry a marker attribute,
# so "is this already ours?" is answered by identity. Shared by all registries of the process, so a
# second registry never wraps the first one's wrapper.
_LIVE_WRAPPERS: dict[int, Any] = {}
_MISSING = object()


@dataclass(frozen=True)
class Target:
    """One place in vLLM a probe attaches to."""

    module: str
    qualname: str  # "Class.method" or "function"
    category: str  # the probes/ module that owns it: cpu_ops, kv_cache, ...
    operation: str  # the name recorded in the table
    wrap: str = "timed"  # "timed": _core.timed (C++); "python": guarded Python wrapper
    table: str = CPU_OPERATIONS
    probe: Callable[[ProbeContext], tuple[Callable, Callable]] | None = None  # for wrap="python"
    vllm_min: str | None = None  # inclusive
    vllm_below: str | None = None  # exclusive
    rebind: bool = False  # also patch names bound elsewhere by `from module import name`
    params: tuple[str, ...] = ()  # parameters the probe reads (by name); checked before patching
    roles: tuple[str, ...] = ()  # processes where it fires (documentation, doctor)
    group: str | None = None  # alternatives across vLLM versions: one applied is enough
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.module}:{self.qualname}"

    def __post_init__(self) -> None:
        if self.wrap not in ("timed", "python"):
            raise ValueError(f"{self.key}: wrap must be 'timed' or 'python'")
        if self.wrap == "python" and self.probe is None:
            raise ValueError(f"{self.key}: a python wrapper needs a probe factory")
        versions.in_range(versions.parse("0") or (), self.vllm_min, self.vllm_below)  # bounds parse


@dataclass
class ProbeContext:
    """What a probe factory gets: the original callable, the recorder and its ids, its switch."""

    target: Target
    original: Callable
    recorder: Any
    probe: ProbeState

    @property
    def table_id(self) -> int:
        return self.recorder.table(self.target.table)

    @property
    def name_id(self) -> int:
        return self.recorder.intern(self.target.operation)

    @property
    def ctx_id(self) -> int:
        return self.recorder.intern(self.target.qualname)


@dataclass
class _Patch:
    owner: Any
    attr: str
    previous: Any  # what owner.__dict__ held (or _MISSING when the attribute was inherited)
    installed: Any  # what we set (the wrapper, or the wrapper re-wrapped as static/classmethod)
    wrapper: Any
    rebinds: list[tuple[ModuleType, str, Any]] = field(default_factory=list)


@dataclass
class _TargetState:
    target: Target
    state: str = PENDING
    reason: str = ""
    error: str = ""
    probe: ProbeState | None = None
    patches: list[_Patch] = field(default_factory=list)
    applied_at: float | None = None


def _resolve(module: ModuleType, qualname: str) -> tuple[Any, str, Any]:
    """(owner, attribute, raw value as stored) -- raises AttributeError naming what is missing."""
    parts = qualname.split(".")
    owner: Any = module
    for i, part in enumerate(parts[:-1]):
        try:
            owner = getattr(owner, part)
        except AttributeError:
            raise AttributeError(f"{'.'.join(parts[: i + 1])} not in {module.__name__}") from None
    attr = parts[-1]
    try:
        raw = inspect.getattr_static(owner, attr)
    except AttributeError:
        raise AttributeError(f"{qualname} not in {module.__name__}") from None
    return owner, attr, raw


def _unwrap_descriptor(raw: Any) -> tuple[Callable, Callable[[Callable], Any]]:
    """The plain callable inside ``raw`` and how to put a replacement back in the same form."""
    if isinstance(raw, staticmethod):
        return raw.__func__, staticmethod
    if isinstance(raw, classmethod):
        return raw.__func__, classmethod
    return raw, lambda f: f


def is_wrapper(obj: Any) -> bool:
    func = obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj
    return (
        id(func) in _LIVE_WRAPPERS
        and _LIVE_WRAPPERS[id(func)] is func
        or hasattr(func, WRAPPER_MARK)
    )


def module_file_exists(name: str) -> bool | None:
    """Whether ``name`` can be imported, judged from the files of its nearest imported package.

    Used to tell "not imported in this process yet" (pending) from "not in this vLLM" (skipped)
    without importing anything from an import hook. None: cannot tell (no ancestor imported).
    """
    if name in sys.modules:
        return True
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        parent = sys.modules.get(".".join(parts[:cut]))
        if parent is None:
            continue
        paths = getattr(parent, "__path__", None)
        if paths is None:
            return False
        rest = parts[cut:]
        for base in list(paths):
            stem = os.path.join(base, *rest)
            if os.path.isdir(stem) or any(
                os.path.exists(stem + sfx) for sfx in importlib.machinery.all_suffixes()
            ):
                return True
        return False
    return None


class Registry:
    """Patches a list of targets as their modules load; idempotent patch/unpatch; never raises."""

    def __init__(
        self,
        targets: Iterable[Target],
        recorder: Any,
        *,
        watchdog,
        vllm_version: str | None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._states: dict[str, _TargetState] = {}
        for t in targets:
            if t.key in self._states:
                raise ValueError(f"duplicate target {t.key}")
            self._states[t.key] = _TargetState(t)
        self._recorder = recorder
        self._watchdog = watchdog
        self.vllm_version = vllm_version
        self._version = versions.parse(vllm_version)
        self._on_change = on_change
        self._lock = threading.RLock()
        self._active = False
        self._by_module: dict[str, list[_TargetState]] = {}
        for st in self._states.values():
            self._by_module.setdefault(st.target.module, []).append(st)

    # --- lifecycle ----------------------------------------------------------------------------
    def activate(self) -> None:
        """Register with the watchdog; modules already imported are patched now."""
        with self._lock:
            if self._active:
                return
            self._active = True
            for st in self._states.values():
                self._initial_state(st)
        for module_name in self._by_module:
            self._watchdog.register(module_name, self._module_loaded)
        self._changed()
        self._log_summary()

    def deactivate(self) -> None:
        """Unregister and restore every patched attribute (idempotent)."""
        for module_name in self._by_module:
            self._watchdog.unregister(module_name, self._module_loaded)
        with self._lock:
            self._active = False
            for st in self._states.values():
                self._unpatch(st)
        self._changed()

    def set_vllm_version(self, vllm_version: str | None) -> None:
        """Learn the version late (forced start before ``import vllm``); re-judge unpatched targets."""
        with self._lock:
            if vllm_version == self.vllm_version:
                return
            self.vllm_version = vllm_version
            self._version = versions.parse(vllm_version)
            for st in self._states.values():
                if st.state != APPLIED:
                    self._initial_state(st)
        self._changed()

    def reset_lock_after_fork(self) -> None:
        self._lock = threading.RLock()

    # --- status -------------------------------------------------------------------------------
    def status(self) -> list[dict]:
        with self._lock:
            applied_groups = {
                st.target.group: st.target.key
                for st in self._states.values()
                if st.state == APPLIED and st.target.group
            }
            rows = []
            for st in self._states.values():
                t = st.target
                state, reason = st.state, st.reason
                if state in (PENDING, SKIPPED) and t.group in applied_groups:
                    state, reason = SKIPPED, f"alternative {applied_groups[t.group]} is applied"
                rows.append(
                    {
                        "target": t.key,
                        "module": t.module,
                        "qualname": t.qualname,
                        "category": t.category,
                        "operation": t.operation,
                        "wrap": t.wrap,
                        "vllm_range": versions.describe_range(t.vllm_min, t.vllm_below),
                        "roles": list(t.roles),
                        "state": state,
                        "reason": reason,
                        "error": st.error,
                        "patches": len(st.patches),
                        "probe": st.probe.as_dict() if st.probe else None,
                    }
                )
            return rows

    def counts(self) -> dict[str, int]:
        out = {APPLIED: 0, PENDING: 0, SKIPPED: 0, FAILED: 0}
        for row in self.status():
            out[row["state"]] += 1
        return out

    # --- patching -----------------------------------------------------------------------------
    def _initial_state(self, st: _TargetState) -> None:
        t = st.target
        if self._version is not None and not versions.in_range(
            self._version, t.vllm_min, t.vllm_below
        ):
            st.state = SKIPPED
            st.reason = (
                f"not for vLLM {self.vllm_version} "
                f"(target range {versions.describe_range(t.vllm_min, t.vllm_below)})"
            )
            return
        if t.module in sys.modules:
            return  # patched right after, by the watchdog's run_now
        exists = module_file_exists(t.module)
        if exists is False:
            st.state = SKIPPED
            st.reason = f"module {t.module} not in vLLM {self.vllm_version or '(unknown version)'}"
        else:
            st.state = PENDING
            st.reason = "module not imported in this process (yet)"

    def _module_loaded(self, module: ModuleType) -> None:
        changed = False
        for st in self._by_module.get(module.__name__, ()):
            changed |= self._patch(st, module)
        if changed:
            self._changed()

    def _patch(self, st: _TargetState, module: ModuleType) -> bool:
        t = st.target
        with self._lock:
            if not self._active:
                return False
            if st.state == SKIPPED and st.reason.startswith("not for vLLM"):
                return False
            try:
                owner, attr, raw = _resolve(module, t.qualname)
            except AttributeError as e:
                return self._set(st, SKIPPED, f"{e} (vLLM {self.vllm_version or 'unknown'})")
            if is_wrapper(raw):
                if st.state == APPLIED:
                    return False  # idempotent: the same module object seen again
                return self._set(st, APPLIED, "already wrapped")
            try:
                func, rewrap = _unwrap_descriptor(raw)
                if not callable(func):
                    return self._set(
                        st, SKIPPED, f"{t.qualname} is not callable ({type(func).__name__})"
                    )
                missing = _missing_params(func, t.params)
                if missing:
                    return self._set(
                        st,
                        SKIPPED,
                        f"signature changed: {t.qualname} has no parameter {', '.join(missing)} "
                        f"(vLLM {self.vllm_version or 'unknown'})",
                    )
                if st.probe is None:
                    st.probe = ProbeState(t.key)
                wrapper = self._make_wrapper(t, func, st.probe)
                installed = rewrap(wrapper)
                previous = owner.__dict__.get(attr, _MISSING) if hasattr(owner, "__dict__") else raw
                setattr(owner, attr, installed)
                _LIVE_WRAPPERS[id(wrapper)] = wrapper
                patch = _Patch(owner, attr, previous, installed, wrapper)
                if t.rebind and isinstance(owner, ModuleType):
                    patch.rebinds = _rebind(module.__name__, attr, func, installed, owner)
                st.patches.append(patch)
            except Exception as e:
                st.error = f"{type(e).__name__}: {e}"
                log.warning("could not patch %s: %s", t.key, st.error)
                return self._set(st, FAILED, "patching raised")
            st.error = ""
            st.applied_at = time.time()
            log.debug(
                "patched %s (%s%s)",
                t.key,
                t.wrap,
                f", rebound in {len(patch.rebinds)} module(s)" if patch.rebinds else "",
            )
            return self._set(st, APPLIED, "")

    def _make_wrapper(self, t: Target, func: Callable, probe: ProbeState) -> Callable:
        ctx = ProbeContext(t, func, self._recorder, probe)
        if t.wrap == "timed":
            return self._recorder.timed(func, ctx.table_id, ctx.name_id, ctx.ctx_id)
        before, after = t.probe(ctx)
        return guarded(func, probe, before, after)

    def _unpatch(self, st: _TargetState) -> None:
        for p in reversed(st.patches):
            try:
                for mod, name, original in p.rebinds:
                    if mod.__dict__.get(name) is p.installed:
                        setattr(mod, name, original)
                current = p.owner.__dict__.get(p.attr, _MISSING)
                if current is p.installed:
                    if p.previous is _MISSING:
                        delattr(p.owner, p.attr)
                    else:
                        setattr(p.owner, p.attr, p.previous)
                else:
                    log.debug("%s was re-wrapped by someone else; left in place", st.target.key)
            except Exception as e:  # a read-only owner, a vanished module: report, carry on
                log.warning("could not unpatch %s: %s", st.target.key, e)
            _LIVE_WRAPPERS.pop(id(p.wrapper), None)
        st.patches.clear()
        if st.state == APPLIED:
            st.state, st.reason = PENDING, "unpatched (profiling disabled)"

    def _set(self, st: _TargetState, state: str, reason: str) -> bool:
        changed = (st.state, st.reason) != (state, reason)
        st.state, st.reason = state, reason
        return changed or state == APPLIED

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.debug("status callback failed", exc_info=True)

    def _log_summary(self) -> None:
        c = self.counts()
        line = (
            f"probes: {c[APPLIED]} applied, {c[PENDING]} pending, {c[SKIPPED]} skipped, "
            f"{c[FAILED]} failed"
        )
        if self._version is None:
            log.info(
                "vLLM version %r not recognised: targets that exist are applied, the rest skipped; %s",
                self.vllm_version,
                line,
            )
        else:
            log.debug("%s (vLLM %s)", line, self.vllm_version)


def _missing_params(func: Callable, params: tuple[str, ...]) -> list[str]:
    if not params:
        return []
    try:
        names = set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return []  # builtins without a signature: cannot check, trust the target
    return [p for p in params if p not in names]


def _rebind(module_name: str, attr: str, original: Any, installed: Any, home: ModuleType) -> list:
    """Point every ``from module import attr`` binding at the wrapper.

    vLLM's model runner does ``from vllm.forward_context import set_forward_context``: patching the
    defining module alone changes nothing for it. Only modules of the same top-level package are
    scanned (vLLM's own), which keeps this a few milliseconds at activation.
    """
    top = module_name.split(".", 1)[0]
    done = []
    for name, mod in list(sys.modules.items()):
        if mod is None or mod is home or not (name == top or name.startswith(top + ".")):
            continue
        d = getattr(mod, "__dict__", None)
        if not d:
            continue
        for key, value in list(d.items()):
            if value is original:
                try:
                    setattr(mod, key, installed)
                    done.append((mod, key, original))
                except Exception:
                    log.debug("could not rebind %s.%s", name, key, exc_info=True)
    return done


def inspect_target(t: Target) -> dict:
    """For `profilemate doctor`: import the module and report presence and signature."""
    out: dict[str, Any] = {"target": t.key, "present": False, "signature_ok": None, "detail": ""}
    try:
        module = importlib.import_module(t.module)
    except Exception as e:
        out["detail"] = f"module not importable: {type(e).__name__}: {e}"
        return out
    try:
        _owner, _attr, raw = _resolve(module, t.qualname)
    except AttributeError as e:
        out["detail"] = str(e)
        return out
    out["present"] = True
    func, _ = _unwrap_descriptor(raw)
    try:
        out["signature"] = str(inspect.signature(func))
    except (TypeError, ValueError):
        out["signature"] = None
    missing = _missing_params(func, t.params)
    out["signature_ok"] = not missing
    if missing:
        out["detail"] = f"missing parameter(s): {', '.join(missing)}"
    return out
