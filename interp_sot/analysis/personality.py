"""Personality diversity: BFI-10 scoring per perspective and the spread of each Big Five dimension across the
perspectives of one trace.

BFI-10 (Rammstedt & John, 2007): ten items rated 1-5; items 1, 3, 4, 5 and 7 are reverse-keyed (scored 6 − x);
each dimension is the mean of its two items: E = (1R, 6), A = (2, 7R), C = (3R, 8), N = (4R, 9), O = (5R, 10).
The paper's personality diversity is the per-dimension SD of these scores across a trace's perspectives. Two
choices it leaves open are explicit parameters: ``ddof`` (1, the sample SD, by default) and what a trace with a
single perspective gets (``single``): a lone voice has no spread, so ``"zero"`` (default) reports 0 for every
dimension; ``"drop"`` leaves the trace out; ``"error"`` raises. Every output row carries ``n_perspectives``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

BFI10_ITEMS: tuple[str, ...] = (
    "is reserved",
    "is generally trusting",
    "tends to be lazy",
    "is relaxed, handles stress well",
    "has few artistic interests",
    "is outgoing, sociable",
    "tends to find fault with others",
    "does a thorough job",
    "gets nervous easily",
    "has an active imagination",
)
"""Item wording, each completing "I see myself as someone who ..." (items 1-10 in order)."""

REVERSE_KEYED: frozenset[int] = frozenset({1, 3, 4, 5, 7})
"""1-based items scored 6 − x."""

DIMENSIONS: dict[str, tuple[int, int]] = {
    "extraversion": (1, 6),
    "agreeableness": (2, 7),
    "conscientiousness": (3, 8),
    "neuroticism": (4, 9),
    "openness": (5, 10),
}
"""Big Five dimension -> its two 1-based items."""

ITEM_COLUMNS: tuple[str, ...] = tuple(f"bfi_{i}" for i in range(1, 11))
"""Default column names of the ten item ratings in perspective tables."""


def _check_items(values: np.ndarray, where: Sequence[str]) -> None:
    """``values: [n, 10]``; raise naming the first offending row when a rating is missing or outside 1..5."""
    bad = ~np.isfinite(values) | (values < 1) | (values > 5)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        what = "missing" if not np.isfinite(values[r, c]) else f"{values[r, c]!r} outside 1..5"
        raise ValueError(
            f"BFI-10 item {c + 1} of {where[r]} is {what} ({int(bad.any(axis=1).sum())} row(s) affected); "
            "drop perspectives without scores first, or pass missing='drop'"
        )


def score_bfi10(items: Sequence[float]) -> dict[str, float]:
    """The five dimension scores of one set of ten ratings (item 1 first)."""
    arr = np.asarray(items, dtype=np.float64)
    if arr.shape != (10,):
        raise ValueError(f"BFI-10 needs exactly 10 item ratings, got {arr.shape[0] if arr.ndim == 1 else arr.shape}")
    _check_items(arr[None, :], ["the ratings"])
    return {k: float(v) for k, v in zip(DIMENSIONS, _score(arr[None, :])[0], strict=True)}


def _score(values: np.ndarray) -> np.ndarray:
    """``[n, 10]`` ratings -> ``[n, 5]`` dimension scores (columns in ``DIMENSIONS`` order)."""
    keyed = values.copy()
    rev = [i - 1 for i in sorted(REVERSE_KEYED)]
    keyed[:, rev] = 6.0 - keyed[:, rev]
    return np.column_stack([(keyed[:, a - 1] + keyed[:, b - 1]) / 2 for a, b in DIMENSIONS.values()])


def bfi10_scores(
    df: pd.DataFrame,
    item_columns: Sequence[str] = ITEM_COLUMNS,
    *,
    missing: Literal["error", "drop"] = "error",
) -> pd.DataFrame:
    """Add the five dimension columns to a table with one row per perspective (other columns kept).

    ``missing="drop"`` removes perspectives with any missing rating (logged); out-of-range ratings always raise.
    """
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if len(item_columns) != 10:
        raise ValueError(f"item_columns must name 10 columns, got {len(item_columns)}")
    absent = [c for c in item_columns if c not in df.columns]
    if absent:
        raise ValueError(f"perspective table lacks BFI-10 column(s) {absent}")
    values = df[list(item_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    nan_rows = np.isnan(values).any(axis=1)
    if missing == "drop" and nan_rows.any():
        logger.info("dropping %d perspective(s) without complete BFI-10 ratings", int(nan_rows.sum()))
        df, values = df.loc[~nan_rows], values[~nan_rows]
    where = [f"row {i}" + _row_label(df, i) for i in range(len(df))]
    _check_items(values, where)
    out = df.copy()
    for name, col in zip(DIMENSIONS, _score(values).T, strict=True):
        out[name] = col
    return out


def _row_label(df: pd.DataFrame, i: int) -> str:
    parts = [f"{c}={_plain(df[c].iloc[i])!r}" for c in ("trace_id", "perspective_id") if c in df.columns]
    return f" ({', '.join(parts)})" if parts else ""


def personality_diversity(
    scores: pd.DataFrame,
    *,
    by: str = "trace_id",
    ddof: int = 1,
    single: Literal["zero", "drop", "error"] = "zero",
) -> pd.DataFrame:
    """Per-trace SD of each dimension across perspectives.

    Args:
        scores: one row per perspective with a ``by`` column and the five dimension columns
            (from :func:`bfi10_scores`).
        ddof: delta degrees of freedom of the SD (1 = sample SD, 0 = population SD).
        single: handling of traces with fewer than ``ddof + 1`` perspectives, where the SD is undefined
            (with ``ddof=0`` a single perspective has SD 0 by definition and is kept).

    Returns one row per trace: ``by``, ``n_perspectives``, ``sd_<dimension>`` for each dimension and
    ``sd_mean`` (their mean).
    """
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}")
    if single not in ("zero", "drop", "error"):
        raise ValueError(f"single must be 'zero', 'drop' or 'error', got {single!r}")
    need = [by, *DIMENSIONS]
    absent = [c for c in need if c not in scores.columns]
    if absent:
        raise ValueError(f"scores lack column(s) {absent}; run bfi10_scores first")
    if scores[list(DIMENSIONS)].isna().any().any():
        raise ValueError("scores contain missing dimension values; score with bfi10_scores(missing=...) first")
    grouped = scores.groupby(by, sort=True)
    n = grouped.size().rename("n_perspectives")
    sd = grouped[list(DIMENSIONS)].std(ddof=ddof)
    sd.columns = [f"sd_{c}" for c in DIMENSIONS]
    too_few = n <= ddof
    if too_few.any():
        if single == "error":
            raise ValueError(
                f"{int(too_few.sum())} trace(s) have <= {ddof} perspective(s), so their SD (ddof={ddof}) is "
                f"undefined (e.g. {by}={_plain(too_few[too_few].index[0])!r}); pass single='zero' or 'drop'"
            )
        if single == "zero":
            sd.loc[too_few] = 0.0
        else:
            logger.info("dropping %d trace(s) with <= %d perspective(s)", int(too_few.sum()), ddof)
            sd, n = sd.loc[~too_few], n.loc[~too_few]
    out = pd.concat([n, sd], axis=1)
    out["sd_mean"] = out[[f"sd_{c}" for c in DIMENSIONS]].mean(axis=1)
    return out.reset_index()


def _plain(v: object) -> object:
    """numpy scalars as Python values, so error messages read ``2`` rather than ``np.int64(2)``."""
    return v.item() if isinstance(v, np.generic) else v
