"""Coroutine targets: the registry wraps them with the async wrapper (probes/async_timed.py), which
records one row per call spanning the whole await, through the real core."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import os
import sys
import textwrap
import uuid

import pytest
from test_core_readers import read_csv

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import APPLIED, SKIPPED, Registry
from profilemate.probes.spec import Column, Hooks, Table, Target

SRC = """
    import asyncio

    MARKS = []

    class Renderer:
        async def render(self, n, now):
            MARKS.append(("start", now()))
            for _ in range(n):
                await asyncio.sleep(0)
            MARKS.append(("end", now()))
            return n * 2

        async def fails(self):
            await asyncio.sleep(0)
            raise KeyError("vLLM's own error")

        async def hangs(self):
            await asyncio.Event().wait()

        async def hooked(self, x):
            return x

        def gen(self):
            yield 1
"""

T = Table(
    "async_ops",
    (
        Column("timestamp_sec", "ts_sec", "s"),
        Column("step_id", "step", ""),
        Column("operation", "name", ""),
        Column("duration_ms", "dur_ms", "ms"),
        Column("context", "ctx", ""),
    ),
)


@pytest.fixture
def env(tmp_path, monkeypatch):
    name = f"pm_async_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    wd = ModuleWatchdog()
    wd.install()
    m = importlib.import_module(name)
    d = _core.start(str(tmp_path / "s"), "registry", flush_interval_ms=20)
    targets = [
        Target(f"{name}:Renderer.render", "render", T),
        Target(f"{name}:Renderer.fails", "fails", T),
        Target(f"{name}:Renderer.hangs", "hangs", T),
        Target(f"{name}:Renderer.hooked", "hooked", T, hooks=lambda ctx: Hooks(lambda x: x)),
        Target(f"{name}:Renderer.gen", "gen", T),
    ]
    reg = Registry(targets, CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    yield m, d, reg
    reg.deactivate()
    _core.stop()
    wd.uninstall()
    sys.modules.pop(name, None)


def _rows(d) -> list[dict]:
    _core.flush()
    p = os.path.join(d, "async_ops.csv")
    if not os.path.exists(p):
        return []
    header, body = read_csv(p)
    return [dict(zip(header, r, strict=True)) for r in body]


def test_coroutine_is_timed_to_the_end_of_its_await(env):
    m, d, reg = env
    st = {r["target"].split(":")[1]: r for r in reg.status()}
    assert st["Renderer.render"]["state"] == APPLIED
    assert inspect.iscoroutinefunction(m.Renderer.render)  # still a coroutine function
    assert asyncio.run(m.Renderer().render(50, _core.now_ns)) == 100
    (row,) = _rows(d)
    assert (row["operation"], row["context"]) == ("render", "Renderer.render")
    start, end = dict(m.MARKS)["start"], dict(m.MARKS)["end"]
    # The span covers the coroutine from its first line to after its 50th await: at least the
    # interval the coroutine itself measured on the same clock.
    assert float(row["duration_ms"]) * 1e6 >= end - start > 0


def test_errors_and_cancellation_pass_through_and_are_timed(env):
    m, d, _ = env
    with pytest.raises(KeyError, match="vLLM's own error"):
        asyncio.run(m.Renderer().fails())

    async def cancel():
        t = asyncio.ensure_future(m.Renderer().hangs())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(cancel())
    assert sorted(r["operation"] for r in _rows(d)) == ["fails", "hangs"]


def test_generators_and_hooked_coroutines_are_refused_and_unpatch_restores(env):
    m, _, reg = env
    st = {r["target"].split(":")[1]: r for r in reg.status()}
    assert st["Renderer.gen"]["state"] == SKIPPED
    assert "coroutine/generator" in st["Renderer.gen"]["reason"]
    assert st["Renderer.hooked"]["state"] == SKIPPED
    assert "take no hooks" in st["Renderer.hooked"]["reason"]
    wrapped = m.Renderer.__dict__["render"]
    assert wrapped.__wrapped__ is not None
    reg.deactivate()
    assert "__wrapped__" not in m.Renderer.__dict__["render"].__dict__
    reg.activate()  # idempotent re-activation wraps again, once
    assert m.Renderer.__dict__["render"].__wrapped__.__qualname__ == "Renderer.render"
    assert not hasattr(m.Renderer.__dict__["render"].__wrapped__, "__wrapped__")


def test_a_stacked_async_target_records_both_rows(tmp_path, monkeypatch):
    name = f"pm_async2_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    wd = ModuleWatchdog()
    wd.install()
    m = importlib.import_module(name)
    d = _core.start(str(tmp_path / "s"), "registry", flush_interval_ms=20)
    t1 = Target(f"{name}:Renderer.render", "render", T)
    t2 = dataclasses.replace(t1, operation="render_again")
    reg = Registry([t1, t2], CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    try:
        assert asyncio.run(m.Renderer().render(3, _core.now_ns)) == 6
        assert sorted(r["operation"] for r in _rows(d)) == ["render", "render_again"]
    finally:
        reg.deactivate()
        _core.stop()
        wd.uninstall()
        sys.modules.pop(name, None)
    assert not hasattr(m.Renderer.__dict__["render"], "__wrapped__")
