"""Probe categories: one module each, discovered by name (``profilemate.probes.category_names``).

Each module declares ``TABLES`` and ``TARGETS`` (``profilemate.probes.spec``) and its hook
functions; nothing else in the package lists it.
"""
