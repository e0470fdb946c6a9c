"""A probe category that exists only in the tests: it proves a category is one file.

Nothing in the package lists this module; test_probe_framework.py registers it with
``profilemate.probes.register_category`` and runs it through the real registry and core.
"""

from __future__ import annotations

from profilemate.probes.spec import Column, Hooks, Table, Target

SITE_MODULE = "pm_test_category_target"  # the stand-in for a vLLM module, written by the test

QUEUE = Table(
    "test_queue_depth",
    (
        Column("timestamp_sec", "ts_sec", "s"),
        Column("step_id", "step"),
        Column("depth", "a0", "requests"),
        Column("duration_ms", "dur_ms", "ms"),
    ),
    doc="test only",
)
TABLES = (QUEUE,)


def queue_hooks(ctx) -> Hooks:
    def after(result, self):
        return len(self.queue)

    return Hooks(after=after)


TARGETS = (Target(f"{SITE_MODULE}:Engine.step", "step", QUEUE, hooks=queue_hooks),)
