"""The probes' only door to the C++ core (``profilemate._core``, see docs/CORE_API.md).

Tables and strings are declared once and cached here, so probe code on the hot path passes ids only.
Tests substitute an object with the same methods to exercise the registry without the core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from profilemate.probes.tables import TABLES


class CoreRecorder:
    def __init__(self, core) -> None:
        self._core = core
        self._tables: dict[str, int] = {}
        self._strings: dict[str, int] = {}
        self._lock = threading.Lock()
        # Bound once: these run per engine step.
        self.now_ns = core.now_ns
        self.set_step = core.set_step
        self.current_step = core.current_step
        self.span = core.record_span
        self.instant = core.record_instant
        self.counter = core.record_counter

    def table(self, name: str) -> int:
        tid = self._tables.get(name)
        if tid is None:
            with self._lock:
                tid = self._tables.get(name)
                if tid is None:
                    tid = self._core.define_table(name, list(TABLES[name]))
                    self._tables[name] = tid
        return tid

    def intern(self, s: str) -> int:
        sid = self._strings.get(s)
        if sid is None:
            sid = self._core.intern(s)
            self._strings[s] = sid
        return sid

    def timed(self, fn: Callable, table: int, name: int, ctx: int = 0) -> Callable:
        return self._core.timed(fn, table, name, ctx)
