"""Residual-stream activations of a corpus at one layer, written as fp16 safetensors shards that a rerun resumes.

The forward pass stops after the hooked layer (``forward_to_layer``): at SmolLM2's size the 49k-word LM head
would otherwise cost several times the layers themselves. Position 0 of every window is dropped, because
the first token is an attention sink whose norm is far outside the rest of the stream.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from interp_sot.activations import forward_to_layer
from interp_sot.io import atomic_path, atomic_write_json
from interp_sot.layers import resolve_layer

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer

log = logging.getLogger(__name__)


@dataclass
class HarvestConfig:
    """Which activations to harvest and how to batch them."""

    layer: int = 15
    """Decoder layer whose output (resid_post) is stored."""
    seq_len: int = 128
    """Tokens per window; 128-256 is the efficient range on CPU (512 costs 25% more per token)."""
    batch_size: int = 32
    """Windows per forward pass."""
    shard_windows: int = 2048
    """Windows per shard file (2048 x 127 tokens x 576 dims x 2 bytes = 300 MB for SmolLM2)."""

    def __post_init__(self) -> None:
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 (position 0 is dropped), got {self.seq_len}")
        if self.batch_size < 1 or self.shard_windows < 1:
            raise ValueError("batch_size and shard_windows must be >= 1")


def token_windows(records: Iterable[Mapping[str, object]], tokenizer: Tokenizer, seq_len: int,
                  label_field: str = "conversational") -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of each record's tokens: ``ids [n, seq_len]`` and their record's boolean label ``[n]``.

    A record's tail shorter than ``seq_len`` is dropped, so every window is full and needs no padding.
    """
    windows: list[np.ndarray] = []
    labels: list[bool] = []
    texts, flags = [], []
    for i, record in enumerate(records):
        if "text" not in record:
            raise ValueError(f"corpus record {i} has no 'text' field")
        texts.append(str(record["text"]))
        flags.append(bool(record.get(label_field, False)))
    for start in range(0, len(texts), 64):
        encoded = tokenizer(texts[start:start + 64], add_special_tokens=False)["input_ids"]
        for ids, flag in zip(encoded, flags[start:start + 64], strict=True):
            n = len(ids) // seq_len
            if n:
                windows.append(np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len))
                labels.extend([flag] * n)
    if not windows:
        raise ValueError(f"the corpus has no record of at least {seq_len} tokens")
    return np.concatenate(windows), np.asarray(labels, dtype=bool)


def select_windows(labels: np.ndarray, n_windows: int, share: float | None, seed: int) -> np.ndarray:
    """Shuffled indices of ``n_windows`` windows, ``share`` of them labelled True (None: no balancing)."""
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    rng = np.random.default_rng(seed)
    if share is None:
        if n_windows > len(labels):
            raise ValueError(f"asked for {n_windows} windows, the corpus has {len(labels)}")
        chosen = rng.permutation(len(labels))[:n_windows]
    else:
        if not 0 <= share <= 1:
            raise ValueError(f"share must be in [0, 1], got {share}")
        n_true = round(n_windows * share)
        pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
        if n_true > len(pos) or n_windows - n_true > len(neg):
            raise ValueError(f"asked for {n_true} labelled and {n_windows - n_true} unlabelled windows; the corpus "
                             f"has {len(pos)} and {len(neg)}")
        chosen = np.concatenate([rng.permutation(pos)[:n_true], rng.permutation(neg)[: n_windows - n_true]])
    return rng.permutation(chosen)


def _fingerprint(windows: np.ndarray, cfg: HarvestConfig, dtype: torch.dtype) -> dict[str, object]:
    return {"windows_sha256": hashlib.sha256(np.ascontiguousarray(windows).tobytes()).hexdigest(),
            "n_windows": int(windows.shape[0]), "model_dtype": str(dtype), **asdict(cfg)}


def harvest(model: CausalLM, windows: np.ndarray, out_dir: Path, cfg: HarvestConfig) -> list[Path]:
    """Write shards ``out_dir/shard_XXXXX.safetensors`` (key ``acts``: ``[tokens, d_model]`` fp16); skip finished ones.

    ``windows``: ``[n, seq_len]`` token ids. The manifest pins the windows, layer and model dtype, so a
    rerun with different inputs fails instead of mixing shards from two harvests.
    """
    if windows.ndim != 2 or windows.shape[1] != cfg.seq_len:
        raise ValueError(f"windows must be [n, {cfg.seq_len}], got {list(windows.shape)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = next(model.parameters()).dtype
    fingerprint = _fingerprint(windows, cfg, dtype)
    manifest = out_dir / "manifest.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != fingerprint:
            raise ValueError(f"{out_dir} holds a different harvest ({manifest}); use another folder or delete it")
    else:
        atomic_write_json(manifest, fingerprint)
    layer = resolve_layer(model, cfg.layer)
    n_shards = -(-windows.shape[0] // cfg.shard_windows)
    paths = [out_dir / f"shard_{i:05d}.safetensors" for i in range(n_shards)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    bar = tqdm(total=windows.shape[0] * (cfg.seq_len - 1), desc=f"harvest layer {cfg.layer}", unit="tok",
               initial=(n_shards - len(todo)) * cfg.shard_windows * (cfg.seq_len - 1))
    for i in todo:
        chunk = windows[i * cfg.shard_windows:(i + 1) * cfg.shard_windows]
        parts = []
        for b in range(0, len(chunk), cfg.batch_size):
            ids = torch.from_numpy(chunk[b:b + cfg.batch_size])
            resid = forward_to_layer(model, layer, ids, torch.ones_like(ids))
            parts.append(resid[:, 1:].reshape(-1, resid.shape[-1]).to(torch.float16))
            bar.update(parts[-1].shape[0])
        acts = torch.cat(parts)
        if not torch.isfinite(acts).all():
            raise FloatingPointError(f"non-finite activations in shard {i}; fp16 overflow or a broken model")
        with atomic_path(paths[i]) as tmp:
            save_file({"acts": acts.contiguous()}, str(tmp))
    bar.close()
    return paths


def drop_massive(acts: torch.Tensor, factor: float = 10.0) -> tuple[torch.Tensor, int]:
    """``acts`` without tokens whose norm exceeds ``factor`` x the median norm, and how many were dropped.

    Why: a few tokens per thousand windows carry "massive activations" (attention sinks; in SmolLM2 layer 15
    about 0.02% of tokens, norm ~24,000 against a median of ~171, all along one direction). Their squared norm
    outweighs the rest of the data's variance together, so left in they dominate the SAE's loss and its
    explained variance. Position 0 is dropped for the same reason at harvest time.
    """
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    norms = torch.cat([acts[i:i + 65536].float().norm(dim=-1) for i in range(0, acts.shape[0], 65536)])
    keep = norms <= factor * norms.median()
    return acts[keep], int((~keep).sum())


def load_shards(paths: Iterable[Path]) -> torch.Tensor:
    """All shards concatenated: ``[tokens, d_model]`` fp16."""
    tensors = [load_file(str(p))["acts"] for p in paths]
    if not tensors:
        raise ValueError("no activation shards to load")
    return torch.cat(tensors)
