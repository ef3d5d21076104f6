"""How far a judge can be trusted: its conversational calls against the corpus's document labels.

The shipped screening corpus labels every document conversational or not. Before a full screen, judge a few
features' top contexts (``screen`` with a judge and a store) and compare each judged context's call
(score >= threshold) with the label of the document it came from: accuracy and Cohen's kappa over the judged
contexts. Contexts whose judge replies were invalid are not judged and do not count (reported separately); the
labels are a proxy (a line of narration inside a play is labelled conversational), so kappa well below 1 can be
the labels' fault as much as the judge's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interp_sot.screening.conversation_ratio import Renderer, as_numpy, resolve_features, top_contexts
from interp_sot.screening.score_store import ScoreStore

if TYPE_CHECKING:
    from interp_sot.features.stats import FeatureStats


@dataclass(frozen=True)
class Agreement:
    """Agreement of binary judge calls with binary labels."""

    n: int
    """Items with both a judge call and a label."""
    accuracy: float
    """Share of items where the call equals the label (NaN when n = 0)."""
    kappa: float
    """Cohen's kappa (NaN when n = 0 or when both sides are constant and equal, where it is undefined)."""
    confusion: np.ndarray
    """[2, 2] counts: rows label (False, True), columns judge call (False, True)."""
    unjudged: int = 0
    """Items with a label but no valid judge score (invalid replies or not judged yet)."""


def cohen_kappa(calls: Sequence[bool] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of two binary raters over the same items."""
    a = np.asarray(calls, dtype=bool)
    b = np.asarray(labels, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"calls and labels must be 1-d of equal length, got {a.shape} and {b.shape}")
    if a.size == 0:
        return float("nan")
    p_o = float(np.mean(a == b))
    p_e = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    if p_e == 1.0:
        return float("nan")
    return (p_o - p_e) / (1 - p_e)


def agreement(calls: Sequence[bool] | np.ndarray, labels: Sequence[bool] | np.ndarray, unjudged: int = 0) -> Agreement:
    """Accuracy, kappa and confusion matrix of ``calls`` against ``labels``."""
    a = np.asarray(calls, dtype=bool)
    b = np.asarray(labels, dtype=bool)
    kappa = cohen_kappa(a, b)
    confusion = np.zeros((2, 2), dtype=np.int64)
    np.add.at(confusion, (b.astype(np.int64), a.astype(np.int64)), 1)
    accuracy = float(np.mean(a == b)) if a.size else float("nan")
    return Agreement(n=int(a.size), accuracy=accuracy, kappa=kappa, confusion=confusion, unjudged=unjudged)


def judge_agreement(
    stats: FeatureStats,
    render: Renderer,
    doc_labels: Sequence[bool] | np.ndarray,
    store: ScoreStore,
    features: Sequence[int] | None = None,
    k: int = 50,
    score_threshold: float = 50.0,
) -> Agreement:
    """Agreement of the stored judge scores of the features' distinct top-``k`` contexts with their documents'
    labels (``doc_labels[seq]``; NaN/None = unknown, skipped). ``store`` is the screen's score store (its judge
    and prompt); ``render`` must be the renderer the screen used, so texts match."""
    if getattr(stats, "topk_values", None) is None:
        raise ValueError("these stats hold no top-k contexts (topk_values missing); collect with k > 0")
    ids = resolve_features(int(as_numpy(stats.topk_values).shape[0]), features)
    seq, pos, valid = top_contexts(stats, ids, k)
    labels = np.asarray(doc_labels, dtype=np.float64).reshape(-1)
    pairs = sorted({(int(s), int(p)) for s, p in zip(seq[valid].tolist(), pos[valid].tolist(), strict=True)})
    calls: list[bool] = []
    truth: list[bool] = []
    unjudged = 0
    for s, p in pairs:
        if s >= labels.size:
            raise ValueError(f"top-k contexts refer to sequence {s} but only {labels.size} labels given")
        if np.isnan(labels[s]):
            continue
        score = store.get(render(s, p))
        if score is None:
            unjudged += 1
            continue
        calls.append(float(score) >= score_threshold)
        truth.append(bool(labels[s] > 0.5))
    return agreement(calls, truth, unjudged=unjudged)
