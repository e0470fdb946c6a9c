"""Is this process vLLM, and which vLLM process is it (the label of its output folder)?

Activation is lazy: a process is treated as vLLM when a ``vllm`` module is actually imported, which
covers the ``vllm`` CLI, ``python -m vllm...``, a script using ``vllm.LLM`` and vLLM's spawned
children alike. The argv check below only names *why* (metadata.json, ``profilemate doctor``).
"""

from __future__ import annotations

import os
import re
import sys

_ENGINE = re.compile(r"EngineCore(?:_DP(\d+))?")
_WORKER = re.compile(r"VllmWorker-(\d+)")


def command_line() -> list[str]:
    # sys.argv does not exist yet while site runs .pth files; sys.orig_argv (3.10+) does.
    argv = getattr(sys, "argv", None)
    if argv:
        return list(argv)
    return list(getattr(sys, "orig_argv", [])[1:])


def argv_says_vllm(argv: list[str] | None = None) -> str | None:
    """'vllm CLI' / 'python -m vllm...' / None, from the interpreter's command line."""
    mod = main_module(argv)
    if mod is not None:
        return "python -m vllm" if mod.split(".")[0] == "vllm" else None
    orig = list(getattr(sys, "orig_argv", []) if argv is None else argv)
    i = 1
    while i < len(orig):
        a = orig[i]
        if a == "-c" or a == "-":
            return None
        if a in ("-X", "-W", "--check-hash-based-pycs"):
            i += 2
            continue
        if not a.startswith("-"):
            return "vllm CLI" if os.path.basename(a) == "vllm" else None
        i += 1
    return None


def main_module(argv: list[str] | None = None) -> str | None:
    """The module run with ``python -m <module>``, or None."""
    orig = list(getattr(sys, "orig_argv", []) if argv is None else argv)
    i = 1  # orig_argv[0] is the interpreter
    while i < len(orig):
        a = orig[i]
        if a == "-c" or a == "-":
            return None
        if a in ("-X", "-W", "--check-hash-based-pycs"):  # options that take a value
            i += 2
            continue
        if a == "-m" or (a.startswith("-m") and len(a) > 2):
            return orig[i + 1] if a == "-m" and i + 1 < len(orig) else a[2:] or None
        if not a.startswith("-"):
            return None
        i += 1
    return None


def process_role(name: str | None = None, hint: str | None = None) -> str:
    """api, enginecore[-dp<n>], worker-<rank>, or the process's own name made folder-safe.

    vLLM 0.32.0 names its processes: ``EngineCore`` / ``EngineCore_DP<n>`` (v1/engine/utils.py) and
    ``VllmWorker-<rank>`` (v1/executor/multiproc_executor.py). Under spawn, multiprocessing sets the
    child's name before it unpickles anything, so by the time vLLM is imported the name is right.
    ``hint`` comes from the vLLM plugin, which knows where vLLM called it from (Ray workers are
    processes of their own whose multiprocessing name is just MainProcess).
    """
    if name is None:
        import multiprocessing

        name = multiprocessing.current_process().name
    m = _ENGINE.fullmatch(name)
    if m:
        return "enginecore" if m.group(1) is None else f"enginecore-dp{m.group(1)}"
    m = _WORKER.fullmatch(name)
    if m:
        return f"worker-{m.group(1)}"
    if name == "MainProcess":
        if hint:
            return hint
        # vLLM runs helpers as `python -m vllm.<module>` (0.32.0: the model registry inspects
        # architectures in `python -m vllm.model_executor.models.registry` when its cache is
        # cold); they are not the API process. Entry points (vllm.entrypoints.*) are.
        mod = main_module()
        if mod and mod.startswith("vllm.") and not mod.startswith("vllm.entrypoints"):
            return "helper-" + mod.rsplit(".", 1)[-1].replace("_", "-")
        return "api"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "proc"
