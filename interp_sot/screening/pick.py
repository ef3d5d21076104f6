"""Choosing the one feature to steer from a screening table.

The paper steered the feature with the top conversation ratio among those passing the two-criterion filter
(feature 30939). On a small screening corpus many features reach a ratio of 1.0 from a handful of firings,
so the ranking uses the lower bound of the ratio's Wilson interval over its judged contexts
(:func:`~interp_sot.screening.screen.rank_order`), and the pick also asks for a minimum number of judged contexts:
a ratio over 3 contexts is not evidence. :func:`pick_order` is the one order of every feature that the pick
takes the first of and the feature browser shows by default.
With document labels the ratio saturates: a feature for a source's style (the stage-direction bracket of
Shakespeare's plays) scores 1.0 as surely as a feature for conversation itself. When the table has
``n_sources`` (distinct corpus sources among a feature's top contexts, :func:`source_counts`), the pick
prefers features that fire in more sources, i.e. conversation rather than one text's typography.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from interp_sot.screening.conversation_ratio import top_contexts
from interp_sot.screening.screen import rank_order

if TYPE_CHECKING:
    from interp_sot.features.stats import FeatureStats


class Pick(NamedTuple):
    """The chosen feature and the screening numbers that chose it."""

    feature: int
    conversation_ratio: float
    position_share: float
    n_contexts: int
    frequency: float
    max_act: float
    rank: int
    """Its rank among features passing the filter that have enough contexts (1 = best)."""
    n_candidates: int
    """How many features passed the filter with enough contexts."""
    n_sources: int | None = None
    """Distinct corpus sources among its top contexts (None when the table has no ``n_sources``)."""
    ratio_lo: float = float("nan")
    """Lower bound of its conversation ratio's Wilson interval over its judged contexts (the ranking key)."""
    ratio_hi: float = float("nan")
    """Upper bound of that interval."""


def source_counts(stats: FeatureStats, field: str = "source", k: int = 50) -> np.ndarray:
    """``[d_sae]``: distinct values of document metadata ``field`` among each feature's valid top-k contexts."""
    contexts = stats.contexts
    if contexts is None:
        raise KeyError(f"the stats hold no context store, so no top context has metadata field {field!r}")
    d_sae = int(np.asarray(stats.fire_count).reshape(-1).shape[0])
    seq, _pos, valid = top_contexts(stats, np.arange(d_sae), k)
    names = {int(s): contexts.metadata(int(s)).get(field) for s in np.unique(seq[valid])}
    if all(v is None for v in names.values()):
        raise KeyError(f"no top context has metadata field {field!r}; collect with metadata_fields=({field!r},)")
    codes = {v: i for i, v in enumerate(sorted({str(v) for v in names.values() if v is not None}))}
    code_of_seq = np.full(int(seq.max()) + 1, -1, dtype=np.int64)  # sequence id -> source code (-1: unknown)
    for s, v in names.items():
        if v is not None:
            code_of_seq[s] = codes[str(v)]
    coded = np.where(valid, code_of_seq[np.clip(seq, 0, None)], -1)
    return np.asarray([np.unique(row[row >= 0]).size for row in coded], dtype=np.int64)


def _is_candidate(table: pd.DataFrame, min_contexts: int, position_column: str) -> pd.Series:
    for col in ("feature", "conversation_ratio", "passes_filter", "n_contexts", "frequency", "max_act",
                position_column):
        if col not in table.columns:
            raise ValueError(f"the screening table has no {col!r} column; build it with screening.screen")
    return table["passes_filter"].astype(bool) & (table["n_contexts"] >= min_contexts)


def pick_order(table: pd.DataFrame, min_contexts: int = 20, position_column: str = "onset_share") -> pd.DataFrame:
    """Every feature of ``table`` in the pick's order: the candidates (pass the filter with at least
    ``min_contexts`` judged contexts) first, then the features that pass with fewer contexts, then the rest, each
    group by :func:`~interp_sot.screening.screen.rank_order`. The pick is its first row; the feature browser's
    default order is this order (one function, so the two cannot drift apart)."""
    candidate = _is_candidate(table, min_contexts, position_column)
    passing = table["passes_filter"].astype(bool)
    groups = [table[candidate], table[passing & ~candidate], table[~passing]]
    return pd.concat([rank_order(g, position_column) for g in groups])


def ranked_candidates(table: pd.DataFrame, min_contexts: int = 20, position_column: str = "onset_share"
                      ) -> pd.DataFrame:
    """Features passing the filter with at least ``min_contexts`` judged contexts, best first: the head of
    :func:`pick_order` (ranked by :func:`~interp_sot.screening.screen.rank_order`, as the table's ``rank``)."""
    order = pick_order(table, min_contexts, position_column)
    return order[_is_candidate(order, min_contexts, position_column)]


def pick_feature(table: pd.DataFrame, min_contexts: int = 20, position_column: str = "onset_share") -> Pick:
    """The first of :func:`ranked_candidates`; raises, saying how many features fell short, if there is none."""
    order = ranked_candidates(table, min_contexts, position_column)
    if order.empty:
        n_pass = int(table["passes_filter"].astype(bool).sum())
        raise ValueError(f"no feature passes the filter with >= {min_contexts} contexts ({n_pass} pass with fewer); "
                         "lower min_contexts or screen a larger corpus")
    best = order.iloc[0]
    return Pick(feature=int(best["feature"]), conversation_ratio=float(best["conversation_ratio"]),
                position_share=float(best[position_column]), n_contexts=int(best["n_contexts"]),
                frequency=float(best["frequency"]), max_act=float(best["max_act"]), rank=1,
                n_candidates=len(order), n_sources=int(best["n_sources"]) if "n_sources" in order.columns else None,
                ratio_lo=float(best["ratio_lo"]), ratio_hi=float(best["ratio_hi"]))
