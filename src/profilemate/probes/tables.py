"""The CSV tables probes write, as ``(header, source)`` columns for ``_core.define_table``.

File names and the seed's column names are kept (docs/OUTPUTS.md); ``step_id`` is new: the same
engine step number in every table and process of one engine, so tables join.
"""

from __future__ import annotations

CPU_OPERATIONS = "cpu_operations_timing"

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    CPU_OPERATIONS: (
        ("timestamp_sec", "ts_sec"),
        ("step_id", "step"),
        ("operation", "name"),
        ("duration_ms", "dur_ms"),
        ("context", "ctx"),
        # Tokens scheduled in the step, for the per-step spans (schedule, execute_model); 0 for
        # per-request operations. Lets a reader tell an empty step (vLLM runs one to retire
        # finished requests) from a real one, and check totals against vLLM's own counters.
        ("num_tokens", "a0"),
    ),
}
