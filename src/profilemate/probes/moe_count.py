"""The device-side MoE counter: ``torch.ops.profilemate.moe_count`` (a ``torch.library`` op).

One call per MoE layer per forward adds the layer's routing decisions to a preallocated buffer
``buf [layers, W]`` (int64), with tensor operations only (no host synchronization, no Python side
effect), in ONE ``index_add_``. With ``E`` experts and ``E1 = E + 1``:

- ``buf[layer, e]`` (``e < E1``) += tokens that selected logical expert ``e``; column ``E`` takes
  ids outside ``[0, E)`` (e.g. zero experts), kept so the sum stays exact;
- when ``W > E1`` (co-selection on, ``W = E1 + E1 * E1``): ``buf[layer, E1 + lo * E1 + hi]`` +=
  tokens that selected both ``lo <= hi`` (every pair of a token's top-k slots). Slots with ``lo ==
  hi`` (a repeated id) or ``hi == E`` (an id outside ``[0, E)``) are "other pairs";
- every token is weighted by ``gate`` (int64, one element: 1 = count, 0 = a dummy / profile /
  warm-up forward) times "not padding" (``pad``: bool, True = a padded row, vLLM's
  ``ForwardContext.is_padding``). Both are read on the device when the op runs, so a captured CUDA
  graph that replays the op counts with the gate and the padding mask of the replay.

Why an op: vLLM compiles the model with ``fullgraph=True``; a Python side effect in the forward is a
graph break, which fails the engine's start. The schema marks ``buf`` as mutated (``Tensor(a!)``),
so Dynamo keeps the op as one opaque node, run on every forward, and functionalization keeps the
mutation. Registered with ``torch.library.Library`` (one Python kernel for every backend): its
dispatch costs less than a ``torch.library.custom_op`` (bench/bench_moe_count.py). Importing this
module registers the op once per process.
"""

from __future__ import annotations

import logging

import torch

OP_NAME = "profilemate::moe_count"
SCHEMA = (
    "moe_count(Tensor(a!) buf, Tensor topk_ids, Tensor gate, int layer, int num_experts, "
    "Tensor? pad) -> ()"
)

ERRORS = [0]  # calls whose counting raised (counted, logged once; vLLM's forward goes on)
_PAIRS: dict = {}  # (top_k, device) -> triu index pairs, made once (attach() makes them early)


def pair_index(k: int, device) -> torch.Tensor:
    key = (k, str(device))
    pq = _PAIRS.get(key)
    if pq is None:
        pq = _PAIRS[key] = torch.triu_indices(k, k, 1, device=device)
    return pq


def _count(buf, topk_ids, gate, layer: int, num_experts: int, pad) -> None:
    try:
        _count_into(buf, topk_ids, gate, layer, num_experts, pad)
    except Exception:
        ERRORS[0] += 1
        if ERRORS[0] == 1:
            logging.getLogger("profilemate").warning(
                "moe: counting failed (counts are incomplete from here; vLLM runs normally)",
                exc_info=True,
            )


def _count_into(buf, topk_ids, gate, layer: int, num_experts: int, pad) -> None:
    n = topk_ids.shape[0]
    if n == 0 or topk_ids.numel() == 0:
        return
    e1 = num_experts + 1
    ids = topk_ids.reshape(n, -1)
    k = ids.shape[1]
    # ids outside [0, E) -> E: clamp to [-1, E], then -1 -> E (mod E + 1)
    idx = ids.to(torch.int64).clamp(-1, num_experts).remainder_(e1)
    index = idx.reshape(-1)
    width = k
    if k >= 2 and buf.shape[1] > e1:
        pq = pair_index(k, ids.device)
        a = idx[:, pq[0]]
        b = idx[:, pq[1]]
        slot = torch.maximum(a, b).add_(torch.minimum(a, b), alpha=e1).add_(e1)
        index = torch.cat((idx, slot), dim=1).reshape(-1)
        width = k + slot.shape[1]
    if pad is None or pad.dim() != 1 or pad.shape[0] < n:
        weight = gate.expand(index.shape[0])
    else:
        w = torch.logical_not(pad[:n]).to(buf.dtype).mul_(gate)
        weight = w.unsqueeze(1).expand(n, width).reshape(-1)
    buf[layer].index_add_(0, index, weight)


_LIB = torch.library.Library("profilemate", "FRAGMENT")  # noqa: TOR901 (kept for the process)
_LIB.define(SCHEMA)
_LIB.impl("moe_count", _count, "CompositeExplicitAutograd")


def _count_fake(buf, topk_ids, gate, layer, num_experts, pad) -> None:
    return None


torch.library.register_fake(OP_NAME, _count_fake, lib=_LIB)


def width(num_experts: int, coselection: bool = True) -> int:
    e1 = num_experts + 1
    return e1 + e1 * e1 if coselection else e1


def buffers(num_layers: int, num_experts: int, device, coselection: bool = True):
    """(buf [L, W], gate [1] = 1), int64 on ``device``."""
    buf = torch.zeros(
        (num_layers, width(num_experts, coselection)), dtype=torch.int64, device=device
    )
    gate = torch.ones(1, dtype=torch.int64, device=device)
    return buf, gate


def split(buf, num_experts: int):
    """(counts [L, E+1], pairs [L, (E+1)^2] or [L, 0]) views of a buffer (numpy or torch)."""
    e1 = num_experts + 1
    return buf[:, :e1], buf[:, e1:]
