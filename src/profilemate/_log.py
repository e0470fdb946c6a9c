"""The ``profilemate`` logger: one start-up line per process by default, verbose with PROFILEMATE_LOG=debug.

``logging`` is imported on first use, not at start-up: with PROFILEMATE=1 every Python process runs the
start-up hook, and most of them (tokenizer helpers, compilers, pip) never log anything.
"""

from __future__ import annotations

import os
import sys

LOGGER_NAME = "profilemate"
# Every line ProfileMate's Python layer writes to stderr starts with "[profilemate <pid>] " (the C++
# core's lines too); the CLI's own user-facing output is the exception.
PREFIX_FORMAT = "[profilemate %(process)d] "
_configured = False
_noticed: set[str] = set()


class _LazyLogger:
    """Forwards to ``logging.getLogger("profilemate")``, importing logging at the first call."""

    __slots__ = ()

    def __getattr__(self, name):
        import logging

        return getattr(logging.getLogger(LOGGER_NAME), name)


log = _LazyLogger()


def configure(level_name: str | None = "info") -> None:
    """Give the logger a stderr handler of its own, once per process; set its level unless None.

    ``propagate`` is off so that vLLM's (or the user's) root handlers do not print every line twice;
    a user who wants our lines elsewhere attaches a handler to ``logging.getLogger("profilemate")``.
    """
    global _configured
    import logging

    logger = logging.getLogger(LOGGER_NAME)
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
    if level_name is not None:
        logger.setLevel(levels.get(level_name, logging.INFO))
    if _configured:
        return
    _configured = True
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PREFIX_FORMAT + "%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def prefix() -> str:
    """The prefix of every line: ``[profilemate <pid>] ``."""
    return PREFIX_FORMAT % {"process": os.getpid()}


def notice(message: str) -> None:
    """A line the user must see even when logging is not configured yet (config errors, aliases)."""
    try:
        sys.stderr.write(f"{prefix()}{message}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must never break the host
        pass


def notice_once(message: str) -> None:
    """:func:`notice`, unless this process printed the same line already (several activation paths
    may meet the same malformed setting)."""
    if message in _noticed:
        return
    _noticed.add(message)
    notice(message)
