"""ProfileMate: a runtime profiler for vLLM.

The package is a thin Python layer over a C++20 core (``profilemate._core``). Usually it activates by
itself (``profilemate run``, ``PROFILEMATE=1``, or the vLLM plugin); the functions below are the
programmatic way in, e.g. from a notebook after ``import vllm``.
"""

from __future__ import annotations

from profilemate._version import __version__

__all__ = ["__version__", "disable", "enable", "flush", "status"]


def enable(
    output_dir: str | None = None,
    *,
    log: str | None = None,
    probes: list[str] | None = None,
    fault_inject: bool | None = None,
) -> str | None:
    """Start profiling this process now; patches what is imported, and the rest as it loads.

    Other settings come from the PROFILEMATE_* environment. Returns this process's output folder,
    or None when profiling could not start (the reason is printed and in ``status()["error"]``).
    Raises ValueError for a malformed argument or PROFILEMATE_* value. Calling it again while
    profiling is a no-op that returns the same folder.
    """
    from profilemate import config
    from profilemate.activation import runtime

    rt = runtime.get()
    if rt.state == runtime.ACTIVE:
        return rt.process_dir
    cfg = config.load()
    changes: dict = {"mode": "force"}
    if output_dir is not None:
        changes["dir"] = str(output_dir)
    if log is not None:
        if log not in config.LOG_LEVELS:
            raise ValueError(f"log={log!r} is not valid (allowed: {', '.join(config.LOG_LEVELS)})")
        changes["log"] = log
    if probes is not None:
        known = config.categories()
        unknown = [p for p in probes if p not in known]
        if unknown or not probes:
            raise ValueError(f"probes={probes!r} is not valid (allowed: {', '.join(known)})")
        changes["probes"] = tuple(probes)
    if fault_inject is not None:
        changes["fault_inject"] = bool(fault_inject)
    cfg = cfg.replace(**changes)
    if rt.state in (runtime.ARMED, runtime.FAILED):
        rt.deactivate()  # re-arm with the explicit settings
    rt.arm(cfg, "enable")
    return rt.process_dir


def disable() -> None:
    """Unpatch every probe, flush and stop recording in this process (idempotent)."""
    from profilemate.activation import runtime

    runtime.get().deactivate()


def status() -> dict:
    """State, folders and every target: applied / pending / skipped (reason) / failed (error)."""
    from profilemate.activation import runtime

    return runtime.get().status()


def flush() -> None:
    """Return once everything recorded so far is in the files (and patch_status.json is current)."""
    from profilemate.activation import runtime

    runtime.get().flush()
