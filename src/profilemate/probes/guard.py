"""Never break the host: guarded Python wrappers and the probe's self-disabling switch.

A probe's own code (``before`` / ``after``) runs inside ``try``; its first exception is counted,
logged once with a traceback, and switches that probe off -- from then on the wrapper is a plain
pass-through. The wrapped vLLM callable runs exactly once per call in every case and its result or
exception reaches the caller untouched.

``PROFILEMATE_FAULT_INJECT=1`` (tests only) makes every probe's own code raise
``FaultInjected`` on entry, to prove the above end to end.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("profilemate")

WRAPPER_MARK = "__profilemate_probe__"

_fault_inject = False


def set_fault_injection(on: bool) -> None:
    global _fault_inject
    _fault_inject = bool(on)


def fault_injection() -> bool:
    return _fault_inject


class FaultInjected(RuntimeError):
    """Raised by probe code when PROFILEMATE_FAULT_INJECT=1."""


class ProbeState:
    """Runtime health of one target's probe code."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.active = True
        self.errors = 0
        self.first_error: str | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            first = self.first_error is None
            if first:
                self.first_error = f"{type(exc).__name__}: {exc}"
            self.active = False
        if first:
            log.warning(
                "probe %s raised %s and is switched off for this process; vLLM is unaffected",
                self.key,
                self.first_error,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def check_fault(self) -> None:
        if _fault_inject:
            raise FaultInjected(f"fault injected into probe {self.key}")

    def as_dict(self) -> dict:
        return {"active": self.active, "errors": self.errors, "first_error": self.first_error}


Before = Callable[[tuple, dict], Any]
After = Callable[[Any, Any, BaseException | None], None]


def guarded(original: Callable, probe: ProbeState, before: Before, after: After) -> Callable:
    """Wrap ``original``: ``state = before(args, kwargs)``, call, ``after(state, result, exc)``."""

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if not probe.active:
            return original(*args, **kwargs)
        try:
            probe.check_fault()
            state = before(args, kwargs)
        except Exception as e:
            probe.fail(e)
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            try:
                after(state, None, exc)
            except Exception as e:
                probe.fail(e)
            raise
        try:
            probe.check_fault()
            after(state, result, None)
        except Exception as e:
            probe.fail(e)
        return result

    setattr(wrapper, WRAPPER_MARK, probe.key)
    return wrapper


class ArgReader:
    """Reads one argument of a call *by name*: vLLM signatures move, positions are not trusted.

    The parameter's position is resolved once from ``inspect.signature`` at patch time, so a call
    costs a dict lookup and a tuple index instead of ``Signature.bind``.
    """

    def __init__(self, func: Callable, name: str) -> None:
        params = list(inspect.signature(func).parameters.values())
        self.name = name
        self.index: int | None = None
        for i, p in enumerate(params):
            if p.name == name:
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                    self.index = i
                break
        else:
            raise LookupError(f"{getattr(func, '__qualname__', func)} has no parameter {name!r}")

    def get(self, args: tuple, kwargs: dict, default=None):
        if self.name in kwargs:
            return kwargs[self.name]
        if self.index is not None and self.index < len(args):
            return args[self.index]
        return default
