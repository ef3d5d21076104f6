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
PROMPTED = "prompted"
"""The prompting arm: the unsteered model asked, by an instruction in its prompt, to reason as a conversation of
several voices. AxBench's headline is that prompting beats SAE steering, so every steering result is shown next
to it."""


def added_norms(frame: pd.DataFrame, units: Mapping[str, object] | None) -> pd.Series:
    """Signed added norm of each row (``feature``, ``strength``) from a units record; NaN where unknown."""
    if units is None:
        return pd.Series(np.nan, index=frame.index)
    rows = units.get("rows", [])
    if not isinstance(rows, list):
        raise ValueError(f"a strength units record's rows must be a list, got {type(rows).__name__}")
    lookup = {(str(r["feature"]), float(r["strength"])): math.copysign(r["added_norm"], r["strength"])
              for r in rows}
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
    controls: pd.DataFrame | None,
    *,
    picked_units: Mapping[str, object] | None,
    control_units: Mapping[str, object] | None,
    outcomes: Sequence[str] = (),
    tol: float = 1e-4,
    prompted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (condition, signed added norm): traces, accuracy with a Wilson interval, mean of each outcome.

    ``picked``: the picked feature's sweep table; ``controls``: the control runs' table (``group`` column), if any;
    ``prompted``: the prompting arm's table (unsteered, added norm 0), shown as condition ``prompted``.
    """
    p = picked.assign(condition=PICKED, added_norm=added_norms(picked, picked_units))
    if controls is None:
        controls = picked.iloc[:0].assign(group=pd.Series(dtype=object))
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
    if prompted is not None and len(prompted):
        rows.append({"condition": PROMPTED, "added_norm": 0.0, "strength": 0.0, **_summary(prompted, outcomes)})
    out = pd.DataFrame(rows)
    out["matched"] = matched
    return out.sort_values(["added_norm", "condition"], kind="stable").reset_index(drop=True)


def prompting_contrast(
    baseline: pd.DataFrame,
    prompted: pd.DataFrame,
    outcome: str,
    *,
    problem: str = "problem_id",
    length_control: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Prompted vs unsteered on the same problems: outcome ~ prompted (0/1) [+ log trace length] | problem FE,
    SEs clustered by problem (the form of every other contrast here). ``baseline``: the sweep's s = 0 rows.

    Only problems present in both arms enter, so the contrast is within problem."""
    from interp_sot.analysis.regression import fe_ols
    from interp_sot.analysis.steering_effects import add_log_length

    shared = set(baseline[problem]) & set(prompted[problem])
    if not shared:
        raise ValueError("the prompted run and the sweep's s = 0 rows share no problem: nothing to compare")
    data = pd.concat([baseline.assign(prompted=0.0), prompted.assign(prompted=1.0)], ignore_index=True)
    data = data[data[problem].isin(shared)].copy()
    data[outcome] = pd.to_numeric(data[outcome].astype(float), errors="coerce")
    controls = [add_log_length(data, "trace_len")] if length_control else []
    tab = fe_ols(data, outcome, "prompted", problem, problem, controls=controls, missing="drop", alpha=alpha)
    tab.insert(0, "outcome", outcome)
    return tab
