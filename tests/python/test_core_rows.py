"""Wide rows (a0..a15 / s0..s15), record_row and record_rows, through the real core and its CSV."""

from __future__ import annotations

import os

import pytest
from test_core_readers import read_csv

from profilemate import _core

WIDE = [("step", "step"), ("name", "name")] + [(f"v{i}", f"a{i}") for i in range(16)]


@pytest.fixture
def wide(tmp_path):
    pdir = _core.start(str(tmp_path), "wide", flush_interval_ms=20)
    table = _core.define_table("wide_rows", WIDE)
    try:
        yield pdir, table
    finally:
        _core.stop()


def wrows(pdir):
    _core.flush()
    header, rows = read_csv(os.path.join(pdir, "wide_rows.csv"))
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_a_hooked_wrapper_records_sixteen_values_in_order(wide):
    pdir, table = wide
    f = _core.timed(
        lambda x: x,
        table,
        _core.intern("op"),
        before=lambda x: (99, *range(x, x + 6)),  # the step, then six values
        after=lambda r, x: tuple(range(x + 6, x + 16)),  # ten more
        params=((0, "x", None),),
        sets_step=True,
    )
    assert f(100) == 100
    (row,) = wrows(pdir)
    assert row["step"] == "99"
    assert [float(row[f"v{i}"]) for i in range(16)] == [float(100 + i) for i in range(16)]


def test_fewer_values_leave_the_rest_zero_and_a_short_row_needs_no_continuation(wide):
    pdir, table = wide
    _core.record_row(table, _core.intern("r5"), 0, 0, 3, 0, (1, 2, 3, 4, 5))
    _core.record_row(table, _core.intern("r2"), 0, 0, 4, 0, [7, None])
    r5, r2 = wrows(pdir)
    assert [r5[f"v{i}"] for i in range(6)] == ["1", "2", "3", "4", "5", "0"]
    assert r2["v0"] == "7" and r2["v1"] == "" and r2["v15"] == "0"  # None: an empty field
    assert _core.stats()["recorded"] == 2  # rows, not ring slots


def test_record_rows_loops_in_cpp_and_validates_its_input(wide):
    pdir, table = wide
    flat = [float(i) for i in range(3 * 9)]
    assert _core.record_rows(table, _core.intern("many"), 0, 8, 9, flat) == 3
    got = wrows(pdir)
    assert [[float(r[f"v{i}"]) for i in range(9)] for r in got] == [
        flat[0:9],
        flat[9:18],
        flat[18:27],
    ]
    assert {r["step"] for r in got} == {"8"}
    with pytest.raises(ValueError, match="multiple of ncols"):
        _core.record_rows(table, 1, 0, 0, 4, [1.0] * 5)
    with pytest.raises(ValueError, match="1..16"):
        _core.record_rows(table, 1, 0, 0, 17, [1.0] * 17)
    with pytest.raises(ValueError, match="at most 16"):
        _core.record_row(table, 1, 0, 0, 0, 0, [1.0] * 17)
    with pytest.raises(TypeError):
        _core.record_row(table, 1, 0, 0, 0, 0, ["x"])


def test_wide_rows_that_wrap_the_ring_arrive_whole(tmp_path):
    # A 64-slot ring and rows of 4 slots at odd offsets: some rows straddle the wrap-around, the
    # collector must join their continuations from the next run.
    pdir = _core.start(str(tmp_path), "wrap", ring_capacity=64, flush_interval_ms=1)
    try:
        table = _core.define_table("wide_rows", WIDE)
        name = _core.intern("w")
        n = 0
        for i in range(400):
            if i % 7 == 0:
                _core.record_instant(table, name, _core.now_ns(), -1, 0, -1.0)
            ok = _core.record_rows(table, name, 0, i, 13, [float(i * 100 + j) for j in range(13)])
            n += ok
            if i % 16 == 0:
                _core.flush()
        got = wrows(pdir)
    finally:
        _core.stop()
    wide_rows = [r for r in got if r["v0"] != "-1"]
    dropped = _core.stats()["dropped"]
    assert len(wide_rows) + dropped >= 400 - 0 and len(wide_rows) >= 300
    for r in wide_rows:
        step = int(r["step"])
        assert [float(r[f"v{j}"]) for j in range(13)] == [float(step * 100 + j) for j in range(13)]
        assert [r[f"v{j}"] for j in range(13, 16)] == ["0", "0", "0"]


def test_text_travels_in_the_row_not_the_interner(tmp_path):
    pdir = _core.start(str(tmp_path), "text", flush_interval_ms=20)
    try:
        table = _core.define_table("text_rows", [("step", "step"), ("v0", "a0"), ("id", "text")])
        name = _core.intern("t")
        before = _core.stats()
        _core.record_row(table, name, 0, 0, 1, 0, (3,), 'req-1,"q"')
        _core.record_row(table, name, 0, 0, 2, 0, (), "a" + "ü" * 60)  # 121 bytes: cut at 111
        f = _core.timed(
            lambda rid: rid,
            table,
            name,
            before=lambda rid: (9, rid),  # a str value is the row's text
            params=((0, "rid", None),),
        )
        assert f("cmpl-abc-0") == "cmpl-abc-0"
        with pytest.raises(TypeError):
            _core.record_row(table, name, 0, 0, 0, 0, (), b"bytes")
        _core.flush()
        header, rows = read_csv(os.path.join(pdir, "text_rows.csv"))
        assert _core.stats()["recorded"] - before["recorded"] == 3
    finally:
        _core.stop()
    assert rows[0] == ["1", "3", 'req-1,"q"']
    assert rows[1][2] == "a" + "ü" * 55  # cut on a character boundary
    assert rows[2][1:] == ["9", "cmpl-abc-0"]


def test_count_zero_equals_list_count():
    """count_zero is list.count(0) without a Python loop: exact ints, big ints, floats, bools,
    numpy ints; tuples and lists; anything else is a TypeError."""
    import numpy as np

    cases = [
        [],
        [0],
        [1, 2, 3],
        [0, 1, 0, 0, 5],
        [2**70, -(2**70), 0, -1],
        [0.0, 1.5, True, False, np.int64(0), np.int32(3)],
        list(range(-3, 300)),
    ]
    for values in cases:
        assert _core.count_zero(values) == values.count(0)
        assert _core.count_zero(tuple(values)) == values.count(0)
    with pytest.raises(TypeError):
        _core.count_zero(5)
