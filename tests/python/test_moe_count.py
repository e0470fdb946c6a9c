"""The MoE counting op ``torch.ops.profilemate.moe_count`` and the rows the moe category makes.

Oracle: numpy counts of the same routing decisions (bincount per layer, pairs per token), computed
by the test. Checked eager, under ``torch.compile(fullgraph=True)`` (a graph break would raise,
as it fails vLLM's start), with the gate and the padding mask changed between compiled calls.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_core_readers import read_csv

from profilemate import _core
from profilemate.probes import load_category
from profilemate.probes.recorder import CoreRecorder

torch = pytest.importorskip("torch")

from profilemate.probes import moe_count  # noqa: E402

E, K = 8, 2


def _ref(ids: np.ndarray, weight: np.ndarray, num_experts: int = E):
    """(counts [E+1], pairs [(E+1)^2]) of one layer, token by token."""
    e1 = num_experts + 1
    counts = np.zeros(e1, dtype=np.int64)
    pairs = np.zeros(e1 * e1, dtype=np.int64)
    for row, w in zip(ids, weight, strict=True):
        m = [e if 0 <= e < num_experts else num_experts for e in row]
        for e in m:
            counts[e] += w
        for a, b in itertools.combinations(m, 2):
            pairs[min(a, b) * e1 + max(a, b)] += w
    return counts, pairs


def _routing(n: int, k: int = K, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, E, generator=g)
    return torch.topk(logits, k, dim=-1).indices.to(torch.int32)


def _op(buf, ids, gate, layer, pad=None, num_experts=E):
    torch.ops.profilemate.moe_count(buf, ids, gate, layer, num_experts, pad)


def test_eager_counts_match_reference():
    buf, gate = moe_count.buffers(3, E, "cpu")
    expect = np.zeros(tuple(buf.shape), dtype=np.int64)
    for layer, n in ((0, 17), (2, 5), (0, 1), (1, 64)):
        ids = _routing(n, seed=n)
        _op(buf, ids, gate, layer)
        c, p = _ref(ids.numpy(), np.ones(n, dtype=np.int64))
        expect[layer] += np.concatenate([c, p])
    assert np.array_equal(buf.numpy(), expect)
    counts, pairs = moe_count.split(buf, E)
    # per layer: sum of counts == tokens x top_k; sum of pairs == tokens x C(k, 2)
    assert counts.sum(dim=1).tolist() == [18 * K, 64 * K, 5 * K]
    assert pairs.sum(dim=1).tolist() == [18, 64, 5]


def test_gate_padding_and_out_of_range_ids():
    buf, gate = moe_count.buffers(1, E, "cpu")
    ids = torch.tensor([[0, 1], [2, 3], [-1, 4], [4, 4], [7, E]], dtype=torch.int64)
    pad = torch.tensor([False, True, False, False, False, True])  # longer than the batch: sliced
    _op(buf, ids, gate, 0, pad)
    c, p = _ref(ids.numpy(), np.array([1, 0, 1, 1, 1]))
    counts, pairs = moe_count.split(buf, E)
    assert np.array_equal(counts[0].numpy(), c)
    assert np.array_equal(pairs[0].numpy(), p)
    assert counts[0, E].item() == 2  # -1 and E: kept apart, the sum stays exact
    gate.fill_(0)
    _op(buf, ids, gate, 0)
    assert np.array_equal(counts[0].numpy(), c)  # gate 0: nothing counted


def test_topk_one_and_no_coselection_buffer():
    buf, gate = moe_count.buffers(1, E, "cpu", coselection=False)
    assert buf.shape == (1, E + 1)
    _op(buf, _routing(9, k=1), gate, 0)
    _op(buf, _routing(4), gate, 0)  # top-2, but no pair columns: counts only
    assert buf.sum().item() == 9 + 8
    _op(buf, torch.empty((0, K), dtype=torch.int32), gate, 0)
    assert buf.sum().item() == 17


def test_compiled_fullgraph_counts_every_call():
    """The op inside a fullgraph-compiled function, the buffer captured by a closure as the router's
    capture_fn holds it: every call counts, with the gate read at run time."""
    buf, gate = moe_count.buffers(2, E, "cpu")
    op = torch.ops.profilemate.moe_count.default

    def capture(row):
        def fn(topk_ids):
            op(buf, topk_ids, gate, row, E, None)

        return fn

    captures = [capture(0), capture(1)]

    def forward(logits):
        out = logits
        for c in captures:  # two "layers", routed the same way a router does
            ids = torch.topk(out, K, dim=-1).indices
            c(ids)
            out = out.flip(-1) * 1.5
        return out

    compiled = torch.compile(forward, fullgraph=True, dynamic=True)
    expect = np.zeros(tuple(buf.shape), dtype=np.int64)
    for i, n in enumerate((4, 9, 9, 1, 33)):
        logits = torch.randn(n, E, generator=torch.Generator().manual_seed(i))
        on = i != 2
        gate.fill_(1 if on else 0)
        compiled(logits)
        if on:
            x = logits
            for row in range(2):
                ids = torch.topk(x, K, dim=-1).indices.numpy()
                expect[row] += np.concatenate(_ref(ids, np.ones(n, dtype=np.int64)))
                x = x.flip(-1) * 1.5
    gate.fill_(1)
    assert np.array_equal(buf.numpy(), expect)
    assert moe_count.split(buf, E)[0].sum(dim=1).tolist() == [(4 + 9 + 1 + 33) * K] * 2


def _tables(rec, moe):
    """What emit_rows writes with: the category's three tables and its operation name."""
    return (
        rec.table(moe.ACTIVATIONS),
        rec.table(moe.IMBALANCE),
        rec.table(moe.COSELECTION),
        rec.intern("moe"),
    )


def test_rows_through_the_core(tmp_path):
    """emit_rows on a real core session: increments, percentages, imbalance, pairs (+ the cap)."""
    moe = load_category("moe")
    d = _core.start(str(tmp_path / "s"), "moe", flush_interval_ms=20)
    try:
        rec = CoreRecorder(_core)
        tables = _tables(rec, moe)
        dc = np.zeros((2, E + 1), dtype=np.int64)
        dc[0, :E] = [10, 0, 5, 5, 0, 0, 0, 0]
        dc[0, E] = 2
        dp = np.zeros((2, (E + 1) ** 2), dtype=np.int64)
        dp[0, 0 * (E + 1) + 2] = 4
        dp[0, 2 * (E + 1) + 3] = 1
        dp[0, 5 * (E + 1) + 5] = 2  # a repeated id: other pairs
        layer_ids = np.array([3, 5], dtype=np.int64)
        moe.emit_rows(rec, tables, dc, dp, layer_ids, E, 7, 9)
        _core.flush()
    finally:
        _core.stop()
    _, act = read_csv(f"{d}/moe_expert_activations.csv")
    got = sorted((int(r[1]), int(float(r[3])), int(float(r[4])), int(float(r[5]))) for r in act)
    assert got == [(9, 3, -1, 2), (9, 3, 0, 10), (9, 3, 2, 5), (9, 3, 3, 5)]
    assert all(int(float(r[2])) == 7 for r in act)  # step_first
    assert math.isclose(sum(float(r[6]) for r in act), 100.0)
    hdr, imb = read_csv(f"{d}/moe_load_imbalance.csv")
    assert len(imb) == 1  # layer 5 routed nothing: no row
    row = dict(zip(hdr, imb[0], strict=True))
    assert float(row["routed_tokens"]) == 22 and float(row["max_count"]) == 10
    assert math.isclose(float(row["mean_count"]), 20 / E)
    assert float(row["hottest_expert"]) == 0 and float(row["idle_experts"]) == 5
    assert row["max_min_ratio"] in ("", "nan")
    _, co = read_csv(f"{d}/moe_expert_coselection.csv")
    assert sorted((int(float(r[4])), int(float(r[5])), int(float(r[6]))) for r in co) == [
        (-1, -1, 2),
        (0, 2, 4),
        (2, 3, 1),
    ]


def test_pair_rows_are_capped_and_the_rest_summed(tmp_path):
    moe = load_category("moe")
    big = 64  # 2016 pairs > MAX_PAIR_ROWS
    d = _core.start(str(tmp_path / "s"), "moe", flush_interval_ms=20)
    try:
        rec = CoreRecorder(_core)
        tables = _tables(rec, moe)
        dc = np.ones((1, big + 1), dtype=np.int64)
        dp = np.zeros((1, (big + 1) ** 2), dtype=np.int64)
        slots = [a * (big + 1) + b for a in range(big) for b in range(a + 1, big)]
        dp[0, slots] = np.arange(1, len(slots) + 1)
        moe.emit_rows(rec, tables, dc, dp, np.array([0]), big, 1, 1)
        _core.flush()
    finally:
        _core.stop()
    _, co = read_csv(f"{d}/moe_expert_coselection.csv")
    assert len(co) == moe.MAX_PAIR_ROWS + 1
    assert sum(int(float(r[6])) for r in co) == int(dp.sum())  # the sum stays exact
    assert sum(1 for r in co if float(r[4]) == -1 and float(r[5]) == -1) == 1


def test_doctor_says_which_path_counts():
    """`profilemate doctor` on the real (CPU) vLLM: the op is registered, the router hook exists,
    and the path is the custom op inside the compiled graph (eager-python with enforce_eager)."""
    import json
    import subprocess
    import sys

    pytest.importorskip("vllm")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PROFILEMATE")}
    p = subprocess.run(
        [sys.executable, "-m", "profilemate.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    r = json.loads(p.stdout)
    moe = r["moe"]
    assert moe["custom_op"] == "registered"
    assert moe["capture_fn"].startswith("BaseRouter.capture_fn")
    assert moe["path"] == "compiled-graph" and "fullgraph" in moe["why"]
    assert moe["modes"]["enforce_eager"] == "eager-python"
    assert all(t.get("present") for t in r["targets"] if t["category"] == "moe")


def test_real_vllm_router_counts_and_chains_vllms_capture():
    """vLLM's real CPURouter.select_experts (eager): the counter sees the ids vLLM returns, and the
    capture_fn vLLM had set -- and the one it sets later (set_capture_fn) -- still get every call."""
    pytest.importorskip("vllm")
    from vllm.model_executor.layers.fused_moe.router.cpu_router import CPURouter

    moe = load_category("moe")
    routers = [CPURouter(top_k=K, global_num_experts=E) for _ in range(2)]
    before, after = [], []
    routers[0].set_capture_fn(lambda ids: before.append(ids.clone()))  # set before ours
    st = moe._State()
    st.attach(routers, [4, 7], E, K, "cpu")
    routers[1].set_capture_fn(lambda ids: after.append(ids.clone()))  # vLLM binds after load
    st.rechain(routers[1], routers[1].capture_fn)  # what the set_capture_fn after-hook does
    expect = np.zeros((2, E + 1), dtype=np.int64)
    counts = moe_count.split(st.buf, E)[0]
    seen = [[], []]
    for i, n in enumerate((5, 12, 1)):
        g = torch.Generator().manual_seed(i)
        hidden = torch.randn(n, 16, generator=g)
        for row, r in enumerate(routers):
            logits = torch.randn(n, E, generator=g)
            _, ids = r.select_experts(hidden_states=hidden, router_logits=logits)
            seen[row].append(ids.clone())
            expect[row] += _ref(ids.numpy(), np.ones(n, dtype=np.int64))[0]
    assert np.array_equal(counts.numpy(), expect)
    assert counts.sum(dim=1).tolist() == [18 * K, 18 * K]
    assert [t.tolist() for t in before] == [t.tolist() for t in seen[0]]
    assert [t.tolist() for t in after] == [t.tolist() for t in seen[1]]
    st.set_gate(False)
    routers[0].select_experts(hidden_states=torch.zeros(3, 16), router_logits=torch.randn(3, E))
    assert counts.sum().item() == 36 * K  # gate off: a dummy run is not counted
    assert len(before) == 4  # ... but vLLM's own capture still runs
