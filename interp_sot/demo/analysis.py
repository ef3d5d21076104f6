"""The demo's analysis stage: the steering sweep and the controls in the paper's regression form.

Outcomes are accuracy and the heuristic behaviour markers (per 1k words). An outcome that is constant over
the whole sweep (SmolLM2-135M rarely solves a Countdown problem in 128 tokens) has no effect to estimate, and
a design too small for clustered errors (one problem) cannot be fitted: both are listed with the reason
instead of failing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from interp_sot.io import atomic_path

log = logging.getLogger(__name__)


class DemoAnalysis(NamedTuple):
    """Tables of the analysis stage (also written as CSV)."""

    accuracy: pd.DataFrame
    """Accuracy by strength with Wilson CIs."""
    regression: pd.DataFrame
    """outcome ~ strength indicators (vs s=0) + log trace length | problem FE, SEs clustered by problem."""
    controls: pd.DataFrame
    """outcome ~ conversational (0/1) + log trace length | problem FE, for the random control features."""
    skipped: dict[str, str]
    """Outcome (``controls:`` prefix for the control fits) -> why it was not fitted."""


def _csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _varying(frame: pd.DataFrame, outcomes: Sequence[str]) -> tuple[list[str], list[str]]:
    keep, constant = [], []
    for c in outcomes:
        (keep if frame[c].astype(float).nunique(dropna=True) > 1 else constant).append(c)
    return keep, constant


def _fit_each(outcomes: Sequence[str], fit: Any, prefix: str, skipped: dict[str, str]) -> pd.DataFrame:
    """``fit(y)`` per outcome; an outcome that cannot be estimated is recorded in ``skipped`` with the reason."""
    tabs = []
    for y in outcomes:
        try:
            tab = fit(y)
        except ValueError as err:
            log.warning("%s%s not fitted: %s", prefix, y, err)
            skipped[prefix + y] = str(err)
            continue
        if "outcome" not in tab.columns:
            tab.insert(0, "outcome", y)
        tabs.append(tab)
    return pd.concat(tabs, ignore_index=True) if tabs else pd.DataFrame()


def _traces(records: Sequence[Any]) -> pd.DataFrame:
    from interp_sot.analysis.sweep_table import to_analysis_schema
    from interp_sot.experiments.report import add_marker_rates, records_frame

    return to_analysis_schema(add_marker_rates(records_frame(records))).frame


def stage_analysis(steer_records: Sequence[Any], control_records: Sequence[Any], out: Path) -> DemoAnalysis:
    """Fit and write ``accuracy_by_strength.csv``, ``regression.csv`` and ``controls_regression.csv``."""
    from interp_sot.analysis.regression import fe_ols
    from interp_sot.analysis.steering_effects import accuracy_by_strength, strength_regressions
    from interp_sot.analysis.sweep_table import OUTCOME_PREFIXES

    skipped: dict[str, str] = {}
    sweep = _traces(steer_records)
    markers = [c for c in sweep.columns if c.startswith(OUTCOME_PREFIXES)]
    outcomes, constant = _varying(sweep, ["correct", *markers])
    skipped.update({c: "constant over the sweep" for c in constant})
    acc = accuracy_by_strength(sweep)
    reg = _fit_each(outcomes, lambda y: strength_regressions(sweep, [y]), "", skipped)
    ctrl = _traces(control_records)
    ctrl = ctrl.assign(log_trace_len=np.log(ctrl["trace_len"].astype(float)))
    ctrl_outcomes, ctrl_constant = _varying(ctrl, ["correct", *markers])
    skipped.update({f"controls:{c}": "constant over the control runs" for c in ctrl_constant})
    controls = _fit_each(ctrl_outcomes, lambda y: fe_ols(ctrl, y, "conversational", "problem_id", "problem_id",
                                                         controls=["log_trace_len"]), "controls:", skipped)
    out.mkdir(parents=True, exist_ok=True)
    _csv(acc, out / "accuracy_by_strength.csv")
    _csv(reg, out / "regression.csv")
    _csv(controls, out / "controls_regression.csv")
    return DemoAnalysis(acc, reg, controls, skipped)
