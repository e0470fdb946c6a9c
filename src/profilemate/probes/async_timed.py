"""Timing a coroutine function: an ``async def`` wrapper that spans the whole await.

The C++ ``_core.timed`` wrapper is synchronous: around ``async def f`` it would time only the
creation of the coroutine object. The server's rendering path in vLLM 0.32.0 is coroutines
(``BaseRenderer.render_cmpl_async``, ``render_chat_async``, ``tokenize_prompts_async``,
``OnlineRenderer.render_chat``), so the registry wraps a coroutine function with this instead: the
core's clock (``_core.now_ns``, CLOCK_MONOTONIC) is read when the coroutine starts running and again
when its ``await`` completes (returned, raised or was cancelled), and one row is recorded with one
core call (``recorder.row``). The span therefore includes the time the coroutine was suspended
(waiting for the tokenizer's thread pool, for other tasks on the event loop): it is the latency of
the operation as its caller sees it, not CPU time.

Hooks are not supported on coroutine targets (the registry skips such a target with the reason):
timing only. The wrapper never raises into the host: a failure to record is reported once through
``on_error`` and recording stops for this wrapper; vLLM's own result or exception passes untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


def timed_async(
    fn: Callable,
    recorder,
    table: int,
    name: int,
    ctx: int = 0,
    *,
    on_error: Callable[[BaseException], None] | None = None,
) -> Callable:
    now_ns = recorder.now_ns
    current_step = recorder.current_step
    row = recorder.row
    live = True

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        nonlocal live
        t0 = now_ns()
        try:
            return await fn(*args, **kwargs)
        finally:
            if live:
                try:
                    t1 = now_ns()
                    row(
                        table,
                        name,
                        current_step(),
                        (),
                        ts_ns=t0,
                        dur_ns=max(t1 - t0, 1),
                        ctx_id=ctx,
                    )
                except Exception as e:  # never into the host: report once, stop recording
                    live = False
                    if on_error is not None:
                        try:
                            on_error(e)
                        except Exception:
                            pass

    return wrapper
