"""The ``profilemate`` logger: one start-up line per process by default, verbose with PROFILEMATE_LOG=debug.

``logging`` is imported on first use, not at start-up: with PROFILEMATE=1 every Python process runs the
start-up hook, and most of them (tokenizer helpers, compilers, pip) never log anything.
"""

from __future__ import annotations

import os
import sys

LOGGER_NAME = "profilemate"
_configured = False


class _LazyLogger:
    """Forwards to ``logging.getLogger("profilemate")``, importing logging at the first call."""

    __slots__ = ()

    def __getattr__(self, name):
        import logging

        return getattr(logging.getLogger(LOGGER_NAME), name)


log = _LazyLogger()


def configure(level_name: str = "info") -> None:
    """Give the logger a stderr handler of its own, once per process.

    ``propagate`` is off so that vLLM's (or the user's) root handlers do not print every line twice;
    a user who wants our lines elsewhere attaches a handler to ``logging.getLogger("profilemate")``.
    """
    global _configured
    import logging

    logger = logging.getLogger(LOGGER_NAME)
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
    logger.setLevel(levels.get(level_name, logging.INFO))
    if _configured:
        return
    _configured = True
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[profilemate %(process)d] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def notice(message: str) -> None:
    """A line the user must see even when logging is not configured yet (config errors, aliases)."""
    try:
        sys.stderr.write(f"[profilemate {os.getpid()}] {message}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must never break the host
        pass
