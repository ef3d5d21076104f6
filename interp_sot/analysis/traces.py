"""Per-trace tables of a steering run and their statistics: accuracy per strength with two intervals, behaviour
rates, and the control-group comparison.

Accuracy gets two 95% intervals: Wilson (rows as independent) and a cluster bootstrap over problems (honest when a
problem appears under several features or samples). Differences from s = 0 are bootstrapped paired by problem.
Behaviour rates come from two sources kept apart by their column prefix and a ``method`` column: ``markers.*``
(heuristic marker counts per 1,000 words) and ``judge.*`` (LLM-judge counts). The control comparison is
:func:`interp_sot.analysis.steering_effects.controls_regression` (the one control fit every caller uses).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from interp_sot.analysis.intervals import cluster_bootstrap, wilson_interval
from interp_sot.analysis.multiple_testing import add_corrections
from interp_sot.analysis.steering_effects import controls_regression
from interp_sot.analysis.sweep_table import (
    BEHAVIOURS_FILE,
    PERSPECTIVES_FILE,
    RECORD_FILES,
    TASK_PREFIX,
    SweepTable,
    read_table,
    resolve_run_path,
    to_analysis_schema,
)
from interp_sot.behaviours.judge_coding import BehaviourCoding, coding_columns
from interp_sot.behaviours.markers import MarkerCoder
from interp_sot.experiments.records import SweepRecord
from interp_sot.io import read_jsonl
from interp_sot.screening.groups import CONTROL_GROUPS

logger = logging.getLogger(__name__)

MARKER_PREFIX = "markers."
CONVERSATIONAL_TOTAL = "conversational"
"""``markers.conversational``: every marker per 1,000 words together; one pre-registrable summary (the demo's
mediator) instead of choosing a single marker after seeing which one moved."""
JUDGE_PREFIX = "judge."


def records_frame(records: Sequence[SweepRecord | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trace (prompt and settings dropped; ``completion`` kept for coding)."""
    dicts = [r.to_dict() if isinstance(r, SweepRecord) else dict(r) for r in records]
    if not dicts:
        raise ValueError("no sweep records to report on")
    df = pd.DataFrame(dicts).drop(columns=["prompt", "settings"], errors="ignore")
    needed = {"key", "feature", "strength", "problem_id", "correct", "completion", "n_new_tokens"}
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"sweep records lack columns {sorted(missing)}")
    df["feature"] = df["feature"].astype(str)
    df["correct"] = df["correct"].astype(bool)
    return add_graded_outcomes(df)


def add_graded_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """``task.answer_found`` (0/1), ``task.valid_expression`` (0/1) and ``task.abs_error`` (|value - target| of a
    valid answer, NaN otherwise) from the records' scoring fields; a column whose field the records lack (records
    from before the graded outcomes existed) is left out rather than filled with NaN."""
    out = df.copy()
    if "answer" in out:
        out[TASK_PREFIX + "answer_found"] = out["answer"].notna().astype(float)
    if "valid_expression" in out:
        out[TASK_PREFIX + "valid_expression"] = pd.to_numeric(out["valid_expression"], errors="coerce").astype(float)
    if "abs_error" in out:
        out[TASK_PREFIX + "abs_error"] = pd.to_numeric(out["abs_error"], errors="coerce").astype(float)
    return out


def add_marker_rates(df: pd.DataFrame, coder: MarkerCoder | None = None, per: int = 1000) -> pd.DataFrame:
    """Add ``markers.<name>`` (occurrences per ``per`` words of the completion), their sum
    ``markers.conversational`` and ``n_words``."""
    coder = coder or MarkerCoder()
    codings = [coder.code(text) for text in df["completion"]]
    out = df.copy()
    out["n_words"] = [c.n_words for c in codings]
    for name in coder.names:
        out[MARKER_PREFIX + name] = [c.rates(per)[name] for c in codings]
    out[MARKER_PREFIX + CONVERSATIONAL_TOTAL] = [sum(c.rates(per).values()) for c in codings]
    return out


def add_judge_codings(df: pd.DataFrame, codings: Sequence[BehaviourCoding]) -> pd.DataFrame:
    """Add ``judge.<scheme>.<category>`` counts (NaN where the judge failed or the trace was not coded)."""
    cols = coding_columns(codings)
    if not cols:
        return df
    frame = pd.DataFrame.from_dict(cols, orient="index").add_prefix(JUDGE_PREFIX)
    frame.index.name = "key"
    return df.merge(frame, how="left", left_on="key", right_index=True)


def accuracy_table(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Per (feature, strength): n, correct, accuracy, Wilson and bootstrap CIs, and the paired change from s = 0."""
    cond = list(zip(df["feature"], df["strength"], strict=True))
    boot = cluster_bootstrap(df["correct"].astype(float), df["problem_id"].tolist(), cond, n_boot=n_boot, seed=seed)
    index = {c: i for i, c in enumerate(boot.conditions)}
    rows = []
    for (feature, strength), part in df.groupby(["feature", "strength"], sort=True):
        i = index[(feature, strength)]
        k, n = int(part["correct"].sum()), len(part)
        w_lo, w_hi = wilson_interval(k, n, confidence)
        b_lo, b_hi = boot.interval(i, confidence)
        ref = index.get((feature, 0.0))
        delta = boot.difference(i, ref, confidence) if ref is not None else (math.nan, math.nan, math.nan)
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


def behaviour_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith((MARKER_PREFIX, JUDGE_PREFIX))]


def behaviour_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Long table: per (feature, strength, behaviour) the mean, its problem-bootstrap CI, n coded and the method."""
    cols = list(columns) if columns is not None else behaviour_columns(df)
    cond = list(zip(df["feature"], df["strength"], strict=True))
    rows = []
    for col in cols:
        boot = cluster_bootstrap(df[col].astype(float), df["problem_id"].tolist(), cond, n_boot=n_boot, seed=seed)
        for i, condition in enumerate(boot.conditions):
            feature, strength = cast(tuple[Any, Any], condition)
            mask = (df["feature"] == feature) & (df["strength"] == strength)
            lo, hi = boot.interval(i, confidence)
            rows.append(
                {
                    "feature": feature,
                    "strength": float(strength),
                    "behaviour": col,
                    "method": "heuristic" if col.startswith(MARKER_PREFIX) else "llm_judge",
                    "unit": "per_1k_words" if col.startswith(MARKER_PREFIX) else "count",
                    "mean": float(boot.estimate[i]),
                    "low": lo,
                    "high": hi,
                    "n": int(df.loc[mask, col].notna().sum()),
                }
            )
    out = pd.DataFrame(rows)
    return out.sort_values(["behaviour", "feature", "strength"]).reset_index(drop=True) if len(out) else out


@dataclass(frozen=True)
class ControlComparison:
    groups: pd.DataFrame
    """Per group: n rows, features, accuracy with Wilson CI."""
    regression: pd.DataFrame | None
    """Tidy LPM fit (term, coef, se, t, p, ci_low, ci_high, and ``p_holm`` / ``q_bh`` / ``family_size`` over the
    one tested contrast, the ``conversational`` term); None when it cannot be fitted (e.g. one group)."""


def control_comparison(df: pd.DataFrame, *, confidence: float = 0.95, length_control: bool = True) -> ControlComparison:
    """Accuracy by control group and ``correct ~ conversational [+ log tokens] | problem`` (CR1 by problem)."""
    if "group" not in df or df["group"].isna().all():
        raise ValueError("no control groups in these records (run them with run_controls)")
    part = df[df["group"].notna()].copy()
    rows = []
    for group, g in part.groupby("group", sort=True):
        k, n = int(g["correct"].sum()), len(g)
        lo, hi = wilson_interval(k, n, confidence)
        rows.append(
            {
                "group": group,
                "n": n,
                "features": g["feature"].nunique(),
                "accuracy": k / n,
                "wilson_low": lo,
                "wilson_high": hi,
            }
        )
    groups = pd.DataFrame(rows)
    regression = None
    if set(CONTROL_GROUPS) <= set(part["group"]):
        part = part[part["group"].isin(CONTROL_GROUPS)]
        try:
            regression = controls_regression(
                to_analysis_schema(part).frame, "correct", length_control=length_control, alpha=1 - confidence,
                length_term="log_tokens",
            )
            regression = add_corrections(regression, rows=regression["term"] == "conversational")
        except ValueError as err:
            logger.warning("control regression not fitted: %s", err)
    return ControlComparison(groups, regression)


def load_run_table(path: str | Path) -> SweepTable:
    """A run directory, its records or any table, in the analysis schema.

    From a run's records (``sweep.jsonl`` / ``controls.jsonl``) the heuristic behaviour markers are computed and
    the run's LLM-judge codings (``behaviours.jsonl``) joined, so every outcome the run holds inputs for is there.
    """
    file = resolve_run_path(path)
    if file.name not in RECORD_FILES:
        return to_analysis_schema(read_table(file))
    frame = add_marker_rates(records_frame(read_jsonl(file)))
    codings = file.parent / BEHAVIOURS_FILE
    if codings.is_file():
        frame = add_bales_reciprocity(add_judge_codings(frame, [BehaviourCoding(**d) for d in read_jsonl(codings)]))
    perspectives = file.parent / PERSPECTIVES_FILE
    if perspectives.is_file():
        frame = add_perspective_outcomes(frame, read_jsonl(perspectives))
    return to_analysis_schema(frame)


def add_bales_reciprocity(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``judge.bales.reciprocity.<dimension>`` (Jaccard of ask/give and positive/negative acts per trace)
    when the traces carry the twelve Bales IPA counts (``judge.bales.<category>``)."""
    from interp_sot.analysis.bales import IPA_CATEGORIES, reciprocity

    cols = [f"{JUDGE_PREFIX}bales.{c}" for c in IPA_CATEGORIES]
    if not all(c in df.columns for c in cols):
        return df
    coded = df[cols].notna().all(axis=1)
    counts = df.loc[coded, cols].set_axis(list(IPA_CATEGORIES), axis=1)
    rec = reciprocity(counts, id_column=None)
    out = df.copy()
    for dim in rec.columns:
        if not dim.endswith("_union"):
            out[f"{JUDGE_PREFIX}bales.reciprocity.{dim}"] = float("nan")
            out.loc[coded, f"{JUDGE_PREFIX}bales.reciprocity.{dim}"] = rec[dim].to_numpy()
    return out


def add_perspective_outcomes(df: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Add ``judge.perspectives.n`` and ``judge.perspectives.sd_<dimension>`` (BFI-10 spread across a trace's
    perspectives) from perspective-analysis records keyed by trace (``trace_id`` = the row key)."""
    from interp_sot.analysis.personality import bfi10_scores, personality_diversity
    from interp_sot.analysis.perspectives import tables_from_records

    tables = tables_from_records(records)
    if not len(tables.traces):
        return df
    ok = tables.traces[tables.traces["status"] == "ok"]
    per_trace = pd.DataFrame({"key": ok["trace_id"].astype(str),
                              f"{JUDGE_PREFIX}perspectives.n": ok["n_perspectives"].astype(float)})
    if len(tables.perspectives):
        spread = personality_diversity(bfi10_scores(tables.perspectives, missing="drop"))
        spread = spread.drop(columns=["n_perspectives"], errors="ignore")
        spread = spread.rename(columns={c: f"{JUDGE_PREFIX}perspectives.{c}" for c in spread.columns
                                        if c != "trace_id"})
        per_trace = per_trace.merge(spread.rename(columns={"trace_id": "key"}).astype({"key": str}), on="key",
                                    how="left")
    return df.merge(per_trace, on="key", how="left")
