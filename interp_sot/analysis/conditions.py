"""The paper's three conditions side by side: the picked feature, random conversational and random
non-conversational control features, at equal added-vector norms when the controls were matched.

Each trace's signed added norm comes from its run's ``strength_units.json`` (``stages.strengths``): the picked
feature's sweep and matched-norm controls then share the same norms, so each row of the table compares the three
conditions at one size of intervention. Controls at the paper's 2 x max activation add vectors of many sizes;
they are then summarised per group over all their norms (``added_norm`` = their median).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp_sot.analysis.intervals import wilson_interval

PICKED = "picked"


def added_norms(frame: pd.DataFrame, units: Mapping[str, Any] | None) -> pd.Series:
    """Signed added norm of each row (``feature``, ``strength``) from a units record; NaN where unknown."""
    if units is None:
        return pd.Series(np.nan, index=frame.index)
    lookup = {(str(r["feature"]), float(r["strength"])): math.copysign(r["added_norm"], r["strength"])
              for r in units.get("rows", [])}
    return pd.Series([lookup.get((str(f), float(s)), np.nan) for f, s in zip(frame["feature"], frame["strength"],
                                                                             strict=True)], index=frame.index)


def _summary(g: pd.DataFrame, outcomes: Sequence[str]) -> dict[str, Any]:
    k, n = int(g["correct"].astype(float).sum()), len(g)
    lo, hi = wilson_interval(k, n, 0.95)
    row: dict[str, Any] = {"n": n, "accuracy": k / n if n else math.nan, "acc_ci_low": lo, "acc_ci_high": hi}
    for y in outcomes:
        if y in g.columns:
            row[y] = float(pd.to_numeric(g[y], errors="coerce").mean())
    return row


def condition_table(
    picked: pd.DataFrame,
    controls: pd.DataFrame,
    *,
    picked_units: Mapping[str, Any] | None,
    control_units: Mapping[str, Any] | None,
    outcomes: Sequence[str] = (),
    tol: float = 1e-4,
) -> pd.DataFrame:
    """One row per (condition, signed added norm): traces, accuracy with a Wilson interval, mean of each outcome.

    ``picked``: the picked feature's sweep table; ``controls``: the control runs' table (``group`` column).
    """
    p = picked.assign(condition=PICKED, added_norm=added_norms(picked, picked_units))
    c = controls.assign(condition=controls["group"], added_norm=added_norms(controls, control_units))
    p_norms = sorted(set(p["added_norm"].dropna().round(6)))
    c_norms = set(c["added_norm"].dropna())

    def nearest(x: float) -> float | None:  # float32 unit rows make a control's norm differ in the 7th digit
        close = [y for y in p_norms if abs(x - y) <= tol * max(1.0, abs(y))]
        return close[0] if close else None

    matched = bool(c_norms) and all(nearest(x) is not None for x in c_norms)
    if matched:
        c["added_norm"] = [nearest(x) for x in c["added_norm"]]
    rows = []
    for norm, g in p.groupby(p["added_norm"].round(6), dropna=False):
        rows.append({"condition": PICKED, "added_norm": float(norm), "strength": float(g["strength"].iloc[0]),
                     **_summary(g, outcomes)})
    for group, gg in c.groupby("condition"):
        if matched:
            for norm, g in gg.groupby(gg["added_norm"].round(6)):
                rows.append({"condition": group, "added_norm": float(norm), "strength": math.nan,
                             **_summary(g, outcomes)})
        else:
            rows.append({"condition": group, "added_norm": float(gg["added_norm"].median()), "strength": math.nan,
                         **_summary(gg, outcomes)})
    out = pd.DataFrame(rows)
    out["matched"] = matched
    return out.sort_values(["added_norm", "condition"], kind="stable").reset_index(drop=True)
