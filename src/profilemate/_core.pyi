"""ProfileMate's C++ core: rings, collector, CSV/trace/summary writers."""

from collections.abc import Callable, Sequence
import types


def version() -> str:
    """The package version."""

def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (the clock of every event)."""

def start(session_dir: str, label: str, *, ring_capacity: int = 65536, flush_interval_ms: int = 100, trace: bool = True, session_start_ns: int = 0) -> str:
    """
    Create <session_dir>/<label>-<pid>/, start the collector; returns the process dir.
    """

RING_CAPACITY_DEFAULT: int = 65536

RING_CAPACITY_MIN: int = 64

RING_CAPACITY_MAX: int = 16777216

FLUSH_INTERVAL_MS_DEFAULT: int = 100

FLUSH_INTERVAL_MS_MIN: int = 1

FLUSH_INTERVAL_MS_MAX: int = 1000

TRACE_DEFAULT: bool = True

def relabel(label: str) -> str:
    """
    Move this process's session to <session_dir>/<label>-<pid>/ (a forked child's own role): created now; a session already writing under another label is stopped first. Returns the process dir.
    """

def stop() -> None:
    """
    Drain, write the remaining rows and summary.json, close the trace. Idempotent.
    """

def flush() -> None:
    """Return once everything recorded before the call is written."""

def enabled() -> bool:
    """True while the core records."""

def process_dir() -> str:
    """The process dir of the running session, or ''."""

def define_table(name: str, columns: Sequence[tuple[str, str]]) -> int:
    """Declare <process dir>/<name>.csv; columns are (header, source) pairs."""

def intern(s: str) -> int:
    """A stable id (> 0) for a string; 0 is ''."""

def record_span(table: int, name: int, start_ns: int, dur_ns: int, step: int = -1, ctx: int = 0, a0: float = 0.0, a1: float = 0.0, a2: float = 0.0, a3: float = 0.0) -> None:
    """Record a complete span."""

def record_instant(table: int, name: int, ts_ns: int, step: int = -1, ctx: int = 0, a0: float = 0.0, a1: float = 0.0, a2: float = 0.0, a3: float = 0.0) -> None:
    """Record an instant event."""

def record_row(table: int, name: int, ts_ns: int, dur_ns: int, step: int, ctx: int, values: object, text: object | None = None) -> None:
    """
    Record one row of up to 16 values (a tuple or list; None = NaN) as a0..a15, and an optional text (the 'text' column, at most 112 UTF-8 bytes, e.g. a request id; it travels inside the row, never through the interner); ts_ns 0 = now; dur_ns > 0 records a span, else an instant.
    """

def record_rows(table: int, name: int, ts_ns: int, step: int, ncols: int, values: object, ctx: int = 0) -> int:
    """
    Record len(values) // ncols instant rows (values flat, row after row; ncols 1..16) in one call; ts_ns 0 = now. Returns the number of rows recorded.
    """

def count_zero(values: object) -> int:
    """
    How many items of a tuple or list equal 0: a per-request count (e.g. requests with no output token yet) taken without a Python loop over the batch.
    """

def record_counter(table: int, name: int, ts_ns: int, value: float, step: int = -1, ctx: int = 0) -> None:
    """Record a counter sample (value lands in a0)."""

def set_step(step: int) -> None:
    """Set the process's current engine step."""

def current_step() -> int:
    """The process's current engine step (-1 = none)."""

def timed(fn: object, table: int, name: int, ctx: int = 0, *, before: object | None = None, after: object | None = None, params: object | None = None, sets_step: bool = False, on_error: object | None = None) -> object:
    """
    Wrap fn: run before(*p), call fn exactly once, run after(result, *p), record a span (table, name, start, duration, step, ctx, hook values as a0..a3); p = the call's arguments named by params, (position, name, default) triples. A hook that raises is switched off and reported once (on_error(exc)).
    """

class TimedCallable:
    """
    A callable that calls the wrapped function exactly once, runs the probe's hooks around it and records a span (see profilemate._core.timed).
    """

    def __repr__(self, /):
        """Return repr(self)."""

    def __call__(self, /, *args, **kwargs):
        """Call self as a function."""

    def __get__(self, instance, owner=None, /):
        """Return an attribute of instance, which is of type owner."""

    __reduce__: types.MethodDescriptorType = ...

    hooks_live: types.MemberDescriptorType = ...

    hook_errors: types.MemberDescriptorType = ...

    __wrapped__: Callable[..., object]

NO_ROW: int = 4294967295

def gpu_timer_open(library: str = 'libcuda.so.1', pairs: int = 1024) -> str:
    """
    Load the device driver at run time and prepare a pool of event pairs; '' when enabled, else the reason it stays disabled.
    """

def gpu_timer_begin(stream: int) -> int:
    """
    Record a pair's start event on the raw stream; the pair id, or -1 (no device time).
    """

def gpu_timer_end(pair: int, stream: int, table: int, name: int, step: int, ctx: int, ts_ns: int, dur_ns: int, values: Sequence[float], gpu_slot: int) -> None:
    """
    Record the pair's end event and park the row; the collector writes it with the device milliseconds in values[gpu_slot] once the device is past it. pair -1: written now, NaN.
    """

def gpu_timer_poll(final: bool = False) -> int:
    """
    Write the rows whose device work finished (the collector does this every cycle).
    """

def gpu_timer_stats() -> dict:
    """The device timer's state and counters."""

class IdClock:
    """
    Birth/release/reuse stamps of numbered slots (arrays sized by reserve); acquire() of a slot whose mark attribute is not None records an eviction row (id, lifetime s, idle s, reuses).
    """

    def __init__(self, table: int, name: int, id_attr: str, mark_attr: str) -> None: ...

    def reserve(self, n: int) -> None:
        """Size the arrays for ids [0, n)."""

    def acquire(self, objs: object) -> int:
        """
        Slots handed out now (list/tuple); returns how many were evicted (rows recorded).
        """

    def reuse(self, objs: object) -> int:
        """Slots hit again; returns how many were parked (evictable) until now."""

    def release(self, objs: object) -> int:
        """
        Slots released; returns how many were parked (released with their mark).
        """

    def clear_marks(self) -> int:
        """
        Every parked slot loses its mark (bulk clear, no rows); returns how many were parked.
        """

    @property
    def parked(self) -> int: ...

    @property
    def evicted(self) -> int: ...

    @property
    def overflow(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def unsupported(self) -> int: ...

def report(folders: Sequence[str], out_dir: str = '') -> tuple[str, str, list[str], int, int]:
    """
    Report the session folders as one: writes summary.txt, summary.json and report.html to out_dir ('' = <first session>/report). Returns (out_dir, summary text, warnings, tables read, rows read); a file that cannot be read is a warning, an output folder that cannot be written an OSError.
    """

def stats() -> dict:
    """Counters as of the last drain cycle."""
