"""The SAE-level diversity outcome: which SAE features each generated trace activates, stored sparsely.

The paper measures steering's effect on feature diversity (coverage and entropy within the personality and
expertise feature sets). Each trace's generated tokens are re-encoded with the SAE: prompt + completion is
forwarded to the SAE's layer WITHOUT steering (the steered stream contains s·d by construction, so encoding it
would partly measure the steering vector itself; ``stream="steered"`` adds it back for comparison), the
completion positions are encoded, and per-feature totals are kept.

A trace activates a few hundred of the SAE's features, so the totals are stored sparse: the ids of features
active at least once, with their activation mass and active-token count (:class:`SparseTotals`). Coverage and
entropy of any feature set then come from ``analysis.diversity.set_diversity`` on :meth:`SparseTotals.dense`,
with the same definitions (threshold, mass vs count weighting) as everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from interp_sot.activations import shared_prefix_forward, shared_prefix_length
from interp_sot.analysis.diversity import FeatureTotals, feature_totals, set_diversity
from interp_sot.layers import resolve_layer, unwrap

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, SparseAutoencoder

logger = logging.getLogger(__name__)

Stream = Literal["unsteered", "steered"]


@dataclass(frozen=True)
class SparseTotals:
    """One trace's per-feature totals, only for features active at least once."""

    indices: np.ndarray
    """[k] int64 sorted ids of the features active on some generated token."""
    mass: np.ndarray
    """[k] float64 Σ_t a_tf over the tokens where feature f is active."""
    count: np.ndarray
    """[k] int64 number of tokens where feature f is active."""
    n_tokens: int
    """Generated tokens encoded."""
    d_sae: int

    @classmethod
    def from_totals(cls, totals: FeatureTotals) -> SparseTotals:
        idx = np.flatnonzero(totals.count > 0)
        return cls(idx.astype(np.int64), totals.mass[idx].astype(np.float64), totals.count[idx].astype(np.int64),
                   int(totals.n_tokens), int(totals.mass.shape[0]))

    def dense(self) -> FeatureTotals:
        """The [d_sae] totals ``analysis.diversity.set_diversity`` reads."""
        mass = np.zeros(self.d_sae, dtype=np.float64)
        count = np.zeros(self.d_sae, dtype=np.int64)
        mass[self.indices] = self.mass
        count[self.indices] = self.count
        return FeatureTotals(mass, count, self.n_tokens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a trace record)."""
        return {"indices": self.indices.tolist(), "mass": self.mass.tolist(), "count": self.count.tolist(),
                "n_tokens": self.n_tokens, "d_sae": self.d_sae}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SparseTotals:
        try:
            idx = np.asarray(d["indices"], dtype=np.int64)
            mass = np.asarray(d["mass"], dtype=np.float64)
            count = np.asarray(d["count"], dtype=np.int64)
            n_tokens, d_sae = _whole(d["n_tokens"]), _whole(d["d_sae"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a sparse feature-totals record: {err}") from err
        if not (idx.shape == mass.shape == count.shape) or idx.ndim != 1:
            raise ValueError("sparse totals need indices, mass and count of one common length")
        if idx.size and (idx.min() < 0 or idx.max() >= d_sae or np.any(np.diff(idx) <= 0)):
            raise ValueError(f"sparse totals indices must be sorted, distinct and within 0..{d_sae - 1}")
        return cls(idx, mass, count, n_tokens, d_sae)


def _whole(value: object) -> int:
    """A JSON count as an int (TypeError for anything that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a whole number, got {value!r}")
    return int(value)


def _resid_batches(
    model: CausalLM | torch.nn.Module,
    layer: int,
    prompts: list[list[int]],
    completions: list[list[int]],
    batch_size: int,
    min_shared_prefix: int = 32,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (trace index, completion residuals [n_i, d_model]) for every trace, batch by batch (right-padded; a
    few-shot prefix that every prompt of a batch shares runs once, ``activations.shared_prefix_forward``)."""
    module = unwrap(model)
    target = resolve_layer(module, layer)
    for start in range(0, len(prompts), batch_size):
        rows = list(range(start, min(start + batch_size, len(prompts))))
        shared = shared_prefix_length([prompts[i] for i in rows], min_shared_prefix)
        hidden = shared_prefix_forward(module, prompts[rows[0]][:shared],
                                       [(prompts[i] + completions[i])[shared:] for i in rows], layer_module=target)
        for b, i in enumerate(rows):
            p = len(prompts[i]) - shared
            yield i, hidden[b, p : p + len(completions[i])]


def trace_feature_totals(
    model: CausalLM | torch.nn.Module,
    sae: SparseAutoencoder,
    layer: int,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    threshold: float = 0.0,
    batch_size: int = 8,
    stream: Stream = "unsteered",
    direction: torch.Tensor | None = None,
    strengths: Sequence[float] | None = None,
) -> list[SparseTotals]:
    """Sparse per-feature totals of each trace's generated tokens, encoded by ``sae`` at ``layer``'s resid_post.

    prompt_ids / completion_ids: unpadded token ids per trace (``coherence.split_generated`` gives them from a
    generate batch; stored records can be re-tokenised). ``stream="steered"`` encodes resid + s_i·direction
    ([d_model], one strength per trace): the stream the steered model actually carried at ``layer`` when it was
    steered there at resid_post with scope "all" (steering at layer L leaves layers <= L unchanged).
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(completion_ids)} completions")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [list(p) for p in prompt_ids]
    completions = [list(c) for c in completion_ids]
    if any(not c for c in completions):
        raise ValueError("every trace needs at least one generated token to encode")
    offsets: torch.Tensor | None = None
    if stream == "steered":
        if direction is None or strengths is None or len(strengths) != len(prompts):
            raise ValueError("stream='steered' needs a [d_model] direction and one strength per trace")
        offsets = torch.tensor([float(s) for s in strengths], dtype=torch.float32)[:, None] * direction.float()[None]
    elif stream != "unsteered":
        raise ValueError(f"stream must be 'unsteered' or 'steered', got {stream!r}")
    out: list[SparseTotals | None] = [None] * len(prompts)
    with torch.inference_mode():
        for i, resid in _resid_batches(model, layer, prompts, completions, batch_size):
            x = resid.float()
            if offsets is not None:
                x = x + offsets[i].to(x.device)
            out[i] = SparseTotals.from_totals(feature_totals(x.to(_sae_dtype(sae)), sae, threshold=threshold))
    return [t for t in out if t is not None]


def _sae_dtype(sae: SparseAutoencoder) -> torch.dtype:
    w = getattr(sae, "W_enc", None)
    return w.dtype if isinstance(w, torch.Tensor) else torch.float32


def diversity_frame(
    totals: Sequence[SparseTotals],
    feature_sets: Mapping[str, Sequence[int] | np.ndarray],
    *,
    keys: Sequence[str] | None = None,
    weighting: Literal["mass", "count"] = "mass",
    log_base: float | None = None,
) -> pd.DataFrame:
    """Tidy table, one row per (trace, feature set): key, feature_set, coverage, entropy, set_size, total,
    n_tokens; ready for the analyze stage's regression on strength."""
    if not feature_sets:
        raise ValueError("feature_sets is empty")
    names = list(keys) if keys is not None else [str(i) for i in range(len(totals))]
    if len(names) != len(totals):
        raise ValueError(f"{len(names)} keys for {len(totals)} traces")
    rows = []
    for key, t in zip(names, totals, strict=True):
        dense = t.dense()
        for name, idx in feature_sets.items():
            d = set_diversity(dense, idx, weighting=weighting, log_base=log_base, name=name)
            rows.append({"key": key, "feature_set": name, "coverage": d.coverage, "entropy": d.entropy,
                         "set_size": d.set_size, "total": d.total, "n_tokens": t.n_tokens})
    cols = ["key", "feature_set", "coverage", "entropy", "set_size", "total", "n_tokens"]
    return pd.DataFrame(rows, columns=cols)


def feature_sets(
    screen_table: pd.DataFrame,
    categories: pd.DataFrame | None = None,
    *,
    ratio_threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """The feature sets the diversity outcome is measured in, as sorted id arrays.

    ``conversational``: features of the screening table with conversation ratio > ``ratio_threshold``;
    ``non_conversational``: every other feature of the table (NaN ratios, i.e. never-fired or unjudged features,
    included). With the judge's ``categories`` (``screening.categories.classify_categories``, indexed by feature
    id) also ``personality`` and ``expertise``. Empty sets are left out (coverage within nothing is undefined).
    """
    for col in ("feature", "conversation_ratio"):
        if col not in screen_table.columns:
            raise ValueError(f"the screening table has no {col!r} column")
    ids = screen_table["feature"].to_numpy().astype(np.int64)
    conv = screen_table["conversation_ratio"].to_numpy(dtype=np.float64) > ratio_threshold
    sets = {"conversational": np.sort(ids[conv]), "non_conversational": np.sort(ids[~conv])}
    if categories is not None:
        for name, col in (("personality", "is_personality"), ("expertise", "is_expertise")):
            if col not in categories.columns:
                raise ValueError(f"the categories table has no {col!r} column")
            sets[name] = np.sort(categories.index.to_numpy()[categories[col].to_numpy(dtype=bool)].astype(np.int64))
    empty = [k for k, v in sets.items() if v.size == 0]
    if empty:
        logger.info("feature sets %s are empty and left out of the diversity outcome", empty)
    return {k: v for k, v in sets.items() if v.size}
