"""The Python-facing contract of profilemate._core (docs/CORE_API.md), in-process."""

from __future__ import annotations

import json
import os
import threading

import pytest
from test_core_readers import read_csv, read_trace

from profilemate import _core


@pytest.fixture
def session(tmp_path):
    t0 = _core.now_ns()
    pdir = _core.start(str(tmp_path), "api", flush_interval_ms=20, session_start_ns=t0)
    try:
        yield pdir, t0
    finally:
        _core.stop()


def test_start_returns_process_dir_and_stop_is_idempotent(tmp_path):
    pdir = _core.start(str(tmp_path / "s"), "lbl")
    assert pdir == str(tmp_path / "s" / f"lbl-{os.getpid()}")
    assert _core.enabled() and _core.process_dir() == pdir
    _core.stop()
    _core.stop()
    assert not _core.enabled() and _core.process_dir() == ""
    summary = json.loads((tmp_path / "s" / f"lbl-{os.getpid()}" / "summary.json").read_text())
    assert summary["pid"] == os.getpid() and summary["final"] is True


def test_rows_columns_and_values(session):
    pdir, t0 = session
    table = _core.define_table(
        "forward_pass_timing",
        [
            ("timestamp_sec", "ts_sec"),
            ("step", "step"),
            ("phase", "ctx"),
            ("batch_size", "a0"),
            ("num_tokens", "a1"),
            ("forward_time_ms", "dur_ms"),
            ("end_sec", "end_sec"),
            ("request", "s2"),
            ("tid", "tid"),
            ("pid", "pid"),
        ],
    )
    decode, fwd, req = _core.intern("decode"), _core.intern("forward"), _core.intern("req,7")
    _core.record_span(
        table, fwd, t0 + 2_500_000_000, 12_345_678, step=41, ctx=decode, a0=8, a1=8.5, a2=req
    )
    _core.record_span(table, fwd, t0 + 3_000_000_000, 1_000)
    _core.flush()
    header, rows = read_csv(os.path.join(pdir, "forward_pass_timing.csv"))
    assert header == [
        "timestamp_sec",
        "step",
        "phase",
        "batch_size",
        "num_tokens",
        "forward_time_ms",
        "end_sec",
        "request",
        "tid",
        "pid",
    ]
    tid = threading.get_native_id()
    assert rows[0] == [
        "2.500000",
        "41",
        "decode",
        "8",
        "8.5",
        "12.345678",
        "2.512346",
        "req,7",
        str(tid),
        str(os.getpid()),
    ]
    assert rows[1][:3] == ["3.000000", "", ""]
    st = _core.stats()
    assert st["recorded"] == 2 and st["written_rows"] == 2 and st["dropped"] == 0


def test_trace_events_and_kinds(session):
    pdir, t0 = session
    table = _core.define_table(
        "test_gauge_usage", [("timestamp_sec", "ts_sec"), ("usage_pct", "a0")]
    )
    _core.record_counter(table, _core.intern("usage"), t0 + 1000, 57.5, step=3)
    _core.record_instant(table, _core.intern("evict"), t0 + 2000, step=4, a0=1)
    _core.record_span(table, _core.intern("alloc"), t0 + 3000, 4000, step=5)
    _core.flush()
    events = read_trace(os.path.join(pdir, "trace.json"))  # open file: unterminated form
    by_ph = {e["ph"]: e for e in events if e["ph"] in "XiC"}
    assert by_ph["C"]["args"] == {"usage_pct": 57.5}
    assert by_ph["i"]["args"] == {"step": 4, "usage_pct": 1}
    assert by_ph["X"]["dur"] == 4.0 and by_ph["X"]["cat"] == "test_gauge_usage"
    assert by_ph["X"]["ts"] == pytest.approx((t0 + 3000) / 1000, abs=0.001)
    meta = {e["name"] for e in events if e["ph"] == "M"}
    assert {"process_name", "thread_name"} <= meta
    _core.stop()
    closed = json.loads(open(os.path.join(pdir, "trace.json")).read())  # strict JSON once stopped
    assert len(closed) == len(events) + 1


def test_summary_percentiles(session):
    pdir, t0 = session
    table = _core.define_table("percentile_spans", [("duration_ms", "dur_ms")])
    name = _core.intern("schedule")
    durs = [(i % 100 + 1) * 1_000_000 for i in range(1000)]  # 1..100 ms, 10 of each
    for d in durs:
        _core.record_span(table, name, t0, d)
    _core.stop()
    s = json.loads(open(os.path.join(pdir, "summary.json")).read())
    entry = s["tables"]["percentile_spans"]["schedule"]
    assert entry["count"] == 1000 and entry["kind"] == "span"
    for key, exact in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        assert entry[key] == pytest.approx(exact, rel=0.01), key
    assert entry["mean_ms"] == pytest.approx(50.5, rel=0.001)
    assert s["recorded"] == 1000 and s["dropped"] == 0


def test_intern_is_stable():
    a = _core.intern("forward_x")
    assert a > 0 and _core.intern("forward_x") == a and _core.intern("") == 0
    assert _core.intern("other_x") != a


def test_define_table_errors():
    cols = [("a", "ts_sec")]
    assert _core.define_table("t_same", cols) == _core.define_table("t_same", cols)
    with pytest.raises(ValueError, match="different columns"):
        _core.define_table("t_same", [("b", "ts_sec")])
    with pytest.raises(ValueError, match=r"unknown column source 'bogus'.*ts_sec.*s3.*tid"):
        _core.define_table("t_bad", [("a", "bogus")])
    with pytest.raises(ValueError, match="invalid table name"):
        _core.define_table("../x", cols)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"ring_capacity": -1},
            r"ring_capacity must be a power of two between 64 and \d+ \(got -1\)",
        ),
        ({"ring_capacity": 0}, r"ring_capacity .*\(got 0\)"),
        ({"ring_capacity": 1000}, r"ring_capacity .*\(got 1000\)"),
        ({"ring_capacity": 1 << 30}, r"ring_capacity"),
        (
            {"flush_interval_ms": 0},
            r"flush_interval_ms must be an integer from 1 to 1000 \(got 0\)",
        ),
        ({"flush_interval_ms": -10}, r"flush_interval_ms .*\(got -10\)"),
    ],
)
def test_bad_config_values(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        _core.start(str(tmp_path), "bad", **kwargs)
    assert not _core.enabled()
    assert not any(tmp_path.iterdir())  # nothing created for a refused config


def test_second_start_is_runtime_error(session, tmp_path):
    with pytest.raises(RuntimeError, match="already started"):
        _core.start(str(tmp_path / "again"), "x")


def test_unwritable_dir_raises_oserror_and_recording_is_noop(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    target = blocker / "session"
    with pytest.raises(OSError) as info:
        _core.start(str(target), "w")
    assert str(target) in str(info.value)
    assert isinstance(info.value, NotADirectoryError)
    assert not _core.enabled()
    table = _core.define_table("noop_table", [("a", "a0")])
    _core.record_span(table, 1, 0, 0)  # no-op, no exception
    f = _core.timed(lambda x: x + 1, table, 1)
    assert f(1) == 2
    assert _core.stats()["recorded"] == 0


def test_stats_keys(session):
    st = _core.stats()
    assert {
        "recorded",
        "dropped",
        "written_rows",
        "rings",
        "ring_capacity",
        "write_errors",
        "dropped_by_table",
    } <= set(st)
    assert st["ring_capacity"] == 65536 and isinstance(st["dropped_by_table"], dict)


def test_drops_counted_per_table(tmp_path):
    pdir = _core.start(str(tmp_path), "drops", ring_capacity=64, flush_interval_ms=1000)
    try:
        a = _core.define_table("drop_a", [("a", "a0")])
        b = _core.define_table("drop_b", [("a", "a0")])
        n = 3000
        for i in range(n):
            _core.record_instant(a if i % 3 else b, 1, 0, a0=i)
        _core.flush()
        st = _core.stats()
        assert st["recorded"] + st["dropped"] == n
        assert st["dropped"] > 0
        assert sum(st["dropped_by_table"].values()) == st["dropped"]
        assert st["written_rows"] == st["recorded"]
    finally:
        _core.stop()
    summary = json.loads(open(os.path.join(pdir, "summary.json")).read())
    assert summary["dropped"] == st["dropped"]
    assert summary["dropped_by_table"] == st["dropped_by_table"]


def test_step_id():
    _core.set_step(123)
    assert _core.current_step() == 123
    _core.set_step(-1)
