"""Effects of steering strength on accuracy and behaviours, from a sweep table (one row per problem × strength).

The paper's regressions: for each outcome, a linear (probability) model on indicators of each strength against
the baseline (s = 0), problem fixed effects, a log(trace length) control and SEs clustered by problem; and the
mediation of the s = 0 -> +10 accuracy gain through behaviour counts. The sweep table columns (names are
parameters) are ``problem_id``, ``strength``, ``correct`` (0/1 or bool), ``trace_len`` (tokens, > 0) and any
numeric behaviour / diversity columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp_sot.analysis.fixed_effects import MissingPolicy
from interp_sot.analysis.intervals import wilson_interval
from interp_sot.analysis.mediation import MediationConfig, mediate
from interp_sot.analysis.regression import fe_ols


@dataclass(frozen=True)
class SweepColumns:
    """Column names of a sweep table."""

    problem: str = "problem_id"
    """problem identifier: absorbed fixed effect."""
    strength: str = "strength"
    """steering strength (numeric)."""
    correct: str = "correct"
    """1/True when the answer was right."""
    trace_len: str = "trace_len"
    """trace length in tokens; enters as log(trace_len)."""
    cluster: str | None = None
    """cluster column for SEs (None: the problem column, the paper's task-level clustering)."""

    @property
    def cluster_col(self) -> str:
        return self.cluster or self.problem


STRENGTH_TERM_PREFIX = "s="
"""Regression terms named ``s=+10`` are strength indicators (``strength_label``); others are controls."""


def strength_label(s: float) -> str:
    return f"{STRENGTH_TERM_PREFIX}{s:+g}"


def is_strength_term(term: object) -> bool:
    """Whether a regression ``term`` is a strength indicator (a tested contrast), not a control such as the log
    trace length."""
    return isinstance(term, str) and term.startswith(STRENGTH_TERM_PREFIX)


def _check(df: pd.DataFrame, cols: SweepColumns, extra: Sequence[str] = ()) -> None:
    need = [cols.problem, cols.strength, cols.correct, cols.trace_len, *extra]
    if cols.cluster:
        need.append(cols.cluster)
    absent = [c for c in dict.fromkeys(need) if c not in df.columns]
    if absent:
        raise ValueError(f"sweep table lacks column(s) {absent} (has {list(df.columns)})")
    if not pd.api.types.is_numeric_dtype(df[cols.strength]):
        raise ValueError(f"strength column {cols.strength!r} must be numeric, got {df[cols.strength].dtype}")
    tl = pd.to_numeric(df[cols.trace_len], errors="coerce")
    if (tl <= 0).any():
        raise ValueError(f"{cols.trace_len!r} must be > 0 to take its log ({int((tl <= 0).sum())} row(s) are not)")


def accuracy_by_strength(df: pd.DataFrame, cols: SweepColumns = SweepColumns(), alpha: float = 0.05) -> pd.DataFrame:
    """strength, n, accuracy and a Wilson interval (rows with a missing ``correct`` are not counted)."""
    _check(df, cols)
    ok = df[[cols.strength, cols.correct]].dropna()
    g = ok.groupby(cols.strength)[cols.correct]
    out = pd.DataFrame({"n": g.size(), "accuracy": g.apply(lambda s: float(np.mean(s.astype(float))))})
    k = g.apply(lambda s: round(float(np.sum(s.astype(float)))))
    bounds = [wilson_interval(int(k[s]), int(out.loc[s, "n"]), 1 - alpha) for s in out.index]
    out["ci_low"], out["ci_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return out.reset_index().rename(columns={cols.strength: "strength"})


def strength_regressions(
    df: pd.DataFrame,
    outcomes: Sequence[str],
    *,
    cols: SweepColumns = SweepColumns(),
    baseline: float = 0.0,
    length_control: bool = True,
    missing: MissingPolicy = "error",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """For each outcome: outcome ~ Σ_s 1[strength = s] (+ log trace_len) | problem, SEs clustered.

    Returns the tidy rows of every fit with an ``outcome`` column, plus ``nobs`` and ``n_clusters``.
    """
    _check(df, cols, outcomes)
    strengths = sorted(pd.unique(df[cols.strength].dropna()))
    if baseline not in strengths:
        raise ValueError(f"baseline strength {baseline:g} is not in the sweep (strengths: {strengths})")
    others = [s for s in strengths if s != baseline]
    if not others:
        raise ValueError("the sweep has a single strength; there is no contrast to estimate")
    data = df.copy()
    terms = []
    for s in others:
        data[strength_label(s)] = (data[cols.strength] == s).astype(float).where(data[cols.strength].notna())
        terms.append(strength_label(s))
    controls = []
    if length_control:
        data["log_trace_len"] = np.log(pd.to_numeric(data[cols.trace_len], errors="coerce"))
        controls.append("log_trace_len")
    tables = []
    for y in outcomes:
        tab = fe_ols(data, y, terms, cols.problem, cols.cluster_col, controls=controls, missing=missing, alpha=alpha)
        tab.insert(0, "outcome", y)
        tab["nobs"], tab["n_clusters"] = tab.attrs["nobs"], tab.attrs["n_clusters"]
        tables.append(tab)
    return pd.concat(tables, ignore_index=True)


def strength_mediation(
    df: pd.DataFrame,
    mediators: Sequence[str],
    *,
    cols: SweepColumns = SweepColumns(),
    baseline: float = 0.0,
    treated: float = 10.0,
    length_control: bool = True,
    config: MediationConfig | None = None,
    missing: MissingPolicy = "error",
) -> pd.DataFrame:
    """Mediation of the baseline -> treated effect on ``correct`` through ``mediators`` (problem FE, clustered,
    problems resampled in the bootstrap). Returns the tidy mediation table with a ``scale`` column."""
    _check(df, cols, mediators)
    present = set(pd.unique(df[cols.strength].dropna()))
    for s, what in ((baseline, "baseline"), (treated, "treated")):
        if s not in present:
            raise ValueError(f"{what} strength {s:g} is not in the sweep (strengths: {sorted(present)})")
    data = df[df[cols.strength].isin([baseline, treated])].copy()
    data["treated"] = (data[cols.strength] == treated).astype(float)
    controls = []
    if length_control:
        data["log_trace_len"] = np.log(pd.to_numeric(data[cols.trace_len], errors="coerce"))
        controls.append("log_trace_len")
    res = mediate(
        data,
        "treated",
        cols.correct,
        list(mediators),
        fe=cols.problem,
        cluster=cols.cluster_col,
        controls=controls,
        config=config,
        missing=missing,
    )
    tab = res.table.copy()
    tab.insert(0, "scale", res.scale)
    tab["nobs"], tab["n_clusters"], tab["n_boot_ok"] = res.nobs, res.n_clusters, res.n_boot_ok
    return tab


def add_log_length(data: pd.DataFrame, trace_len: str, term: str = "log_trace_len") -> str:
    """Add ``term`` = log(``trace_len``) to ``data`` (in place) and return its name: the length control of every
    contrast. A length <= 0 is an error (its log is undefined)."""
    length = pd.to_numeric(data[trace_len], errors="coerce")
    if (length <= 0).any():
        raise ValueError(f"{trace_len!r} must be > 0 to take its log ({int((length <= 0).sum())} row(s) are not)")
    data[term] = np.log(length.astype(float))
    return term


def controls_regression(
    df: pd.DataFrame,
    outcome: str = "correct",
    *,
    cols: SweepColumns = SweepColumns(),
    length_control: bool = True,
    missing: MissingPolicy = "error",
    alpha: float = 0.05,
    length_term: str = "log_trace_len",
) -> pd.DataFrame:
    """The paper's control contrast: outcome ~ conversational (0/1) [+ log trace_len] | problem, SEs clustered.

    ``df`` is a control run in the analysis schema (``conversational`` 0/1, ``trace_len`` > 0; see
    :func:`interp_sot.analysis.sweep_table.to_analysis_schema`). A trace length <= 0 is an error (its log is
    undefined), as everywhere else in the analysis. ``length_term`` names the control's row in the table.
    """
    need = [c for c in (cols.problem, "conversational", outcome, *([cols.trace_len] if length_control else []))
            if c not in df.columns]
    if need:
        raise ValueError(f"control table lacks column(s) {need}")
    data = df.copy()
    controls = [add_log_length(data, cols.trace_len, length_term)] if length_control else []
    data[outcome] = pd.to_numeric(data[outcome].astype(float), errors="coerce")
    return fe_ols(data, outcome, "conversational", cols.problem, cols.cluster_col, controls=controls, missing=missing,
                  alpha=alpha)
