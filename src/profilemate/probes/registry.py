"""The probe registry: every target is data, patching is idempotent, and every outcome is reported.

A :class:`~profilemate.probes.spec.Target` names a site inside vLLM (module + qualified name, with
older locations as alternative sites), the vLLM range of each, and its hooks. The :class:`Registry`
asks the import watchdog to call it when a site's module executes (or at once, for modules already
imported), wraps the callable there with the C++ ``_core.timed`` and keeps one status per site:
``applied``, ``pending`` (module not imported in this process yet), ``skipped`` (with the reason)
or ``failed`` (with the error). Nothing here raises into the host.
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
from profilemate.probes.spec import HookContext, Hooks, Site, Target

log = logging.getLogger("profilemate")

APPLIED, PENDING, SKIPPED, FAILED = "applied", "pending", "skipped", "failed"

# Every wrapper this process installed, by id, with the target it serves: a C++ TimedCallable
# cannot carry a marker attribute, so "is this already ours?" is answered by identity. Shared by
# all registries of the process, so a second registry never wraps a wrapper of the same target
# again; a wrapper of ANOTHER target at the same site is wrapped (targets stack).
_LIVE_WRAPPERS: dict[int, Any] = {}
_WRAPPER_TARGET: dict[int, str] = {}
_MISSING = object()

_fault_inject = False


def set_fault_injection(on: bool) -> None:
    """PROFILEMATE_FAULT_INJECT=1 (tests only): every hook raises FaultInjected on entry."""
    global _fault_inject
    _fault_inject = bool(on)


class FaultInjected(RuntimeError):
    """Raised by every hook when fault injection is on."""


class Health:
    """Run-time health of one site's hooks; ``fail`` is the wrapper's ``on_error``.

    The C++ wrapper switches its hooks off at their first exception and calls ``fail`` once: the
    error is counted, logged once with its traceback, and shown in patch_status.json.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.active = True
        self.errors = 0
        self.first_error: str | None = None

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        self.active = False
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "probe %s raised %s and its hooks are switched off for this process; vLLM is "
                "unaffected",
                self.key,
                self.first_error,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def as_dict(self) -> dict:
        return {"active": self.active, "errors": self.errors, "first_error": self.first_error}


@dataclass
class _Patch:
    owner: Any
    attr: str
    previous: Any  # what owner.__dict__ held (or _MISSING when the attribute was inherited)
    installed: Any  # what we set (the wrapper, or the wrapper re-wrapped as static/classmethod)
    wrapper: Any
    rebinds: list[tuple[ModuleType, str, Any]] = field(default_factory=list)


@dataclass
class _SiteState:
    target: Target
    site: Site
    state: str = PENDING
    reason: str = ""
    error: str = ""
    health: Health | None = None
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
    return id(func) in _LIVE_WRAPPERS and _LIVE_WRAPPERS[id(func)] is func


def _wrapper_target(obj: Any) -> str | None:
    """The target key a live wrapper of ours serves (None: not one of ours)."""
    func = obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj
    return _WRAPPER_TARGET.get(id(func)) if is_wrapper(func) else None


def target_key(t: Target, site: Site) -> str:
    """One target at one site: several targets (of one category or several) may share a site."""
    return f"{site.key}|{t.category}.{t.operation}>{t.table.name if t.table is not None else '-'}"


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
        suffixes = tuple(importlib.machinery.all_suffixes())
        for base in list(paths):
            stem = os.path.join(base, *rest)
            if any(os.path.isfile(stem + sfx) for sfx in suffixes) or _is_package_dir(
                stem, suffixes
            ):
                return True
        return False
    return None


def _is_package_dir(path: str, suffixes: tuple[str, ...], depth: int = 3) -> bool:
    """A regular package (``__init__`` with an import suffix) or a namespace package holding a
    module somewhere below (up to ``depth`` folders down). A bare folder -- e.g. one an upgrade
    left behind with only ``__pycache__`` in it -- is no evidence that a module is there."""
    try:
        entries = list(os.scandir(path))
    except OSError:  # not a folder, or unreadable
        return False
    subdirs = []
    for e in entries:
        try:
            if e.is_file():
                if e.name.endswith(suffixes) and e.name.split(".", 1)[0].isidentifier():
                    return True
            elif e.is_dir() and e.name.isidentifier():  # __pycache__ is skipped below
                subdirs.append(e.path)
        except OSError:
            continue
    return depth > 0 and any(
        _is_package_dir(d, suffixes, depth - 1)
        for d in subdirs
        if os.path.basename(d) != "__pycache__"
    )


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
        self._states: dict[str, _SiteState] = {}
        for t in targets:
            for site in t.sites:
                key = target_key(t, site)
                if key in self._states:
                    raise ValueError(
                        f"duplicate target {site.key} ({t.operation} -> {t.table.name if t.table is not None else '-'})"
                    )
                self._states[key] = _SiteState(t, site)
        self._applied_order: list[_SiteState] = []  # stacked wrappers come off in reverse
        self._recorder = recorder
        self._watchdog = watchdog
        self.vllm_version = vllm_version
        self._version = versions.parse(vllm_version)
        self._on_change = on_change
        self._lock = threading.RLock()
        self._active = False
        self._by_module: dict[str, list[_SiteState]] = {}
        for st in self._states.values():
            self._by_module.setdefault(st.site.module, []).append(st)

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
            # Newest first: a wrapper stacked on another target's comes off before it.
            for st in reversed(self._applied_order):
                self._unpatch(st)
            self._applied_order.clear()
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
            # A target's sites are alternatives: once its main site is applied, the others say so
            # (an applied older location leaves the main site's own reason in place).
            applied = {
                id(st.target): st.site.key
                for st in self._states.values()
                if st.state == APPLIED and st.site is st.target.site
            }
            rows = []
            for st in self._states.values():
                t, site = st.target, st.site
                state, reason = st.state, st.reason
                other = applied.get(id(t))
                if state in (PENDING, SKIPPED) and other and other != site.key:
                    state, reason = SKIPPED, f"alternative {other} is applied"
                rows.append(
                    {
                        "target": site.key,
                        "module": site.module,
                        "qualname": site.qualname,
                        "alternative_of": None if site is t.site else t.key,
                        "category": t.category,
                        "operation": t.operation,
                        "table": t.table.name if t.table is not None else None,
                        "hooks": _hooks_label(t),
                        "vllm_range": site.vllm_range,
                        "roles": list(t.roles),
                        "state": state,
                        "reason": reason,
                        "error": st.error,
                        "patches": len(st.patches),
                        "health": st.health.as_dict() if st.health else None,
                    }
                )
            return rows

    def counts(self) -> dict[str, int]:
        out = {APPLIED: 0, PENDING: 0, SKIPPED: 0, FAILED: 0}
        for row in self.status():
            out[row["state"]] += 1
        return out

    # --- patching -----------------------------------------------------------------------------
    def _initial_state(self, st: _SiteState) -> None:
        site = st.site
        if self._version is not None and not versions.in_range(
            self._version, site.vllm_min, site.vllm_below
        ):
            st.state = SKIPPED
            st.reason = f"not for vLLM {self.vllm_version} (target range {site.vllm_range})"
            return
        if site.module in sys.modules:
            return  # patched right after, by the watchdog's run_now
        exists = module_file_exists(site.module)
        if exists is False:
            st.state = SKIPPED
            st.reason = (
                f"module {site.module} not in vLLM {self.vllm_version or '(unknown version)'}"
            )
        else:
            st.state = PENDING
            st.reason = "module not imported in this process (yet)"

    def _module_loaded(self, module: ModuleType) -> None:
        changed = False
        for st in self._by_module.get(module.__name__, ()):
            changed |= self._patch(st, module)
        if changed:
            self._changed()

    def _patch(self, st: _SiteState, module: ModuleType) -> bool:
        t, site = st.target, st.site
        with self._lock:
            if not self._active:
                return False
            if st.state == SKIPPED and st.reason.startswith("not for vLLM"):
                return False
            try:
                owner, attr, raw = _resolve(module, site.qualname)
            except AttributeError as e:
                return self._set(st, SKIPPED, f"{e} (vLLM {self.vllm_version or 'unknown'})")
            key = target_key(t, site)
            owner_key = _wrapper_target(raw)
            if owner_key == key:
                if st.state == APPLIED:
                    return False  # idempotent: the same module object seen again
                return self._set(st, APPLIED, "already wrapped")
            # owner_key of another target: its wrapper is what we wrap (targets stack).
            try:
                func, rewrap = _unwrap_descriptor(raw)
                if not callable(func):
                    return self._set(
                        st, SKIPPED, f"{site.qualname} is not callable ({type(func).__name__})"
                    )
                # A coroutine function without hooks gets the async wrapper (probes/async_timed.py),
                # which spans the whole await; generators, and hooks on coroutines, are refused.
                is_async = (
                    inspect.iscoroutinefunction(func) and t.hooks is None and t.table is not None
                )
                if _is_deferred(func) and not is_async:
                    return self._set(
                        st,
                        SKIPPED,
                        f"{site.qualname} is a coroutine/generator function: a synchronous timing "
                        "wrapper would time only its creation"
                        + (" (coroutine targets take no hooks)" if t.hooks else ""),
                    )
                hooks = t.hooks(HookContext(t, func, self._recorder)) if t.hooks else Hooks()
                params, problem = bind_params(func, hook_params(hooks))
                if problem:
                    return self._set(
                        st,
                        SKIPPED,
                        f"signature changed: {site.qualname} {problem} "
                        f"(vLLM {self.vllm_version or 'unknown'})",
                    )
                if st.health is None:
                    st.health = Health(site.key)
                make = self._make_async_wrapper if is_async else self._make_wrapper
                wrapper = make(t, site, func, hooks, params, st.health)
                installed = rewrap(wrapper)
                previous = owner.__dict__.get(attr, _MISSING) if hasattr(owner, "__dict__") else raw
                setattr(owner, attr, installed)
                _LIVE_WRAPPERS[id(wrapper)] = wrapper
                _WRAPPER_TARGET[id(wrapper)] = key
                patch = _Patch(owner, attr, previous, installed, wrapper)
                if t.rebind and isinstance(owner, ModuleType):
                    patch.rebinds = _rebind(module.__name__, attr, func, installed, owner)
                st.patches.append(patch)
                self._applied_order.append(st)
            except Exception as e:
                st.error = f"{type(e).__name__}: {e}"
                log.warning("could not patch %s: %s", site.key, st.error)
                return self._set(st, FAILED, "patching raised")
            st.error = ""
            st.applied_at = time.time()
            log.debug(
                "patched %s (hooks: %s%s)",
                site.key,
                _hooks_label(t),
                f", rebound in {len(patch.rebinds)} module(s)" if patch.rebinds else "",
            )
            return self._set(st, APPLIED, "")

    def _make_async_wrapper(
        self, t: Target, site: Site, func: Callable, hooks: Hooks, params: tuple, health: Health
    ) -> Callable:
        from profilemate.probes.async_timed import timed_async

        return timed_async(
            func,
            self._recorder,
            self._recorder.table(t.table),
            self._recorder.intern(t.operation),
            self._recorder.intern(site.qualname),
            on_error=health.fail,
        )

    def _make_wrapper(
        self, t: Target, site: Site, func: Callable, hooks: Hooks, params: tuple, health: Health
    ) -> Callable:
        before, after = hooks
        if _fault_inject:
            before = _fault if before else None
            after = _fault if after else None
        return self._recorder.timed(
            func,
            self._recorder.NO_ROW if t.table is None else self._recorder.table(t.table),
            self._recorder.intern(t.operation),
            self._recorder.intern(site.qualname),
            before=before,
            after=after,
            params=params,
            sets_step=t.sets_step and before is not None,
            on_error=health.fail,
        )

    def _unpatch(self, st: _SiteState) -> None:
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
                    log.debug("%s was re-wrapped by someone else; left in place", st.site.key)
            except Exception as e:  # a read-only owner, a vanished module: report, carry on
                log.warning("could not unpatch %s: %s", st.site.key, e)
            _LIVE_WRAPPERS.pop(id(p.wrapper), None)
            _WRAPPER_TARGET.pop(id(p.wrapper), None)
        st.patches.clear()
        if st.state == APPLIED:
            st.state, st.reason = PENDING, "unpatched (profiling disabled)"

    def _set(self, st: _SiteState, state: str, reason: str) -> bool:
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


def _fault(*args, **kwargs):
    raise FaultInjected("fault injected into a probe hook")


def _hooks_label(t: Target) -> str:
    return "before/after" if t.hooks else "none (timing only)"


def _is_deferred(func: Callable) -> bool:
    # Not unwrapped: @contextmanager's function wraps a generator function but is a plain one.
    f = func
    return (
        inspect.iscoroutinefunction(f)
        or inspect.isasyncgenfunction(f)
        or inspect.isgeneratorfunction(f)
    )


def hook_params(hooks: Hooks) -> tuple[str, ...]:
    """The vLLM parameter names the hooks read: ``before(a, b)`` / ``after(result, a, b)``.

    Raises TypeError for hooks that are not plain functions of the same names (a probe bug).
    """
    names: tuple[str, ...] | None = None
    for hook, skip in ((hooks.before, 0), (hooks.after, 1)):
        if hook is None:
            continue
        params = list(inspect.signature(hook).parameters.values())
        plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if any(p.kind not in plain for p in params) or len(params) < skip:
            raise TypeError(
                f"hook {hook.__qualname__} must be a plain function of the vLLM parameters it "
                "reads (after: the result first), without *args/**kwargs"
            )
        mine = tuple(p.name for p in params[skip:])
        if names is not None and mine != names:
            raise TypeError(f"before and after hooks read different parameters: {names} vs {mine}")
        names = mine
    return names or ()


def bind_params(func: Callable, names: tuple[str, ...]) -> tuple[tuple | None, str | None]:
    """``_core.timed``'s ``params`` for ``names``, bound by name against vLLM's signature.

    Returns (params, None), or (None, why) when vLLM's function has no such parameter.
    """
    if not names:
        return (), None
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None, "has no inspectable signature"
    positional = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    var_kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    out = []
    for name in names:
        p = sig.parameters.get(name)
        if p is None or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            if var_kw and p is None:
                out.append((-1, name, None))  # may arrive through **kwargs
                continue
            return None, f"has no parameter {name!r}"
        pos = positional.index(name) if name in positional else -1
        kwname = None if p.kind == inspect.Parameter.POSITIONAL_ONLY else name
        out.append((pos, kwname, None if p.default is inspect.Parameter.empty else p.default))
    return tuple(out), None


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


def inspect_site(t: Target, site: Site) -> dict:
    """For `profilemate doctor`: import the module and report presence and signature."""
    out: dict[str, Any] = {"target": site.key, "present": False, "signature_ok": None, "detail": ""}
    try:
        module = importlib.import_module(site.module)
    except Exception as e:
        out["detail"] = f"module not importable: {type(e).__name__}: {e}"
        return out
    try:
        _owner, _attr, raw = _resolve(module, site.qualname)
    except AttributeError as e:
        out["detail"] = str(e)
        return out
    out["present"] = True
    func, _ = _unwrap_descriptor(raw)
    try:
        out["signature"] = str(inspect.signature(func))
    except (TypeError, ValueError):
        out["signature"] = None
    try:
        hooks = t.hooks(HookContext(t, func, None)) if t.hooks else Hooks()
        problem = bind_params(func, hook_params(hooks))[1]
    except Exception as e:
        problem = f"hooks cannot be built: {type(e).__name__}: {e}"
    out["signature_ok"] = problem is None
    if problem:
        out["detail"] = problem
    return out
