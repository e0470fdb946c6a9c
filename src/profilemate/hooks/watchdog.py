"""The import watchdog: run callbacks right after a named module executes (stdlib only).

Why this shape (the seed's issues 1-3):

* ``find_module``/``load_module`` were removed from the import system in Python 3.12; this finder
  implements only ``find_spec`` and wraps the found loader's ``exec_module``.
* The watchdog walks the *other* finders on ``sys.meta_path`` itself instead of calling
  ``importlib.util.find_spec``, which would re-enter the import machinery (and its locks) from inside
  an import. A thread-local guard makes a nested lookup of the same name fall through.
* Callbacks for a module that is already in ``sys.modules`` run at registration, so activating after
  vLLM was imported still patches it; ``importlib.reload`` goes through ``find_spec`` again, so the
  callbacks run again on the fresh module body.
* Only names with a registered callback are intercepted: every other import costs one dict lookup
  and one check that the watchdog is still first on ``sys.meta_path``.
* Namespace packages (PEP 420: a folder without ``__init__.py``) come back from the path finder with
  ``loader=None``; the watchdog gives such a spec the stdlib namespace loader (what the import
  system would do itself in ``module_from_spec``) wrapped like any other, so their callbacks run too.
* A finder inserted *ahead* of the watchdog after ``install()`` can resolve a watched module itself.
  The watchdog takes first place back at the next lookup that reaches it (any import the other
  finder passes on) and at every ``register()``; at that point every watched module that is
  already imported but whose callbacks did not run on it (the other finder loaded it) gets them,
  once. A finder ahead that resolves *every* import and nothing calls ``register()`` afterwards
  is not noticed: nothing of the watchdog runs then.

Locking: ``_lock`` guards registration only and is never held while calling a finder, a loader or a
callback, so it cannot take part in a lock cycle with the interpreter's per-module import locks.
Callbacks run in the importing thread while that module's import lock is held, exactly like the
module body itself.
"""

from __future__ import annotations

# _thread, not threading: threading imports functools/collections, ~7 ms at every interpreter
# start with PROFILEMATE=1, for a lock and a thread-local.
import _thread
import os
import sys
from types import ModuleType

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~10 ms at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    Callback = Callable[[ModuleType], None]


def _fully_initialised(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


class _WatchdogLoader:
    """Delegates everything to the real loader; after ``exec_module`` it runs the callbacks."""

    def __init__(self, loader, watchdog: ModuleWatchdog) -> None:
        self.__dict__["_pm_loader"] = loader
        self.__dict__["_pm_watchdog"] = watchdog

    def __getattr__(self, name):  # get_code, get_source, is_package, get_resource_reader, ...
        return getattr(self.__dict__["_pm_loader"], name)

    def create_module(self, spec):
        create = getattr(self._pm_loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        loader = self._pm_loader
        # Give the module its real loader back before its body runs: pkgutil, importlib.resources,
        # inspect and pickling helpers look at __loader__ / __spec__.loader and expect the real type.
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = loader
        loader.exec_module(module)
        self._pm_watchdog._module_executed(module)


def _namespace_loader(spec):
    """The stdlib loader of a namespace package spec, built as ``module_from_spec`` builds it
    (``NamespaceLoader`` from 3.11, ``_NamespaceLoader`` before); None if this Python lacks it."""
    bootstrap_external = sys.modules.get("_frozen_importlib_external")
    cls = getattr(bootstrap_external, "NamespaceLoader", None) or getattr(
        bootstrap_external, "_NamespaceLoader", None
    )
    if cls is None:
        return None
    loader = cls.__new__(cls)
    loader._path = spec.submodule_search_locations
    return loader


class ModuleWatchdog:
    """First finder on ``sys.meta_path``; calls ``register``-ed callbacks after a module executes."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        if hasattr(os, "register_at_fork"):
            # A thread of the parent may hold the lock at fork time; the child starts with a fresh one.
            os.register_at_fork(after_in_child=self._reset_lock)
        # Copy-on-write: find_spec reads the current dict without taking the lock.
        self._callbacks: dict[str, tuple[Callback, ...]] = {}
        self._local = _thread._local()
        self._failed: set[tuple[str, int]] = set()
        # (module name, callback) -> id of the module object the callback last ran on: tells which
        # watched modules a finder ahead of the watchdog loaded without the callbacks.
        self._ran: dict[tuple[str, Callback], int] = {}
        # Set by the activation layer: report_error(message) logs with the traceback being handled.
        # The watchdog itself stays stdlib-only (scripts/check_layering.py).
        self.report_error: Callable[[str], None] | None = None

    def _reset_lock(self) -> None:
        self._lock = _thread.allocate_lock()

    # --- installation -------------------------------------------------------------------------
    def install(self) -> None:
        """Put the watchdog first on ``sys.meta_path`` (idempotent)."""
        with self._lock:
            if sys.meta_path and sys.meta_path[0] is self:
                return
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            sys.meta_path.insert(0, self)

    def _retake_first_place(self) -> None:
        """Another finder was put ahead of the watchdog: move back to the front, then run the
        callbacks of watched modules that were imported meanwhile without them."""
        with self._lock:
            if self not in sys.meta_path or sys.meta_path[0] is self:
                return
            # Remove, then insert at 0: an import iterating over sys.meta_path right now (this may
            # run inside such a lookup) still visits every finder after our old place, once.
            sys.meta_path.remove(self)
            sys.meta_path.insert(0, self)
        self._catch_up()

    def _catch_up(self) -> None:
        for name, callbacks in list(self._callbacks.items()):
            module = sys.modules.get(name)
            if module is None or not _fully_initialised(module):
                continue
            for callback in callbacks:
                if self._ran.get((name, callback)) != id(module):
                    self._run(callback, module)

    def uninstall(self) -> None:
        with self._lock:
            if self in sys.meta_path:
                sys.meta_path.remove(self)

    @property
    def installed(self) -> bool:
        return self in sys.meta_path

    # --- callbacks ----------------------------------------------------------------------------
    def register(self, module_name: str, callback: Callback, *, run_now: bool = True) -> None:
        """Call ``callback(module)`` each time ``module_name`` finishes executing (import or reload).

        If the module is already imported (and finished executing), the callback runs now as well.
        Registering the same callback twice is a no-op.
        """
        with self._lock:
            current = self._callbacks.get(module_name, ())
            if callback in current:
                return
            new = dict(self._callbacks)
            new[module_name] = (*current, callback)
            self._callbacks = new
        if run_now:
            module = sys.modules.get(module_name)
            if module is not None and _fully_initialised(module):
                self._run(callback, module)
        if sys.meta_path and sys.meta_path[0] is not self:
            self._retake_first_place()

    def unregister(self, module_name: str, callback: Callback) -> None:
        with self._lock:
            current = self._callbacks.get(module_name, ())
            if callback not in current:
                return
            new = dict(self._callbacks)
            remaining = tuple(c for c in current if c is not callback and c != callback)
            if remaining:
                new[module_name] = remaining
            else:
                new.pop(module_name, None)
            self._callbacks = new
            self._ran = {k: v for k, v in self._ran.items() if k != (module_name, callback)}

    def watched(self) -> list[str]:
        return sorted(self._callbacks)

    # --- the finder protocol ------------------------------------------------------------------
    def find_spec(self, fullname: str, path=None, target=None):
        meta_path = sys.meta_path
        if meta_path and meta_path[0] is not self:  # a finder was inserted ahead of us
            self._retake_first_place()
        if fullname not in self._callbacks:  # the fast path for every unrelated import
            return None
        busy = self._local.__dict__.setdefault("busy", set())
        if fullname in busy:  # a finder below us looked the same name up again
            return None
        busy.add(fullname)
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if (
                    find is None
                ):  # legacy finders (find_module only) are not consulted: gone in 3.12
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            busy.discard(fullname)
        if spec is None:
            return None
        loader = spec.loader
        if loader is None and spec.submodule_search_locations is not None:
            loader = _namespace_loader(spec)  # a namespace package: no loader of its own
        if loader is None or isinstance(loader, _WatchdogLoader):
            return spec
        if not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _WatchdogLoader(loader, self)
        return spec

    # --- running callbacks --------------------------------------------------------------------
    def _module_executed(self, module: ModuleType) -> None:
        name = getattr(module, "__name__", None)
        for callback in self._callbacks.get(name, ()):
            self._run(callback, module)

    def _run(self, callback: Callback, module: ModuleType) -> None:
        self._ran[(module.__name__, callback)] = id(module)
        try:
            callback(module)
        except Exception:
            # Never propagate into the host's import; log each failing callback once.
            key = (module.__name__, id(callback))
            if key not in self._failed:
                self._failed.add(key)
                message = (
                    f"import hook {getattr(callback, '__qualname__', callback)!r} for module "
                    f"{module.__name__} failed; the module is imported unpatched"
                )
                if self.report_error is not None:  # the activation layer's logger (one prefix)
                    self.report_error(message)
                else:  # only on this error path: start-up stays cheap
                    import logging

                    logging.getLogger("profilemate").warning(message, exc_info=True)


_watchdog: ModuleWatchdog | None = None
_singleton_lock = _thread.allocate_lock()


def get_watchdog() -> ModuleWatchdog:
    """The process-wide watchdog (created on first use; not installed until ``install()``)."""
    global _watchdog
    with _singleton_lock:
        if _watchdog is None:
            _watchdog = ModuleWatchdog()
        return _watchdog
