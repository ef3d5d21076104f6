"""One pass over a corpus: model up to layer L, fused SAE encode, streaming feature statistics.

Layer ``L`` is HF decoder layer ``L`` (0-based); its output is sae-lens ``blocks.L.hook_resid_post``. The
forward stops there: a hook on layer L raises a private exception once it has the output, so the remaining
layers and the LM head never run.

Batches are right-padded (every token keeps positions ``0..len-1`` whatever it is batched with) and formed
greedily in stream order under a padded-token budget. Every ``checkpoint_every`` counted tokens the top-k is
compacted, the context store pruned, and (with ``checkpoint_dir``) the whole state written atomically as one
file at a batch boundary; a killed run restarted with the same arguments skips the documents already done and
forms the same batches, so it ends with the same statistics as an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from interp_sot.activations import forward_to_layer
from interp_sot.features.collect_config import CollectConfig
from interp_sot.features.contexts import ContextStore
from interp_sot.features.corpus import CorpusItem, Document, batch_documents, pad_batch, tokenize_documents
from interp_sot.features.encode import FusedEncoder, encode_stats
from interp_sot.features.onsets import OnsetTracker
from interp_sot.features.sae import load_sae
from interp_sot.features.stats import FeatureStats, TokenInfo
from interp_sot.io import read_safetensors, write_safetensors
from interp_sot.layers import residual_width, resolve_layer, unwrap

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.safetensors"


def _token_info(batch: list[Document], tracker: OnsetTracker) -> tuple[TokenInfo, torch.Tensor]:
    """TokenInfo of the batch's counted tokens in row-major order, and their ``[B, T]`` mask."""
    width = max(len(d.token_ids) for d in batch)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    seq, pos, start, onset = [], [], [], []
    for i, d in enumerate(batch):
        n = d.n_counted
        mask[i, d.first_counted : len(d.token_ids)] = True
        seq.append(torch.full((n,), d.index, dtype=torch.int64))
        pos.append(torch.arange(d.first_counted, len(d.token_ids)))
        start.append(torch.arange(n))
        onset.append(torch.tensor(tracker.distances(d.token_ids[d.first_counted :]), dtype=torch.int64))
    return TokenInfo(torch.cat(seq), torch.cat(pos), torch.cat(start), torch.cat(onset)), mask


def _sae_checksum(sae: SparseAutoencoder) -> float:
    return float(sae.W_enc.detach().double().sum()) + float(sae.b_enc.detach().double().sum())


def _save_checkpoint(path: Path, stats: FeatureStats, docs_done: int, complete: bool, fingerprint: dict) -> None:
    tensors = stats.state_tensors()
    if stats.contexts is not None:
        tensors.update(stats.contexts.state_tensors())
    meta = {"stats": stats.meta(), "docs_done": docs_done, "complete": complete, "fingerprint": fingerprint,
            "tokenizer_source": stats.contexts.tokenizer_source if stats.contexts is not None else None}
    write_safetensors(path, tensors, meta)


def _load_checkpoint(path: Path, fingerprint: dict, device: torch.device) -> tuple[FeatureStats, int, bool]:
    tensors, meta = read_safetensors(path)
    theirs = meta.get("fingerprint", {})
    diff = sorted(k for k in set(theirs) | set(fingerprint) if theirs.get(k) != fingerprint.get(k))
    if diff:
        raise ValueError(f"checkpoint {path} was written with different settings ({', '.join(diff)}); "
                         "use the same arguments or another checkpoint_dir")
    stats = FeatureStats.from_state(tensors, meta["stats"], str(path), device)
    if "ctx_seq_ids" in tensors:
        stats.contexts = ContextStore.from_state_tensors(tensors, str(path))
        stats.contexts.tokenizer_source = meta.get("tokenizer_source")
    return stats, int(meta["docs_done"]), bool(meta["complete"])


def collect(
    model: CausalLM,
    tokenizer: Tokenizer,
    corpus: Iterable[CorpusItem],
    layer: int,
    sae: SparseAutoencoder | str | Path,
    config: CollectConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    allow_empty: bool = False,
) -> FeatureStats:
    """Statistics of every SAE feature at decoder layer ``layer`` over ``corpus`` (see the module docstring).

    ``sae`` is an sae-lens SAE or anything :func:`load_sae` accepts. ``shard = (rank, world)`` keeps only the
    documents whose index is ``rank`` modulo ``world`` (see :mod:`interp_sot.features.distributed`);
    ``allow_empty`` lets such a shard come out empty instead of raising.
    """
    from tqdm.auto import tqdm

    cfg = config or CollectConfig()
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard {shard} is not (rank, world) with 0 <= rank < world")
    sae = load_sae(sae)
    layer_module = resolve_layer(model, layer, cfg.layers_path)
    d_in, d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
    width = residual_width(model)
    if width is not None and width != d_in:
        raise ValueError(f"model residual width {width} != SAE d_in {d_in}: this SAE was not trained on this model")
    device = sae.W_enc.device
    fingerprint = {**cfg.fingerprint(), "layer": layer, "d_in": d_in, "d_sae": d_sae, "shard": list(shard),
                   "sae_checksum": _sae_checksum(sae)}
    ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    docs_done = 0
    if ckpt is not None and ckpt.is_file():
        stats, docs_done, complete = _load_checkpoint(ckpt, fingerprint, device)
        logger.info("resuming from %s: %d tokens, documents < %d done", ckpt, stats.n_tokens, docs_done)
        if stats.contexts is not None:
            stats.contexts.tokenizer = tokenizer
        if complete:
            return stats
    else:
        stats = FeatureStats(d_sae, cfg.top_k, cfg.first_n, cfg.onset_n, device)
        stats.info = {"model": getattr(unwrap(model).config, "name_or_path", None) or type(unwrap(model)).__name__,
                      "layer": layer, "hook": f"blocks.{layer}.hook_resid_post", "d_in": d_in,
                      "sae_architecture": sae.cfg.architecture(), "collect": cfg.fingerprint()}
        if cfg.keep_contexts:
            stats.contexts = ContextStore(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tracker = OnsetTracker(tokenizer, cfg.onset_rule)
    encoder = FusedEncoder(sae, cfg.chunk_size, getattr(torch, cfg.compute_dtype) if cfg.compute_dtype else None)
    model_device = next(unwrap(model).parameters()).device
    docs = tokenize_documents(corpus, tokenizer, max_length=cfg.max_length, text_field=cfg.text_field,
                              metadata_fields=cfg.metadata_fields, add_special_tokens=cfg.add_special_tokens,
                              exclude_bos=cfg.exclude_bos, start=docs_done, shard=shard)
    since_checkpoint, exhausted = 0, True
    bar = tqdm(total=cfg.max_tokens, initial=stats.n_tokens, unit="tok", disable=not cfg.progress,
               desc=f"layer {layer} stats")
    try:
        for batch in batch_documents(docs, cfg.batch_tokens):
            if cfg.max_tokens is not None and stats.n_tokens >= cfg.max_tokens:
                exhausted = False  # a rerun with a larger max_tokens continues from here
                break
            input_ids, attention_mask = pad_batch(batch, pad_id)
            hidden = forward_to_layer(model, layer_module, input_ids.to(model_device), attention_mask.to(model_device))
            if hidden.shape[-1] != d_in:
                raise ValueError(f"layer {layer} output width {hidden.shape[-1]} != SAE d_in {d_in}")
            tokens, mask = _token_info(batch, tracker)
            x = hidden[mask.to(hidden.device)]
            encode_stats(sae, x, tokens.to(device), stats, encoder=encoder)
            if stats.contexts is not None:
                for d in batch:
                    stats.contexts.add(d.index, d.token_ids, d.metadata)
            docs_done = batch[-1].index + 1
            since_checkpoint += tokens.n
            bar.update(tokens.n)
            if since_checkpoint >= cfg.checkpoint_every:
                since_checkpoint = 0
                stats.prune_contexts()
                if ckpt is not None:
                    _save_checkpoint(ckpt, stats, docs_done, False, fingerprint)
    finally:
        bar.close()
    encoder.report_nonfinite()  # one warning for the whole run, not one per batch
    if stats.n_tokens == 0 and not allow_empty:
        raise ValueError("the corpus yielded no tokens to count (empty, or only BOS/padding)")
    stats.prune_contexts()
    if ckpt is not None:
        _save_checkpoint(ckpt, stats, docs_done, exhausted, fingerprint)
    return stats
