"""Descriptive tables of one run's per-trace table (``analysis.traces``): what a run's report shows per strength.

- :func:`accuracy_table`: per (feature, strength) the accuracy with two intervals, Wilson (rows as independent) and
  a cluster bootstrap over problems (honest when a problem appears under several features or samples), and the
  change from s = 0 bootstrapped paired by problem;
- :func:`rate_table`: per (feature, strength, outcome) the mean of every registered outcome shown as a rate
  (``Outcome.rates``: the heuristic markers, the judge's counts, ...) with its problem-bootstrap interval, labelled
  with the outcome's ``method`` and ``unit``;
- :func:`control_groups`: a control run's accuracy per group (conversational / non-conversational features) with a
  Wilson interval. The control *contrast* is :func:`interp_sot.analysis.steering_effects.controls_regression`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import pandas as pd

from interp_sot.analysis.intervals import cluster_bootstrap, wilson_interval
from interp_sot.analysis.outcomes import outcome_columns, outcome_of
from interp_sot.errors import InterpSotError

NAN3 = (math.nan, math.nan, math.nan)


def accuracy_table(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Per (feature, strength): n, correct, accuracy, Wilson and bootstrap CIs, and the paired change from s = 0
    (``n_boot=0``: no bootstrap, the bootstrap columns are NaN and the change has no interval)."""
    cond = list(zip(df["feature"], df["strength"], strict=True))
    # n_boot = 0: one resample keeps the code path (the estimates do not depend on the draws); intervals are NaN
    boot = cluster_bootstrap(df["correct"].astype(float), df["problem_id"].tolist(), cond, n_boot=max(n_boot, 1),
                             seed=seed)
    index = {c: i for i, c in enumerate(boot.conditions)}
    rows = []
    for (feature, strength), part in df.groupby(["feature", "strength"], sort=True):
        i = index[(feature, strength)]
        k, n = int(part["correct"].sum()), len(part)
        w_lo, w_hi = wilson_interval(k, n, confidence)
        b_lo, b_hi = boot.interval(i, confidence) if n_boot else (math.nan, math.nan)
        ref = index.get((feature, 0.0))
        delta = boot.difference(i, ref, confidence) if ref is not None else NAN3
        if not n_boot:
            delta = (delta[0], math.nan, math.nan)
        rows.append(
            {
                "feature": feature,
                "strength": float(strength),
                "n": n,
                "n_correct": k,
                "accuracy": k / n,
                "wilson_low": w_lo,
                "wilson_high": w_hi,
                "boot_low": b_lo,
                "boot_high": b_hi,
                "delta_vs_zero": delta[0],
                "delta_low": delta[1],
                "delta_high": delta[2],
                "answered": float(part["answer"].notna().mean()) if "answer" in part else math.nan,
                "mean_new_tokens": float(part["n_new_tokens"].mean()),
            }
        )
    return pd.DataFrame(rows)


def rate_columns(df: pd.DataFrame) -> list[str]:
    """The registered outcome columns of ``df`` shown as rates (``Outcome.rates``), in column order."""
    return outcome_columns(df, rates=True)


def rate_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Long table: per (feature, strength, outcome) the mean, its problem-bootstrap CI, n coded, the outcome's
    ``method`` and ``unit`` (its registration). ``columns``: default :func:`rate_columns`; ``n_boot=0``: NaN
    intervals."""
    cols = list(columns) if columns is not None else rate_columns(df)
    cond = list(zip(df["feature"], df["strength"], strict=True))
    rows = []
    for col in cols:
        outcome = outcome_of(col)
        method, unit = (outcome.method, outcome.unit) if outcome is not None else ("computed", "per_trace")
        boot = cluster_bootstrap(df[col].astype(float), df["problem_id"].tolist(), cond, n_boot=max(n_boot, 1),
                                 seed=seed)  # n_boot = 0: the means without intervals
        for i, condition in enumerate(boot.conditions):
            feature, strength = cast(tuple[Any, Any], condition)
            mask = (df["feature"] == feature) & (df["strength"] == strength)
            lo, hi = boot.interval(i, confidence) if n_boot else (math.nan, math.nan)
            rows.append(
                {
                    "feature": feature,
                    "strength": float(strength),
                    "behaviour": col,
                    "method": method,
                    "unit": unit,
                    "mean": float(boot.estimate[i]),
                    "low": lo,
                    "high": hi,
                    "n": int(df.loc[mask, col].notna().sum()),
                }
            )
    out = pd.DataFrame(rows)
    return out.sort_values(["behaviour", "feature", "strength"]).reset_index(drop=True) if len(out) else out


def control_groups(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Per control group: n rows, features, accuracy with a Wilson CI."""
    if "group" not in df or df["group"].isna().all():
        raise InterpSotError("no control groups in these records (run them with the controls stage)")
    rows = []
    for group, g in df[df["group"].notna()].groupby("group", sort=True):
        k, n = int(g["correct"].sum()), len(g)
        lo, hi = wilson_interval(k, n, confidence)
        rows.append({"group": group, "n": n, "features": g["feature"].nunique(), "accuracy": k / n,
                     "wilson_low": lo, "wilson_high": hi})
    return pd.DataFrame(rows)
