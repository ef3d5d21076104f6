"""Per-problem steerability: on how many problems does steering move the outcome the wrong way?

A mean effect can hide that steering helps some problems and hurts others. Tan et al. (2024, "Analysing the
generalisation and reliability of steering vectors") measure each input's steerability and report the
*anti-steerable fraction*: the share of inputs on which the steering vector moves the behaviour against its
intended direction. Here the input is a Countdown problem and the intended direction is the sign of the strength:
a positive strength should raise every outcome (accuracy, conversational marker rates), a negative one lower it.

Definitions, per outcome (``correct`` -> accuracy, or a marker / judge rate), on the problem's mean outcome over
its samples at each strength (rows with a missing outcome left out):

- contrast ``s vs baseline``: over the problems observed at both strengths, the signed change
  ``(mean_s - mean_baseline) * sign(s - baseline)``. A problem moves *with* steering when it is > 0, *against*
  when < 0, and is a *tie* when the two means are equal (e.g. wrong at both strengths; most problems for accuracy).
- contrast ``slope``: Tan et al.'s per-input steerability, the least-squares slope of the problem's means on
  strength over all its strengths (problems with >= 2 strengths); against when < 0, tie when 0.

``anti_steerable`` = against / (with + against): ties are *excluded* (a tie says nothing about direction), with a
Wilson interval over those moved problems; ``share_against`` = against / all problems of the contrast counts ties
as not against (Tan et al.'s share over all inputs). 0.5 means steering moves problems at random; near 0 means it
moves them reliably its way. ``n_ties`` says how much of the sample the first number rests on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp_sot.analysis.intervals import wilson_interval
from interp_sot.analysis.steering_effects import SweepColumns, strength_label
from interp_sot.errors import InterpSotError, shorten

SLOPE = "slope"
"""The ``contrast`` of the per-problem slope rows."""


def _counts(signed: np.ndarray, scale: np.ndarray) -> tuple[int, int, int]:
    """(with, against, ties) of signed changes; |change| <= 1e-9 x the values' magnitude is a tie (float noise)."""
    tie = np.abs(signed) <= 1e-9 * np.maximum(1.0, scale)
    return int(((signed > 0) & ~tie).sum()), int(((signed < 0) & ~tie).sum()), int(tie.sum())


def _row(outcome: str, contrast: str, strength: float, direction: float, counts: tuple[int, int, int],
         confidence: float) -> dict[str, object]:
    n_with, n_against, n_ties = counts
    moved, total = n_with + n_against, n_with + n_against + n_ties
    lo, hi = wilson_interval(n_against, moved, confidence)
    return {"outcome": outcome, "contrast": contrast, "strength": strength, "direction": direction,
            "n_problems": total, "n_with": n_with, "n_against": n_against, "n_ties": n_ties,
            "anti_steerable": n_against / moved if moved else math.nan, "ci_low": lo, "ci_high": hi,
            "share_against": n_against / total if total else math.nan}


def steerability_table(
    frame: pd.DataFrame,
    outcomes: Sequence[str],
    *,
    cols: SweepColumns | None = None,
    baseline: float = 0.0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per (outcome, contrast): each non-baseline strength vs ``baseline``, then the per-problem slope.

    ``frame``: a sweep table (one row per problem x strength x sample). Columns: ``outcome, contrast, strength``
    (NaN for the slope), ``direction`` (+1 / -1: the sign the outcome should move), ``n_problems, n_with,
    n_against, n_ties, anti_steerable, ci_low, ci_high`` (Wilson at ``confidence``), ``share_against``."""
    cols = cols or SweepColumns()
    need = [c for c in (cols.problem, cols.strength, *outcomes) if c not in frame.columns]
    if need:
        raise InterpSotError(f"sweep table lacks column(s) {need} (has {shorten(list(frame.columns))})")
    strengths = sorted(float(s) for s in pd.unique(frame[cols.strength].dropna()))
    if baseline not in strengths:
        raise InterpSotError(f"baseline strength {baseline:g} is not in the sweep (strengths: {strengths})")
    rows = []
    for y in outcomes:
        values = pd.to_numeric(frame[y].astype(float) if frame[y].dtype == bool else frame[y], errors="coerce")
        data = pd.DataFrame({"problem": frame[cols.problem], "strength": frame[cols.strength].astype(float),
                             "y": values}).dropna()
        means = data.groupby(["problem", "strength"])["y"].mean().unstack("strength")  # [problems, strengths]
        for s in strengths:
            if s == baseline:
                continue
            # a strength where the outcome is missing everywhere has no column: no problem to count
            pair = means.reindex(columns=[baseline, s]).dropna()
            direction = math.copysign(1.0, s - baseline)
            signed = (pair[s] - pair[baseline]).to_numpy(dtype=float) * direction
            scale = np.maximum(pair[s].abs().to_numpy(dtype=float), pair[baseline].abs().to_numpy(dtype=float))
            rows.append(_row(y, f"{strength_label(s)} vs {strength_label(baseline)}", s, direction,
                             _counts(signed, scale), confidence))
        slopes, scales = [], []
        for _, m in means.iterrows():
            ok = m.dropna()
            if len(ok) >= 2:
                x = ok.index.to_numpy(dtype=float)
                v = ok.to_numpy(dtype=float)
                slopes.append(float(np.polyfit(x, v, 1)[0]))
                scales.append(float(np.abs(v).max() / max(np.ptp(x), 1e-12)))
        rows.append(_row(y, SLOPE, math.nan, 1.0, _counts(np.asarray(slopes), np.asarray(scales)), confidence))
    return pd.DataFrame(rows, columns=["outcome", "contrast", "strength", "direction", "n_problems", "n_with",
                                       "n_against", "n_ties", "anti_steerable", "ci_low", "ci_high", "share_against"])
