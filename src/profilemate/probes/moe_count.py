"""The device-side MoE counter: ``torch.ops.profilemate.moe_count`` (a ``torch.library`` custom op).

One call per MoE layer per forward adds the layer's routing decisions to preallocated per-layer
buffers, with tensor operations only (no host synchronization, no Python side effect):

- ``counts[layer, e]`` += tokens that selected logical expert ``e`` (column ``E``: ids outside
  ``[0, E)``, e.g. a zero expert, kept apart so the sum stays exact);
- ``pairs[layer, a * E + b]`` (a < b) += tokens that selected both ``a`` and ``b`` (the last slot
  ``E * E``: pairs with an id outside ``[0, E)`` or a repeated id); an empty ``pairs`` buffer turns
  co-selection off;
- every token is weighted by ``gate`` (int64, one element: 1 = count, 0 = a dummy / profile /
  warm-up forward) times "not padding" (``pad``: bool, True = a padded row, vLLM's
  ``ForwardContext.is_padding``). Both are read on the device when the op runs, so a captured CUDA
  graph that replays the op counts with the gate and the padding mask of the replay.

Why a custom op: vLLM compiles the model with ``fullgraph=True``; a Python side effect in the
forward is a graph break, which fails the engine's start. Declared with ``mutates_args``, the op is
opaque to Dynamo (it stays one node in the graph, called on every forward) and functionalization
keeps its mutation of the buffers. Importing this module registers the op once per process.
"""

from __future__ import annotations

import logging

import torch

OP_NAME = "profilemate::moe_count"


ERRORS = [0]  # calls whose counting raised (counted, logged once; vLLM's forward goes on)


def _count(
    counts: torch.Tensor,
    pairs: torch.Tensor,
    topk_ids: torch.Tensor,
    gate: torch.Tensor,
    layer: int,
    pad: torch.Tensor | None,
) -> None:
    try:
        _count_into(counts, pairs, topk_ids, gate, layer, pad)
    except Exception:
        ERRORS[0] += 1
        if ERRORS[0] == 1:
            logging.getLogger("profilemate").warning(
                "moe: counting failed (counts are incomplete from here; vLLM runs normally)",
                exc_info=True,
            )


def _count_into(
    counts: torch.Tensor,
    pairs: torch.Tensor,
    topk_ids: torch.Tensor,
    gate: torch.Tensor,
    layer: int,
    pad: torch.Tensor | None,
) -> None:
    n = topk_ids.shape[0]
    if n == 0 or topk_ids.numel() == 0:
        return
    num_experts = counts.shape[1] - 1
    ids = topk_ids.reshape(n, -1).to(torch.int64)
    k = ids.shape[1]
    in_range = (ids >= 0) & (ids < num_experts)
    idx = torch.where(in_range, ids, num_experts)
    weight = gate.to(counts.dtype).expand(n)
    if pad is not None and pad.dim() == 1 and pad.shape[0] >= n:
        weight = weight * torch.logical_not(pad[:n]).to(counts.dtype)
    counts[layer].index_add_(0, idx.reshape(-1), weight.unsqueeze(1).expand(n, k).reshape(-1))
    if k < 2 or pairs.numel() == 0:
        return
    first, second = torch.triu_indices(k, k, 1, device=ids.device)
    a = ids[:, first]
    b = ids[:, second]
    lo = torch.minimum(a, b)
    hi = torch.maximum(a, b)
    ok = in_range[:, first] & in_range[:, second] & (lo != hi)
    slot = torch.where(ok, lo * num_experts + hi, num_experts * num_experts)
    npairs = slot.shape[1]
    pairs[layer].index_add_(
        0, slot.reshape(-1), weight.unsqueeze(1).expand(n, npairs).reshape(-1).to(pairs.dtype)
    )


moe_count = torch.library.custom_op(OP_NAME, mutates_args=("counts", "pairs"))(_count)


@moe_count.register_fake
def _count_fake(counts, pairs, topk_ids, gate, layer, pad) -> None:
    return None


def buffers(
    num_layers: int, num_experts: int, device, coselection: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(counts [L, E+1], pairs [L, E*E+1] or [L, 0], gate [1] = 1), int64 on ``device``."""
    counts = torch.zeros((num_layers, num_experts + 1), dtype=torch.int64, device=device)
    width = num_experts * num_experts + 1 if coselection else 0
    pairs = torch.zeros((num_layers, width), dtype=torch.int64, device=device)
    gate = torch.ones(1, dtype=torch.int64, device=device)
    return counts, pairs, gate
