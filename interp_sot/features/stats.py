"""Per-feature activation statistics of an SAE over a corpus, accumulated in one streaming pass.

A token "fires" a feature when its activation is finite and > 0. Per feature the stats keep: how often it
fires, the sum and sum of squares of its activations (float64), how many firings fall in the first
``first_n`` counted tokens of a sequence and in the first ``onset_n`` tokens of a sentence/turn (see
:mod:`interp_sot.features.onsets`), how many activations were NaN/inf (excluded from everything else, never
poisoning maxima), and the streaming top-k contexts (see :mod:`interp_sot.features.topk` for the tie rule);
the max activation and where it occurred are the first top-k entry.

Exactness: counts, top-k and maxima do not depend on how the stream is chunked, sharded and merged, or
interrupted and resumed. Float sums are accumulated token by token in stream order, so they are
bit-identical across chunkings and resumes on CPU; merging shards adds two partial sums, which can differ
from one pass in the last bits of the float64 (relative ~1e-16).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interp_sot.features.contexts import CONTEXTS_FILE, ContextStore, TopContext
from interp_sot.features.threads import serial_cpu
from interp_sot.features.topk import EMPTY, StreamingTopK, block_topk
from interp_sot.io import atomic_write_json, read_safetensors, write_safetensors
from interp_sot.kernels.dense_block import block_stats_fn

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1
STATS_FILE = "stats.safetensors"
SUMMARY_FILE = "stats.json"

_COUNTERS = ("fire_count", "first_n_count", "onset_count", "nonfinite_count")
_SUMS = ("act_sum", "act_sq_sum")


@dataclass(frozen=True)
class TokenInfo:
    """Where each counted token ``[n]`` sits: the rows of an activation block, in order."""

    seq_id: torch.Tensor
    """Sequence id in the corpus stream (>= 0)."""
    pos: torch.Tensor
    """Position in the sequence's stored token ids (BOS included), used to show contexts."""
    start_dist: torch.Tensor
    """Index among the sequence's counted tokens: 0 for its first counted token."""
    onset_dist: torch.Tensor
    """Distance from the latest sentence/turn onset (0 = the onset token)."""

    def __post_init__(self) -> None:
        n = self.seq_id.numel()
        for name in ("seq_id", "pos", "start_dist", "onset_dist"):
            t = torch.as_tensor(getattr(self, name))
            if t.dim() != 1 or t.numel() != n:
                raise ValueError(f"TokenInfo.{name} must be 1-D with {n} entries, got shape {tuple(t.shape)}")
            object.__setattr__(self, name, t.to(torch.int64))

    @property
    def n(self) -> int:
        return self.seq_id.numel()

    def slice(self, start: int, stop: int) -> TokenInfo:
        return TokenInfo(self.seq_id[start:stop], self.pos[start:stop], self.start_dist[start:stop],
                         self.onset_dist[start:stop])

    def to(self, device: torch.device | str) -> TokenInfo:
        return TokenInfo(self.seq_id.to(device), self.pos.to(device), self.start_dist.to(device),
                         self.onset_dist.to(device))


def firings(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Dense ``acts: [n, d_sae]`` -> (rows, features, values) of finite positive entries in row-major order,
    plus per-feature NaN/inf counts ``[d_sae]`` (None when all are finite)."""
    finite = torch.isfinite(acts)
    nonfinite = None
    if not bool(finite.all()):
        nonfinite = (~finite).sum(0)
        acts = acts.masked_fill(~finite, 0)
    d_sae = acts.shape[-1]
    flat = (acts > 0).view(-1).nonzero().squeeze(1)
    rows = torch.div(flat, d_sae, rounding_mode="floor")
    return rows, flat - rows * d_sae, acts.reshape(-1)[flat], nonfinite


class FeatureStats:
    """Streaming statistics for ``d_sae`` features; see the module docstring for definitions."""

    def __init__(
        self,
        d_sae: int,
        top_k: int = 50,
        first_n: int = 4,
        onset_n: int = 4,
        device: torch.device | str = "cpu",
        info: Mapping[str, object] | None = None,
        topk_buffer: int | None = None,
    ):
        if first_n < 0 or onset_n < 0:
            raise ValueError(f"first_n and onset_n must be >= 0, got {first_n}, {onset_n}")
        self.d_sae, self.top_k, self.first_n, self.onset_n = int(d_sae), int(top_k), int(first_n), int(onset_n)
        self.device = torch.device(device)
        self.info: dict[str, Any] = dict(info or {})
        """Provenance (model, layer, SAE, onset rule, ...), saved with the stats."""
        self.n_tokens = 0
        """Counted tokens (BOS and padding excluded)."""
        self.fire_count = torch.zeros(self.d_sae, dtype=torch.int64, device=self.device)
        self.first_n_count = torch.zeros_like(self.fire_count)
        self.onset_count = torch.zeros_like(self.fire_count)
        self.nonfinite_count = torch.zeros_like(self.fire_count)
        self.act_sum = torch.zeros(self.d_sae, dtype=torch.float64, device=self.device)
        self.act_sq_sum = torch.zeros_like(self.act_sum)
        self._topk = StreamingTopK(self.d_sae, self.top_k, self.device, topk_buffer)
        self.contexts: ContextStore | None = None
        """Token ids behind the top-k entries, when collected (see :mod:`interp_sot.features.contexts`)."""

    # -- accumulation --------------------------------------------------------------------------------
    def update(self, acts: torch.Tensor, tokens: TokenInfo) -> None:
        """Add a dense activation block ``acts: [n, d_sae]`` whose rows are the tokens ``tokens``."""
        if acts.dim() != 2 or acts.shape[1] != self.d_sae:
            raise ValueError(f"activations must be [n, {self.d_sae}], got {tuple(acts.shape)}")
        if acts.shape[0] != tokens.n:
            raise ValueError(f"{acts.shape[0]} activation rows but {tokens.n} tokens")
        rows, features, values, nonfinite = firings(acts.to(self.device))
        self._add_firings(rows, features, values, tokens, nonfinite)

    def update_sparse(
        self,
        rows: torch.Tensor,
        features: torch.Tensor,
        values: torch.Tensor,
        tokens: TokenInfo,
        nonfinite: torch.Tensor | None = None,
    ) -> None:
        """Add the firings ``(rows[i], features[i], values[i])`` of a block of ``tokens.n`` tokens.

        ``values`` must be finite and > 0; ``rows`` index ``tokens``; firings of one feature must come in row
        order (as from ``nonzero``) for sums to be chunking-independent. ``nonfinite: [d_sae]`` counts the
        block's NaN/inf activations, already left out of the firings.
        """
        if values.numel() and not bool(((values > 0) & torch.isfinite(values)).all()):
            raise ValueError("update_sparse: firing values must be finite and > 0")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= tokens.n):
            raise ValueError(f"update_sparse: rows must index the {tokens.n} tokens of the block")
        self._add_firings(rows, features, values, tokens, nonfinite)

    def _add_firings(self, rows: torch.Tensor, features: torch.Tensor, values: torch.Tensor, tokens: TokenInfo,
                     nonfinite: torch.Tensor | None) -> None:
        """:meth:`update_sparse` without input checks, for callers that produce valid firings (the encoder)."""
        self.n_tokens += tokens.n
        if nonfinite is not None:
            self.nonfinite_count += nonfinite.to(self.device, torch.int64)
        if rows.numel() == 0:
            return
        with serial_cpu(self.device):
            self._add_nonempty(rows, features, values, tokens)

    def _add_nonempty(self, rows: torch.Tensor, features: torch.Tensor, values: torch.Tensor,
                      tokens: TokenInfo) -> None:
        d = self.d_sae
        rows, features = rows.to(self.device), features.to(self.device, torch.int64)
        values = values.to(self.device, torch.float32)
        self.fire_count += torch.bincount(features, minlength=d)
        v64 = values.to(torch.float64)
        self.act_sum.index_add_(0, features, v64)
        self.act_sq_sum.index_add_(0, features, v64 * v64)
        tok = tokens.to(self.device)
        self.first_n_count += torch.bincount(features[tok.start_dist[rows] < self.first_n], minlength=d)
        self.onset_count += torch.bincount(features[tok.onset_dist[rows] < self.onset_n], minlength=d)
        self._topk.push(features, values, tok.seq_id[rows], tok.pos[rows], tok.onset_dist[rows])

    def update_dense(self, block: torch.Tensor, tokens: TokenInfo, gate: torch.Tensor | float = 0.0,
                     preacts: bool = False) -> torch.Tensor:
        """Add a dense block ``block: [n, d_sae]`` with fixed-shape ops only: no host-device sync (the GPU path).

        A token fires a feature where ``gate < block < inf``; NaN/inf entries are non-finite activations. With the
        pre-activations of a ReLU/JumpReLU SAE (``preacts=True``: -inf then means activation 0, not NaN/inf) and
        ``gate = max(threshold, 0)`` this is exactly the activations' firings. Counts and top-k equal the sparse
        path's bit for bit; the float64 sums add each feature's column as one reduction, so they match the sparse
        path to ~1e-16 relative (CUDA's ``index_add_`` is unordered too). The block's work is
        :func:`interp_sot.kernels.dense_block.block_stats` (compiled on CUDA) plus a fixed-size top-k merge.
        Returns the number of tokens with a non-finite activation, as a 0-dim device tensor.
        """
        tok = tokens.to(block.device)
        order = torch.sort(tok.pos, stable=True).indices
        order = order[torch.sort(tok.seq_id[order], stable=True).indices]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        gate_t = torch.as_tensor(gate, dtype=block.dtype, device=block.device)
        part = block_stats_fn(block.device)(block, gate_t, tok.start_dist < self.first_n,
                                            tok.onset_dist < self.onset_n, rank, preacts)
        self.n_tokens += tokens.n
        for name in (*_COUNTERS, *_SUMS):
            getattr(self, name).add_(getattr(part, name).to(self.device))
        rows, top, valid = block_topk(part.key, rank, self.top_k)
        onset = tok.onset_dist.clamp(max=torch.iinfo(torch.int32).max)
        seq, pos, ons = (torch.where(valid, t[rows], EMPTY).T for t in (tok.seq_id, tok.pos, onset))
        self._topk.merge_dense(torch.where(valid, top, 0.0).T.to(self.device), seq.to(self.device),
                               pos.to(self.device), ons.to(self.device))
        return part.bad_tokens

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another shard's statistics in place (sequence ids of the shards must be disjoint)."""
        mine = (self.d_sae, self.top_k, self.first_n, self.onset_n)
        theirs = (other.d_sae, other.top_k, other.first_n, other.onset_n)
        if mine != theirs:
            raise ValueError(f"cannot merge stats with (d_sae, top_k, first_n, onset_n) = {theirs} into {mine}")
        self.n_tokens += other.n_tokens
        for name in (*_COUNTERS, *_SUMS):
            getattr(self, name).add_(getattr(other, name).to(self.device))
        self._topk.merge(other._topk)
        if other.contexts is not None:
            if self.contexts is None:
                self.contexts = ContextStore()
            self.contexts.merge(other.contexts)
        return self

    def flush(self) -> None:
        """Fold pending top-k candidates into the table (reading a top-k property does this too)."""
        self._topk.compact()

    def prune_contexts(self) -> int:
        """Drop stored sequences that no top-k entry refers to; returns how many were dropped."""
        if self.contexts is None:
            return 0
        seq = self.topk_seq
        return self.contexts.prune(seq[seq >= 0].unique().tolist())

    # -- top-k and maxima ----------------------------------------------------------------------------
    @property
    def topk_values(self) -> torch.Tensor:
        """``[d_sae, k]`` float32, descending; 0.0 in empty slots."""
        return self._topk.values

    @property
    def topk_seq(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 sequence ids; -1 in empty slots."""
        return self._topk.seq

    @property
    def topk_pos(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 positions in the stored sequence; -1 in empty slots."""
        return self._topk.pos

    @property
    def topk_onset(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 onset distance of each top-k token; -1 in empty slots."""
        return self._topk.onset

    @property
    def max_act(self) -> torch.Tensor:
        """``[d_sae]`` float32 largest finite activation (0.0 if the feature never fired)."""
        return self.topk_values[:, 0].clone()

    @property
    def max_seq(self) -> torch.Tensor:
        return self.topk_seq[:, 0].clone()

    @property
    def max_pos(self) -> torch.Tensor:
        return self.topk_pos[:, 0].clone()

    def context(self, feature: int, rank: int = 0, window: int = 16) -> TopContext:
        """The ``rank``-th top context of ``feature``: tokens within ``window`` of the activating token."""
        if self.contexts is None:
            raise ValueError("these stats carry no context store: collect with keep_contexts=True")
        if not (0 <= feature < self.d_sae and 0 <= rank < self.top_k):
            raise IndexError(f"feature {feature} / rank {rank} outside [0, {self.d_sae}) x [0, {self.top_k})")
        seq = int(self.topk_seq[feature, rank])
        if seq == EMPTY:
            raise IndexError(f"feature {feature} has fewer than {rank + 1} top-k entries")
        pos = int(self.topk_pos[feature, rank])
        tokens, mark = self.contexts.window(seq, pos, window)
        return TopContext(tokens, mark, float(self.topk_values[feature, rank]), seq, pos,
                          int(self.topk_onset[feature, rank]), self.contexts.metadata(seq))

    # -- persistence ---------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "d_sae": self.d_sae, "top_k": self.top_k,
                "first_n": self.first_n, "onset_n": self.onset_n, "n_tokens": self.n_tokens, "info": self.info}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {name: getattr(self, name) for name in (*_COUNTERS, *_SUMS)}
        out.update(self._topk.tables())
        return out

    @classmethod
    def from_state(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, object], source: str = "state",
                   device: torch.device | str = "cpu") -> FeatureStats:
        """Stats from :meth:`state_tensors` and :meth:`meta` (as saved: ``meta`` is checked field by field)."""
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{source}: unsupported stats format version {meta.get('format_version')}")
        sizes = {}
        for key in ("d_sae", "top_k", "first_n", "onset_n", "n_tokens"):
            value = meta.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{source}: the stats metadata's {key!r} is {value!r}, not an integer")
            sizes[key] = value
        info = meta.get("info")
        if info is not None and not isinstance(info, Mapping):
            raise ValueError(f"{source}: the stats metadata's 'info' is {type(info).__name__}, not an object")
        stats = cls(sizes["d_sae"], sizes["top_k"], sizes["first_n"], sizes["onset_n"], device, info)
        stats.n_tokens = sizes["n_tokens"]
        missing = [k for k in (*_COUNTERS, *_SUMS, "topk_values", "topk_seq", "topk_pos", "topk_onset")
                   if k not in tensors]
        if missing:
            raise ValueError(f"{source}: missing tensors {missing}")
        for name in (*_COUNTERS, *_SUMS):
            t = tensors[name]
            if tuple(t.shape) != (stats.d_sae,):
                raise ValueError(f"{source}: {name} has shape {tuple(t.shape)}, expected ({stats.d_sae},)")
            setattr(stats, name, t.to(stats.device, getattr(stats, name).dtype).clone())
        stats._topk.load_tables(tensors)
        return stats

    def save(self, directory: str | Path) -> Path:
        """Write ``stats.safetensors`` (+ ``contexts.safetensors``) and a readable ``stats.json`` summary."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_safetensors(directory / STATS_FILE, self.state_tensors(), self.meta())
        if self.contexts is not None:
            self.contexts.save(directory)
        summary = {**self.meta(), "features_fired": int((self.fire_count > 0).sum()),
                   "nonfinite_total": int(self.nonfinite_count.sum()), "has_contexts": self.contexts is not None}
        atomic_write_json(directory / SUMMARY_FILE, summary)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> FeatureStats:
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"stats directory {directory} does not exist")
        tensors, meta = read_safetensors(directory / STATS_FILE)
        stats = cls.from_state(tensors, meta, str(directory / STATS_FILE), device)
        if (directory / CONTEXTS_FILE).is_file():
            stats.contexts = ContextStore.load(directory)
        return stats

    # -- tables --------------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per feature (pandas DataFrame); shares are over firings, NaN where it never fired."""
        import numpy as np
        import pandas as pd

        fires = self.fire_count.cpu().numpy()
        cols = feature_columns(self.n_tokens, fires, self.act_sum.cpu().numpy(), self.max_act.cpu().numpy(),
                               self.first_n_count.cpu().numpy(), self.onset_count.cpu().numpy())
        with np.errstate(divide="ignore", invalid="ignore"):
            safe = np.where(fires > 0, fires, np.nan)
            var = np.maximum(self.act_sq_sum.cpu().numpy() / safe - cols["mean_act"] ** 2, 0.0)
        filled = (self.topk_seq >= 0).sum(1).cpu().numpy()
        return pd.DataFrame({
            "feature": np.arange(self.d_sae),
            "fire_count": fires,
            "frequency": cols["frequency"],
            "mean_act": cols["mean_act"],
            "std_act": np.sqrt(var),
            "max_act": cols["max_act"],
            "max_seq": self.max_seq.cpu().numpy(),
            "max_pos": self.max_pos.cpu().numpy(),
            "first_n_count": self.first_n_count.cpu().numpy(),
            "first_n_share": cols["first_n_share"],
            "onset_count": self.onset_count.cpu().numpy(),
            "onset_share": cols["onset_share"],
            "topk_filled": filled,
            "topk_onset_share": topk_onset_share(self.topk_seq.cpu().numpy() >= 0, self.topk_onset.cpu().numpy(),
                                                 self.onset_n),
            "nonfinite_count": self.nonfinite_count.cpu().numpy(),
        })


def share(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, NaN elsewhere (a share over firings of a feature that never fired)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def feature_columns(n_tokens: float, fire_count: np.ndarray, act_sum: np.ndarray | None, max_act: np.ndarray | None,
                    first_n_count: np.ndarray | None, onset_count: np.ndarray | None) -> dict[str, np.ndarray]:
    """The per-feature statistics every table shows (the one home of these formulas), all ``[d_sae]`` float64.

    ``frequency`` = firings / counted tokens; ``mean_act`` = mean activation over firings; ``first_n_share`` and
    ``onset_share`` = share of firings in the first-n window of a sequence / of a sentence or turn. A count that
    the statistics do not hold (None) gives a NaN column.
    """
    fire = np.asarray(fire_count, dtype=np.float64).reshape(-1)
    nan = np.full(fire.size, np.nan)

    def vec(x: np.ndarray | None) -> np.ndarray:
        return nan if x is None else np.asarray(x, dtype=np.float64).reshape(-1)

    return {
        "frequency": fire / n_tokens if n_tokens > 0 else nan,
        "mean_act": share(vec(act_sum), fire),
        "max_act": vec(max_act),
        "first_n_share": share(vec(first_n_count), fire),
        "onset_share": share(vec(onset_count), fire),
    }


def topk_onset_share(valid: np.ndarray, onset: np.ndarray, onset_n: int) -> np.ndarray:
    """``[d_sae]``: share of each feature's valid top-k slots whose onset distance is in ``[0, onset_n)``.

    valid: [d_sae, k] bool (filled slots); onset: [d_sae, >= k] onset distances (-1 in empty slots).
    """
    dist = onset[:, : valid.shape[1]]
    hits = (valid & (dist >= 0) & (dist < onset_n)).sum(axis=1).astype(np.float64)
    return share(hits, valid.sum(axis=1).astype(np.float64))
