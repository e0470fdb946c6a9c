"""Probes: one module per category, each a table of :class:`~profilemate.probes.registry.Target`."""

from __future__ import annotations

from profilemate.probes import cpu_ops
from profilemate.probes.registry import Target

CATEGORY_TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu_ops": cpu_ops.TARGETS,
}


def targets_for(categories) -> list[Target]:
    out: list[Target] = []
    for c in categories:
        out.extend(CATEGORY_TARGETS[c])
    return out


def all_targets() -> list[Target]:
    return targets_for(CATEGORY_TARGETS)
