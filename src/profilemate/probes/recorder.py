"""The probes' only door to the C++ core (``profilemate._core``, see docs/CORE_API.md).

Tables and strings are declared once and cached here, so wrappers carry ids only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CoreRecorder:
    def __init__(self, core) -> None:
        self._core = core
        self._tables: dict[str, int] = {}
        self._strings: dict[str, int] = {}
        self._lock = threading.Lock()
        # For hooks that record more than their own row (the lifecycle probes do).
        self.now_ns = core.now_ns
        self.current_step = core.current_step
        self.span = core.record_span
        self.instant = core.record_instant
        # timed(..., table=NO_ROW): the wrapper records no row; its hooks record theirs.
        self.NO_ROW = getattr(core, "NO_ROW", 0xFFFFFFFF)
        self._row = core.record_row
        self._rows = core.record_rows

    def table(self, table) -> int:
        """The id of a ``spec.Table`` (defined in the core on first use)."""
        tid = self._tables.get(table.name)
        if tid is None:
            with self._lock:
                tid = self._tables.get(table.name)
                if tid is None:
                    tid = self._core.define_table(table.name, table.core_columns())
                    self._tables[table.name] = tid
        return tid

    def intern(self, s: str) -> int:
        sid = self._strings.get(s)
        if sid is None:
            sid = self._core.intern(s)
            self._strings[s] = sid
        return sid

    def row(
        self,
        table: int,
        name: int,
        step: int,
        values,
        ts_ns: int = 0,
        dur_ns: int = 0,
        ctx_id: int = 0,
        text: str | None = None,
    ) -> None:
        """One row of up to 16 values (tuple/list, None = NaN) and an optional text (the `text`
        column: a request id, never interned) with one C++ call; ts_ns 0 = now."""
        self._row(table, name, ts_ns, dur_ns, step, ctx_id, values, text)

    def rows(
        self, table: int, name: int, step: int, ncols: int, flat_values, ts_ns: int = 0
    ) -> int:
        """``len(flat_values) // ncols`` rows in ONE C++ call (the loop is in C++)."""
        return self._rows(table, name, ts_ns, step, ncols, flat_values)

    def timed(self, fn: Callable, table: int, name: int, ctx: int = 0, **hooks) -> Callable:
        """``_core.timed``: before/after/sets_step/on_error as keywords."""
        return self._core.timed(fn, table, name, ctx, **hooks)
