"""The conversation ratio: the share of a feature's top-activating contexts that are conversational.

The paper asks an LLM judge to score each of a feature's ~50 top contexts 0-100 for "conversational" and counts
scores >= 50. :func:`ratio_from_judge` does that, several contexts per call (``batch_size``), each distinct rendered
context judged once across all features, progress persisted. :func:`ratio_from_labels` is the judge-free mode: when
the corpus carries a per-document flag (e.g. ``conversational``), the ratio is the share of top contexts that come
from flagged documents.

Stats are read duck-typed: ``topk_values``, ``topk_seq``, ``topk_pos`` of shape ``[d_sae, k]`` (tensors or arrays).
A slot holds a context when its sequence id is >= 0 and its value is finite and > 0.

A ratio over 3 judged contexts is weak evidence next to one over 50, so every ratio carries a Wilson interval over
its judged contexts (:func:`ratio_interval`), and features are ranked by its lower bound
(:func:`interp_sot.screening.screen.rank_order`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE, format_excerpts
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.screening.batch_scoring import score_in_batches
from interp_sot.screening.score_store import ScoreStore
from interp_sot.screening.settings import RatioConfig

if TYPE_CHECKING:
    from interp_sot.features.stats import FeatureStats

logger = logging.getLogger(__name__)

Renderer = Callable[[int, int], str]
"""``render(seq, pos) -> text`` of the context window around token ``pos`` of sequence ``seq``, that token marked
``<<like this>>`` (see ``judging.prompts.conversational.MARK_OPEN``)."""


class ConversationRatio(NamedTuple):
    """Per-feature conversation ratios (rows follow ``features``)."""

    features: np.ndarray
    """[n] feature ids."""
    ratio: np.ndarray
    """[n] float share of judged top contexts that are conversational; NaN where none was judged."""
    n_contexts: np.ndarray
    """[n] int contexts that entered the ratio."""
    calls: int = 0
    """Judge calls made in this run (0 in label mode or when everything was stored)."""
    failed: int = 0
    """Distinct contexts left unjudged because their batch gave no valid reply."""


def as_numpy(x: object) -> np.ndarray:
    """A CPU numpy view of a tensor or array."""
    detach = getattr(x, "detach", None)
    if callable(detach):  # a torch tensor (torch is not imported for this)
        t = detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(x)


def ratio_interval(ratio: np.ndarray, n_contexts: np.ndarray, confidence: float = RatioConfig.confidence
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, each ``[n]``: the Wilson interval of each ratio over its ``n_contexts`` judged contexts
    (conversational count = ratio x n, rounded); NaN where nothing was judged. statsmodels' ``proportion_confint``,
    the same Wilson interval as ``analysis.intervals.wilson_interval``."""
    from statsmodels.stats.proportion import proportion_confint

    n = np.asarray(n_contexts, dtype=np.float64).reshape(-1)
    r = np.asarray(ratio, dtype=np.float64).reshape(-1)
    if r.shape != n.shape:
        raise ValueError(f"ratio and n_contexts differ in length: {r.size} vs {n.size}")
    ok = (n > 0) & np.isfinite(r)
    low, high = np.full(n.shape, np.nan), np.full(n.shape, np.nan)
    if ok.any():
        lo, hi = proportion_confint(np.round(r[ok] * n[ok]), n[ok], alpha=1 - confidence, method="wilson")
        low[ok], high[ok] = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    return low, high


def resolve_features(d_sae: int, features: Sequence[int] | np.ndarray | None) -> np.ndarray:
    """Feature ids as int64, checked against ``d_sae``; all features when None."""
    if features is None:
        return np.arange(d_sae, dtype=np.int64)
    ids = np.asarray(features, dtype=np.int64).reshape(-1)
    bad = ids[(ids < 0) | (ids >= d_sae)]
    if bad.size:
        raise ValueError(f"feature index {int(bad[0])} out of range for an SAE with {d_sae} features")
    return ids


def top_contexts(stats: FeatureStats, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(seq, pos, valid)``, each ``[len(features), min(k, stored k)]``, of the stored top contexts."""
    try:
        values, seq, pos = as_numpy(stats.topk_values), as_numpy(stats.topk_seq), as_numpy(stats.topk_pos)
    except AttributeError as err:
        raise ValueError("these stats hold no top-k contexts (topk_values/topk_seq/topk_pos missing)") from err
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"these stats hold no top-k contexts (topk_values has shape {values.shape}); "
                         "collect with k > 0")
    if seq.shape != values.shape or pos.shape != values.shape:
        raise ValueError(f"top-k arrays disagree in shape: {values.shape}, {seq.shape}, {pos.shape}")
    kk = min(k, values.shape[1])
    v, s, p = values[features, :kk], seq[features, :kk].astype(np.int64), pos[features, :kk].astype(np.int64)
    valid = (s >= 0) & np.isfinite(v) & (v > 0)
    return s, p, valid


def _d_sae(stats: FeatureStats) -> int:
    return int(as_numpy(stats.topk_values).shape[0]) if hasattr(stats, "topk_values") else len(stats.fire_count)


def ratio_from_labels(
    stats: FeatureStats, doc_labels: Sequence[bool] | np.ndarray, features: Sequence[int] | None = None, k: int = 50
) -> ConversationRatio:
    """Judge-free ratio: share of each feature's top-``k`` contexts whose sequence is labelled conversational.

    ``doc_labels[seq]`` is the label of the document sequence ``seq`` came from (bool; NaN/None = unknown, skipped).
    """
    ids = resolve_features(_d_sae(stats), features)
    seq, _, valid = top_contexts(stats, ids, k)
    labels = np.asarray(doc_labels, dtype=np.float64).reshape(-1)
    if valid.any() and seq[valid].max() >= labels.size:
        raise ValueError(f"top-k contexts refer to sequence {int(seq[valid].max())} but only {labels.size} labels "
                         "given")
    lab = np.where(valid, labels[np.where(valid, seq, 0)], np.nan)
    known = ~np.isnan(lab)
    n = known.sum(axis=1)
    hits = np.where(known, lab > 0.5, False).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(n > 0, hits / np.maximum(n, 1), np.nan)
    return ConversationRatio(features=ids, ratio=ratio, n_contexts=n.astype(np.int64))


def parse_scores(obj: object, n: int) -> list[float]:
    """Validate a reply ``{"scores": [...]}`` (or a bare list) of ``n`` numbers in [0, 100]."""
    scores = obj.get("scores") if isinstance(obj, dict) else obj
    if not isinstance(scores, list):
        raise ValueError('expected {"scores": [...]}, a list of numbers')
    if len(scores) != n:
        raise ValueError(f"expected exactly {n} scores, got {len(scores)}")
    out: list[float] = []
    for s in scores:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 100:
            raise ValueError(f"every score must be a number from 0 to 100, got {s!r}")
        out.append(float(s))
    return out


def conversational_messages(texts: list[str], template: PromptTemplate = CONVERSATIONAL_SCORE) -> list[Message]:
    """The judge prompt for one batch of rendered contexts (``template``: the shipped one or a user file's, with
    the placeholders ``n`` and ``excerpts``)."""
    return template.render(n=str(len(texts)), excerpts=format_excerpts(texts))


def ratio_from_judge(
    stats: FeatureStats,
    render: Renderer,
    judge: Judge,
    store_path: str | Path | None = None,
    features: Sequence[int] | None = None,
    config: RatioConfig | None = None,
    template: PromptTemplate = CONVERSATIONAL_SCORE,
) -> ConversationRatio:
    """Judge each feature's top-``k`` contexts and return the share scored >= ``score_threshold``.

    ``store_path`` (JSONL) persists every judged context: rerunning, or running on other features, sends only
    contexts never judged before by this judge and prompt version. ``template`` replaces the shipped prompt (e.g.
    from a prompt file); its key scopes the stored scores, so another prompt re-judges everything.
    """
    config = config or RatioConfig()
    ids = resolve_features(_d_sae(stats), features)
    seq, pos, valid = top_contexts(stats, ids, config.k)
    # Each (seq, pos) is rendered once, and each distinct text judged once, however many features share it.
    text_of: dict[tuple[int, int], int] = {}
    index_of_text: dict[str, int] = {}
    texts: list[str] = []
    slot = np.full(seq.shape, -1, dtype=np.int64)
    rows, cols = np.nonzero(valid)
    for r, c, s, p in zip(rows.tolist(), cols.tolist(), seq[valid].tolist(), pos[valid].tolist(), strict=True):
        i = text_of.get((s, p))
        if i is None:
            text = render(s, p)
            i = index_of_text.setdefault(text, len(texts))
            if i == len(texts):
                texts.append(text)
            text_of[(s, p)] = i
        slot[r, c] = i
    store = ScoreStore(store_path, judge.name, template.key)
    result = score_in_batches(
        texts, judge, store, lambda batch: conversational_messages(batch, template), parse_scores,
        batch_size=config.batch_size, retries=config.retries, on_invalid=config.on_invalid, desc="conversation ratio",
    )
    unique_scores = np.array([result.values.get(t, np.nan) for t in texts] + [np.nan])
    scores = unique_scores[slot]  # slot -1 (no context) picks the trailing NaN
    judged = ~np.isnan(scores)
    n = judged.sum(axis=1)
    hits = (np.where(judged, scores, -1.0) >= config.score_threshold).sum(axis=1)
    ratio = np.where(n > 0, hits / np.maximum(n, 1), np.nan)
    return ConversationRatio(ids, ratio, n.astype(np.int64), calls=result.calls, failed=result.failed)
