"""Lifecycle: every process writes its last rows and its final ``summary.json`` before vLLM ends it.

Writes ``lifecycle.csv`` (a few rows per process). Why it exists: vLLM 0.32.0's API server stops
its engine with a 0 s timeout, so the EngineCore and its workers are SIGKILLed before they reach
their interpreter exit, where ProfileMate would otherwise write its final files.

What vLLM 0.32.0 does on Ctrl-C of ``python -m vllm.entrypoints.openai.api_server`` (SIGINT to the
whole process group), in order (paths under ``vllm/``):

API process
  1. ``entrypoints/launchers/launcher.py:251-261`` ``serve_http``'s loop signal handler (SIGINT and
     SIGTERM) sets ``shutdown_event``; ``handle_shutdown`` (:263-287) reads
     ``vllm_config.shutdown_timeout`` (default 0, ``config/vllm.py:443``; mode "abort") and runs
     ``engine_client.shutdown(timeout=0)`` in a thread (:276).
  2. ``v1/engine/async_llm.py:296`` ``AsyncLLM.shutdown`` -> ``v1/engine/core_client.py:766``
     ``MPClient.shutdown`` -> ``v1/engine/utils.py:335`` ``CoreEngineProcManager.shutdown`` ->
     ``v1/utils.py:605`` ``shutdown(procs, timeout=0)``: SIGTERM to each EngineCore (:626-631),
     no wait (the deadline has passed, :634-640), then ``kill_process_tree`` (:658,
     ``utils/system_utils.py:207``): SIGKILL to the EngineCore's children (the workers) and to it.
  3. Then uvicorn stops, ``build_async_engine_client_from_engine_args`` calls ``shutdown`` again
     (a no-op, ``entrypoints/launchers/api_server/entry.py:113``) and the interpreter exits
     normally: atexit runs, the API process's own files are complete.

EngineCore process (``v1/engine/core.py``)
  4. ``run_engine_core``'s signal handler (:1451-1470, SIGINT and SIGTERM) marks the shutdown as
     requested and wakes the busy loop; ``_handle_shutdown`` (:1626-1672) aborts the unfinished
     requests (timeout 0) and ``run_busy_loop`` (:1547-1558) raises ``SystemExit``. No step runs after.
  5. ``finally`` (:1515-1521): SIGTERM and SIGINT back to ``SIG_DFL`` (any further one kills the
     process outright), then ``EngineCore.shutdown`` (:824): executor shutdown (closes the workers'
     death pipes and waits up to ``VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS``, ``v1/executor/
     multiproc_executor.py:509``), scheduler shutdown, distributed teardown; then interpreter exit.

Worker process (``v1/executor/multiproc_executor.py``)
  6. ``worker_main``'s handler (:871-882) raises ``SystemExit`` once on the first SIGINT/SIGTERM
     (later ones are ignored); without a signal the worker learns it from its death pipe (EOF when
     the EngineCore closes it or dies, :834-857). ``finally`` (:978-985) calls
     ``WorkerProc.shutdown`` (:823), then the interpreter exits.

Step 2 reaches the SIGKILL within milliseconds of the signal; steps 4-6 are racing it and lose:
the EngineCore and worker folders had no ``summary.json``, and their last rows were lost.
(``vllm serve`` runs the same ``serve_http``; a SIGTERM to the API process alone, as ``kill`` or
``docker stop`` send, takes the same path except that the EngineCore learns of it only from step
2's SIGTERM and the workers from their death pipe.)

What this category hooks:
  * EngineCore: ``EngineCore.shutdown`` (step 5; ``DPEngineCoreProc`` calls it through ``super``).
    Its before hook writes the process's final files (``Runtime.finish``: rows, patch_status.json,
    ``summary.json`` with ``"final": true``) before vLLM's teardown: every step has run by then
    (also in drain mode, where the busy loop steps until the requests are done). A SIGTERM/SIGINT
    arriving while it writes (vLLM's own SIGTERM of step 2 after a Ctrl-C, or a second Ctrl-C) is
    held for those milliseconds and then delivered as vLLM left it (``SIG_DFL``: the process ends).
  * Worker: ``WorkerProc.shutdown`` (step 6), the same, without holding signals (vLLM's handler
    stays in place and ignores repeats).
  * API: ``v1/utils.py: shutdown(procs, timeout)`` (step 2). When vLLM's grace is shorter than
    ``ENOUGH_GRACE_S`` (0 s by default) the before hook sends the SIGTERM vLLM is about to send
    (``proc.terminate()``, so a ``kill`` of the API process alone also reaches the EngineCore) and
    waits until every profiled process of those process trees has written its final
    ``summary.json`` or is gone, at most ``FLUSH_WAIT_S``; then vLLM goes on exactly as before
    (SIGTERM, SIGKILL). The wait is ``flush_wait`` in the API's ``lifecycle.csv``. With a longer
    grace (e.g. ``--shutdown-timeout 5``, or the offline ``LLM``'s 5 s at exit) vLLM's own wait
    lets the processes reach the hooks above, and this hook does nothing.
The EngineCore and worker hooks act only in processes labelled ``enginecore``/``worker``: with
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` the EngineCore lives in the user's process, which goes on
after the engine's shutdown, and keeps profiling.
"""

from __future__ import annotations

import json
import logging
import os
import time

from profilemate.probes.spec import API, ENGINECORE, WORKER, Column, Hooks, Table, Target

log = logging.getLogger("profilemate")

# vLLM's grace (its `timeout`) from which its own wait lets the processes finish their files.
ENOUGH_GRACE_S = 1.0
# The longest the API process waits for its engine processes' final files.
FLUSH_WAIT_S = 2.0
POLL_S = 0.005

LIFECYCLE = Table(
    "lifecycle",
    (
        Column(
            "timestamp_sec", "ts_sec", "s", "event or span start, seconds since the session start"
        ),
        Column("step_id", "step", "", "the process's last engine step (final_flush)"),
        Column("operation", "name", "", "final_flush, flush_wait or stop_processes"),
        Column("duration_ms", "dur_ms", "ms", "span duration; 0 for final_flush"),
        Column("processes", "a0", "processes", "processes concerned (flush_wait, stop_processes)"),
        Column(
            "unfinished", "a1", "processes", "flush_wait: processes still unfinished at its end"
        ),
        Column("context", "ctx", "", "the vLLM function the row belongs to"),
    ),
    doc="when each process wrote its final files, and what the API waited for",
)
TABLES = (LIFECYCLE,)


def _runtime():
    from profilemate.activation import runtime

    return runtime.get()


def _final_flush_hooks(role: str, hold_signals: bool):
    """Before vLLM tears this process down: its final files, now (only in a process of ``role``)."""

    def factory(ctx) -> Hooks:
        def before():
            rt = _runtime()
            if not (rt.label or "").startswith(role):
                return None
            rec = ctx.recorder
            rec.instant(
                ctx.table_id(LIFECYCLE), ctx.intern("final_flush"), rec.now_ns(),
                rec.current_step(), ctx.intern(ctx.target.site.qualname),
            )  # fmt: skip
            if hold_signals:
                _finish_holding_signals(rt)
            else:
                rt.finish()
            return None

        return Hooks(before)

    return factory


def _drain() -> None:
    """A Python call: CPython runs pending signal handlers on entering it (the eval breaker)."""


def _finish_holding_signals(rt) -> None:
    """``rt.finish()`` with SIGTERM/SIGINT held, then delivered to whatever handler vLLM had set."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        rt.finish()
        return
    caught: list[int] = []
    saved = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is None:  # set outside Python: leave it alone
            continue
        saved[signum] = signal.signal(signum, lambda s, _frame: caught.append(s))
    try:
        rt.finish()
    finally:
        _drain()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])


def _is_final(process_dir: str) -> bool:
    try:
        with open(os.path.join(process_dir, "summary.json"), encoding="utf-8") as f:
            return json.load(f).get("final") is True
    except (OSError, ValueError, AttributeError):
        return False


def _gone(psutil, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _stop_processes_hooks(ctx) -> Hooks:
    def before(procs, timeout):
        procs = list(procs or ())
        grace = 5.0 if timeout is None else timeout  # v1/utils.py: shutdown(): None -> 5 s
        rt = _runtime()
        if grace >= ENOUGH_GRACE_S or not procs or rt.session is None:
            return len(procs)
        import psutil  # a vLLM dependency (utils/system_utils.py: kill_process_tree)

        tree: set[int] = set()
        for p in procs:
            if p.pid is None or not p.is_alive():
                continue
            tree.add(p.pid)
            try:
                tree.update(c.pid for c in psutil.Process(p.pid).children(recursive=True))
            except psutil.Error:
                pass
        waiting: dict[str, int] = {}  # process dir -> pid
        for entry in os.scandir(rt.session.dir):
            pid = entry.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) in tree and entry.is_dir() and not _is_final(entry.path):
                waiting[entry.path] = int(pid)
        total = len(waiting)
        t0 = time.monotonic_ns()
        if waiting:
            for p in procs:  # the SIGTERM vLLM sends next, sent before the wait
                if p.is_alive():
                    p.terminate()
            deadline = time.monotonic() + FLUSH_WAIT_S
            while waiting and time.monotonic() < deadline:
                time.sleep(POLL_S)
                for path, pid in list(waiting.items()):
                    if _is_final(path) or _gone(psutil, pid):
                        del waiting[path]
        # One row per short-grace stop, also when every process had already finished (0 waited for).
        rec = ctx.recorder
        rec.span(
            ctx.table_id(LIFECYCLE), ctx.intern("flush_wait"), t0, time.monotonic_ns() - t0, -1,
            ctx.intern(ctx.target.site.qualname), total, len(waiting),
        )  # fmt: skip
        if waiting:
            log.warning(
                "shutdown: %d profiled process(es) did not write their final files within %.1f s: %s",
                len(waiting), FLUSH_WAIT_S, ", ".join(os.path.basename(p) for p in waiting),
            )  # fmt: skip
        return len(procs)

    return Hooks(before)


TARGETS = (
    # API process: vLLM terminates, then (after `timeout`) SIGKILLs its engine processes here.
    # Modules that `from vllm.v1.utils import shutdown` (v1/engine/utils.py, coordinator.py) get the
    # wrapper when they import it after this module was patched; rebind covers earlier ones.
    Target(
        "vllm.v1.utils:shutdown", "stop_processes", LIFECYCLE, hooks=_stop_processes_hooks,
        rebind=True, roles=API,
        note="waits (at most FLUSH_WAIT_S) for the engine processes' final files when vLLM gives none",
    ),
    # EngineCore: run_engine_core's `finally` calls it once the busy loop has ended (signals reset).
    Target(
        "vllm.v1.engine.core:EngineCore.shutdown", "engine_shutdown", LIFECYCLE,
        hooks=_final_flush_hooks("enginecore", hold_signals=True), roles=ENGINECORE,
        note="writes the EngineCore's final files before vLLM's teardown",
    ),
    # Worker: worker_main's `finally`, after its busy loop has ended.
    Target(
        "vllm.v1.executor.multiproc_executor:WorkerProc.shutdown", "worker_shutdown", LIFECYCLE,
        hooks=_final_flush_hooks("worker", hold_signals=False), roles=WORKER,
        note="writes the worker's final files before vLLM's teardown",
    ),
)  # fmt: skip
