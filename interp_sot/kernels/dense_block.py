"""Per-feature statistics of one dense block in a handful of fixed-shape ops: the sync-free GPU path.

:meth:`FeatureStats.update_dense` calls :func:`block_stats` once per chunk. Nothing here depends on the data's
values for its shapes, so the host never waits for the device. On CUDA the function is compiled with inductor
(``torch.compile``, once per block shape), which fuses the masks, the float64 column sums and the top-k key into a
few kernels that each read the ``[chunk, d_sae]`` block once; elsewhere it runs eagerly (same results).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)


class BlockStats(NamedTuple):
    """Per-feature ``[d_sae]`` contributions of one block, plus the top-k key ``[c, d_sae]``."""

    fire_count: torch.Tensor
    first_n_count: torch.Tensor
    onset_count: torch.Tensor
    nonfinite_count: torch.Tensor
    act_sum: torch.Tensor
    act_sq_sum: torch.Tensor
    key: torch.Tensor
    """int64: float32 value bits << 32 | (c - 1 - rank); value bits 0 where the token does not fire (see
    :func:`interp_sot.features.topk.block_topk`)."""
    bad_tokens: torch.Tensor
    """0-dim: tokens with at least one NaN/inf activation."""


def block_stats(block: torch.Tensor, gate: torch.Tensor, first: torch.Tensor, onset: torch.Tensor,
                rank: torch.Tensor, preacts: bool) -> BlockStats:
    """block: [c, d] activations (or pre-activations when ``preacts``: -inf is then activation 0); gate: [d] or [];
    first/onset: [c] bool (token within first_n / onset_n); rank: [c] int64 place in (seq, pos) order."""
    bad = ~(block < float("inf")) if preacts else ~torch.isfinite(block)
    fire = (block > gate) & ~bad
    vals = torch.where(fire, block, 0).to(torch.float32)
    v64 = vals.to(torch.float64)
    c = block.shape[0]
    key = (vals.view(torch.int32).to(torch.int64) << 32) | (c - 1 - rank)[:, None]
    return BlockStats(fire.sum(0), (fire & first[:, None]).sum(0), (fire & onset[:, None]).sum(0), bad.sum(0),
                      v64.sum(0), (v64 * v64).sum(0), key, bad.any(1).sum())


_compiled: Callable[..., BlockStats] | None = None


def block_stats_fn(device: torch.device) -> Callable[..., BlockStats]:
    """:func:`block_stats`, compiled on CUDA unless ``INTERP_SOT_COMPILE_STATS=0``."""
    global _compiled
    if device.type != "cuda" or os.environ.get("INTERP_SOT_COMPILE_STATS", "1") == "0":
        return block_stats
    if _compiled is None:
        logger.info("compiling the dense statistics block with inductor (once per block shape)")
        _compiled = torch.compile(block_stats, dynamic=False, fullgraph=True)
    return _compiled
