"""Probes: one module per category under ``profilemate.probes.categories``, discovered by name.

This module stays light (no import of the categories, ``dataclasses`` or ``inspect`` until a
category is asked for): ``config`` lists the category names at every profiled interpreter start to
validate ``PROFILEMATE_PROBES``.

A category module declares ``TABLES`` and ``TARGETS`` (see ``profilemate.probes.spec``). Adding one
is adding a file; :func:`register_category` adds one from elsewhere (a test, a plugin).
"""

from __future__ import annotations

import os

_PACKAGE = __name__ + ".categories"
_DIR = os.path.join(os.path.dirname(__file__), "categories")
_EXTRA: dict = {}  # name -> module, added by register_category


def category_names() -> tuple[str, ...]:
    """Every category, sorted: the modules in categories/ plus the registered ones."""
    try:
        found = {f[:-3] for f in os.listdir(_DIR) if f.endswith(".py") and not f.startswith("_")}
    except OSError:
        found = set()
    return tuple(sorted(found | set(_EXTRA)))


def load_category(name: str):
    """The category's module, with every target's ``category`` set to its name."""
    module = _EXTRA.get(name)
    if module is None:
        if name not in category_names():
            raise KeyError(f"no probe category {name!r} (known: {', '.join(category_names())})")
        import importlib

        module = importlib.import_module(f"{_PACKAGE}.{name}")
    for t in module.TARGETS:
        if t.category != name:
            object.__setattr__(t, "category", name)
    return module


def register_category(module, name: str | None = None) -> str:
    """Add a category from a module that is not in categories/ (tests, plugins). Returns its name."""
    name = name or module.__name__.rsplit(".", 1)[-1]
    for attr in ("TABLES", "TARGETS"):
        if not hasattr(module, attr):
            raise TypeError(f"category module {module.__name__} lacks {attr}")
    _EXTRA[name] = module
    return name


def unregister_category(name: str) -> None:
    _EXTRA.pop(name, None)


def targets_for(names) -> list:
    out: list = []
    for name in names:
        out.extend(load_category(name).TARGETS)
    return out


def all_targets() -> list:
    return targets_for(category_names())


def tables_for(names) -> list:
    out: list = []
    for name in names:
        out.extend(load_category(name).TABLES)
    return out
