"""Collection across processes with torch.distributed: each rank takes every world-th document, then the
per-rank statistics are merged (exactly; see :meth:`FeatureStats.merge`).

Launch the CLI under torchrun, one process per GPU; every rank loads the model and SAE on ``cuda:LOCAL_RANK``
and rank 0 writes the result::

    torchrun --nproc-per-node 8 -m interp_sot.cli stats --model ... --sae ... --layer 15 --corpus ... --out DIR

The merged statistics equal a single-process run's (float sums up to rounding) whenever each document's
forward pass is the same computation in both runs; different batch compositions or thread counts can change
the BLAS rounding of activations in the last bit, which can only reorder exact ties (e.g. duplicated documents).

Library use: initialise the process group (``init_from_env()`` does it from torchrun's variables), then call
:func:`collect_distributed` on every rank. Checkpoints go to ``checkpoint_dir/rank{r}`` so a restarted job with
the same world size resumes each shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.distributed as dist

from interp_sot.features.collect import CollectConfig, collect
from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats

if TYPE_CHECKING:
    from interp_sot.features.corpus import CorpusItem
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(backend: str | None = None) -> torch.device:
    """Join the process group torchrun describes; returns this rank's device (``cuda:LOCAL_RANK`` or cpu)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"))
    return device


class _Payload(TypedDict):
    """One rank's stats, as ``all_gather_object`` sends them."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, object]
    contexts: dict[str, torch.Tensor] | None
    tokenizer_source: str | None


def _payload(stats: FeatureStats) -> _Payload:
    tensors = {k: v.cpu() for k, v in stats.state_tensors().items()}
    contexts = stats.contexts.state_tensors() if stats.contexts is not None else None
    source = stats.contexts.tokenizer_source if stats.contexts is not None else None
    return {"tensors": tensors, "meta": stats.meta(), "contexts": contexts, "tokenizer_source": source}


def _from_payload(p: _Payload) -> FeatureStats:
    stats = FeatureStats.from_state(p["tensors"], p["meta"], "rank payload")
    if p["contexts"] is not None:
        stats.contexts = ContextStore.from_state_tensors(p["contexts"], "rank payload")
        stats.contexts.tokenizer_source = p["tokenizer_source"]
    return stats


def gather_stats(stats: FeatureStats) -> FeatureStats:
    """Merge every rank's stats in rank order; every rank gets the merged result (on CPU)."""
    world = dist.get_world_size()
    payloads: list[_Payload | None] = [None] * world
    dist.all_gather_object(payloads, _payload(stats))
    received = [p for p in payloads if p is not None]
    if len(received) != world:
        raise RuntimeError(f"gathered the stats of {len(received)} of {world} ranks")
    merged = _from_payload(received[0])
    for p in received[1:]:
        merged.merge(_from_payload(p))
    merged.info = dict(stats.info)
    if stats.contexts is not None and merged.contexts is not None:
        merged.contexts.tokenizer = stats.contexts.tokenizer
    return merged


def collect_distributed(
    model: CausalLM,
    tokenizer: Tokenizer,
    corpus: Iterable[CorpusItem],
    layer: int,
    sae: SparseAutoencoder | str | Path,
    config: CollectConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
) -> FeatureStats:
    """:func:`~interp_sot.features.collect.collect` on this rank's shard, merged across ranks.

    Every rank must pass the same corpus (in the same order), config and layer.
    """
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call init_from_env() (under torchrun) first")
    rank, world = dist.get_rank(), dist.get_world_size()
    ckpt = Path(checkpoint_dir) / f"rank{rank}" if checkpoint_dir is not None else None
    local = collect(model, tokenizer, corpus, layer, sae, config, checkpoint_dir=ckpt, shard=(rank, world),
                    allow_empty=True)
    merged = gather_stats(local)
    if merged.n_tokens == 0:
        raise ValueError("the corpus yielded no tokens to count on any rank (empty, or only BOS/padding)")
    return merged
