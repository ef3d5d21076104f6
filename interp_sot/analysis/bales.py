"""Reciprocity of Bales' Interaction Process Analysis (IPA) roles as Jaccard indices.

IPA codes acts into 12 categories in four groups: positive (1-3), give (4-6), ask (7-9), negative (10-12). Acts
are reciprocal in matched pairs: asking for suggestion / opinion / orientation (9, 8, 7) against giving it
(4, 5, 6), and solidarity / tension release / agreement (1, 2, 3) against antagonism / tension / disagreement
(12, 11, 10). The paper reports a Jaccard-based balance of asking and giving and of positive and negative roles
but not its exact formula, so the variants are named and selectable:

``"pairs"`` (default)
    Within a trace, over the three matched pairs of a dimension: |pairs where both sides occur| /
    |pairs where either side occurs| (presence sets of pair slots).
``"weighted_pairs"``
    Weighted Jaccard (Ruzicka) of the act counts over the matched pairs: Σ min(n_left, n_right) /
    Σ max(n_left, n_right).
``"groups"``
    Within a trace, at the group level: 1 when both groups occur, 0 when only one does (the Jaccard of the
    singleton presence sets).
``"traces"`` (corpus level, :func:`corpus_reciprocity`)
    Across traces: |traces where both groups occur| / |traces where either occurs|.

A Jaccard index with an empty union (neither side occurs) is undefined; ``empty`` chooses what to report:
``"zero"`` (default: no reciprocity observed), ``"one"``, ``"nan"`` (explicitly requested missing) or
``"error"``. Output rows always carry the union size so empty cases can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

IPA_CATEGORIES: tuple[str, ...] = (
    "shows_solidarity",
    "shows_tension_release",
    "agrees",
    "gives_suggestion",
    "gives_opinion",
    "gives_orientation",
    "asks_for_orientation",
    "asks_for_opinion",
    "asks_for_suggestion",
    "disagrees",
    "shows_tension",
    "shows_antagonism",
)
"""Column names of categories 1-12 in Bales' order (the behaviour coder's keys)."""

RECIPROCAL_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "ask_give": ((9, 4), (8, 5), (7, 6)),
    "positive_negative": ((1, 12), (2, 11), (3, 10)),
}
"""Dimension -> matched (left, right) 1-based category pairs."""

Variant = Literal["pairs", "weighted_pairs", "groups"]
EmptyPolicy = Literal["zero", "one", "nan", "error"]


def _counts(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    if len(columns) != 12:
        raise ValueError(f"columns must name the 12 IPA categories in Bales' order, got {len(columns)}")
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ValueError(f"IPA count table lacks column(s) {absent}")
    vals = df[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals) | (vals < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"IPA count {columns[c]!r} in row {r} is {df[columns[c]].iloc[r]!r}: counts must be non-negative "
            f"numbers ({int(bad.any(axis=1).sum())} row(s) affected; drop uncoded traces first)"
        )
    return vals


def _jaccard(inter: np.ndarray, union: np.ndarray, empty: EmptyPolicy, what: str) -> np.ndarray:
    out = np.zeros_like(union, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    if (union == 0).any():
        if empty == "error":
            raise ValueError(f"{int((union == 0).sum())} row(s) have neither side of {what}; Jaccard is undefined")
        out[union == 0] = {"zero": 0.0, "one": 1.0, "nan": np.nan}[empty]
    return out


def reciprocity(
    counts: pd.DataFrame,
    *,
    variant: Variant = "pairs",
    empty: EmptyPolicy = "zero",
    columns: Sequence[str] = IPA_CATEGORIES,
    id_column: str | None = "trace_id",
) -> pd.DataFrame:
    """Per-trace reciprocity for each dimension in :data:`RECIPROCAL_PAIRS`.

    ``counts`` has one row per trace with the 12 category counts (or 0/1 presence). Returns ``id_column`` (if
    present), then ``<dimension>`` and ``<dimension>_union`` for ``ask_give`` and ``positive_negative``.
    """
    if variant not in ("pairs", "weighted_pairs", "groups"):
        raise ValueError(f"variant must be 'pairs', 'weighted_pairs' or 'groups', got {variant!r}")
    if empty not in ("zero", "one", "nan", "error"):
        raise ValueError(f"empty must be 'zero', 'one', 'nan' or 'error', got {empty!r}")
    vals = _counts(counts, columns)
    out = pd.DataFrame(index=counts.index)
    if id_column is not None and id_column in counts.columns:
        out[id_column] = counts[id_column]
    for dim, pairs in RECIPROCAL_PAIRS.items():
        left = vals[:, [a - 1 for a, _ in pairs]]
        right = vals[:, [b - 1 for _, b in pairs]]
        if variant == "pairs":
            inter = ((left > 0) & (right > 0)).sum(axis=1).astype(np.float64)
            union = ((left > 0) | (right > 0)).sum(axis=1).astype(np.float64)
        elif variant == "weighted_pairs":
            inter = np.minimum(left, right).sum(axis=1)
            union = np.maximum(left, right).sum(axis=1)
        else:
            has_l, has_r = left.sum(axis=1) > 0, right.sum(axis=1) > 0
            inter = (has_l & has_r).astype(np.float64)
            union = (has_l | has_r).astype(np.float64)
        out[dim] = _jaccard(inter, union, empty, dim)
        out[f"{dim}_union"] = union
    return out.reset_index(drop=True)


def corpus_reciprocity(
    counts: pd.DataFrame,
    *,
    empty: EmptyPolicy = "zero",
    columns: Sequence[str] = IPA_CATEGORIES,
) -> dict[str, float]:
    """The ``"traces"`` variant: per dimension, share of traces with both groups among those with either."""
    vals = _counts(counts, columns)
    out: dict[str, float] = {}
    for dim, pairs in RECIPROCAL_PAIRS.items():
        has_l = vals[:, [a - 1 for a, _ in pairs]].sum(axis=1) > 0
        has_r = vals[:, [b - 1 for _, b in pairs]].sum(axis=1) > 0
        inter = np.array([float((has_l & has_r).sum())])
        union = np.array([float((has_l | has_r).sum())])
        out[dim] = float(_jaccard(inter, union, empty, dim)[0])
    return out
