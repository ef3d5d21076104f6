"""Sweep and control reports: accuracy per strength with CIs, behaviour rates, control comparison, files.

Accuracy gets two 95% intervals: Wilson (rows as independent) and a cluster bootstrap over problems (honest when a
problem appears under several features or samples). Differences from s = 0 are bootstrapped paired by problem.
Behaviour rates come from two sources kept apart by their column prefix and a ``method`` column: ``markers.*``
(heuristic marker counts per 1,000 words) and ``judge.*`` (LLM-judge counts). The control comparison fits the
paper's linear probability model: correct ~ conversational + log(trace tokens) | problem, SEs clustered by problem.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp_sot.behaviours.judge_coding import BehaviourCoding, coding_columns
from interp_sot.behaviours.markers import MarkerCoder
from interp_sot.experiments.controls import CONVERSATIONAL, NON_CONVERSATIONAL
from interp_sot.experiments.intervals import cluster_bootstrap, wilson_interval
from interp_sot.experiments.records import SweepRecord
from interp_sot.io import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

MARKER_PREFIX = "markers."
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
    return df


def add_marker_rates(df: pd.DataFrame, coder: MarkerCoder | None = None, per: int = 1000) -> pd.DataFrame:
    """Add ``markers.<name>`` (occurrences per ``per`` words of the completion) and ``n_words``."""
    coder = coder or MarkerCoder()
    codings = [coder.code(text) for text in df["completion"]]
    out = df.copy()
    out["n_words"] = [c.n_words for c in codings]
    for name in coder.names:
        out[MARKER_PREFIX + name] = [c.rates(per)[name] for c in codings]
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
        for i, (feature, strength) in enumerate(boot.conditions):  # type: ignore[misc]
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
    """Tidy LPM fit (term, coef, se, t, p, ci_low, ci_high); None when it cannot be fitted (e.g. one group)."""


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
    if {CONVERSATIONAL, NON_CONVERSATIONAL} <= set(part["group"]):
        from interp_sot.analysis.regression import fe_ols

        part = part[part["group"].isin([CONVERSATIONAL, NON_CONVERSATIONAL])]
        part["conversational"] = (part["group"] == CONVERSATIONAL).astype(float)
        part["y"] = part["correct"].astype(float)
        part["log_tokens"] = np.log(part["n_new_tokens"].clip(lower=1).astype(float))
        try:
            regression = fe_ols(
                part,
                "y",
                "conversational",
                "problem_id",
                "problem_id",
                controls="log_tokens" if length_control else None,
                alpha=1 - confidence,
            )
        except ValueError as err:
            logger.warning("control regression not fitted: %s", err)
    return ControlComparison(groups, regression)


def _fmt(x: float, pct: bool = True) -> str:
    if x != x:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3g}"


def summary_markdown(
    acc: pd.DataFrame, beh: pd.DataFrame | None, ctrl: ControlComparison | None, settings: Mapping[str, Any] | None
) -> str:
    """The human-readable report (accuracy in %, CIs in brackets)."""
    lines = ["# Countdown steering report", ""]
    if settings:
        lines += ["Settings: `" + ", ".join(f"{k}={v}" for k, v in settings.items()) + "`", ""]
    lines += [
        "## Accuracy per strength",
        "",
        "| feature | strength | n | accuracy % | Wilson 95% | problem bootstrap 95% | Δ vs s=0 (pts) | answered % |",
        "|---|---:|---:|---:|---|---|---|---:|",
    ]
    for r in acc.itertuples():
        delta = (
            "–"
            if r.delta_vs_zero != r.delta_vs_zero
            else (f"{_fmt(r.delta_vs_zero)} [{_fmt(r.delta_low)}, {_fmt(r.delta_high)}]")
        )
        lines.append(
            f"| {r.feature} | {r.strength:g} | {r.n} | {_fmt(r.accuracy)} | [{_fmt(r.wilson_low)}, "
            f"{_fmt(r.wilson_high)}] | [{_fmt(r.boot_low)}, {_fmt(r.boot_high)}] | {delta} | {_fmt(r.answered)} |"
        )
    if beh is not None and len(beh):
        strengths = sorted(beh["strength"].unique())
        lines += [
            "",
            "## Behaviour rates per strength",
            "",
            "`markers.*` are HEURISTIC marker counts per 1,000 words (not judge coding); "
            "`judge.*` are LLM-judge counts per trace. Cells: mean [95% problem-bootstrap CI].",
            "",
            "| behaviour | method | feature | " + " | ".join(f"s={s:g}" for s in strengths) + " |",
            "|---|---|---|" + "---|" * len(strengths),
        ]
        for (behaviour, method, feature), part in beh.groupby(["behaviour", "method", "feature"], sort=True):
            by_s = part.set_index("strength")
            cells = [
                f"{_fmt(by_s.loc[s, 'mean'], False)} [{_fmt(by_s.loc[s, 'low'], False)}, "
                f"{_fmt(by_s.loc[s, 'high'], False)}]"
                if s in by_s.index
                else "–"
                for s in strengths
            ]
            lines.append(f"| {behaviour} | {method} | {feature} | " + " | ".join(cells) + " |")
    if ctrl is not None:
        lines += [
            "",
            "## Controls",
            "",
            "| group | n | features | accuracy % | Wilson 95% |",
            "|---|---:|---:|---:|---|",
        ]
        for r in ctrl.groups.itertuples():
            lines.append(
                f"| {r.group} | {r.n} | {r.features} | {_fmt(r.accuracy)} | "
                f"[{_fmt(r.wilson_low)}, {_fmt(r.wilson_high)}] |"
            )
        if ctrl.regression is not None:
            lines += [
                "",
                "Linear probability model, problem fixed effects, SEs clustered by problem:",
                "",
                "| term | coef | se | p | 95% CI |",
                "|---|---:|---:|---:|---|",
            ]
            for r in ctrl.regression.itertuples():
                lines.append(
                    f"| {r.term} | {r.coef:.4f} | {r.se:.4f} | {r.p:.3g} | [{r.ci_low:.4f}, {r.ci_high:.4f}] |"
                )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    tables: dict[str, Path]
    plot: Path | None


def _write_table(frame: pd.DataFrame, out_dir: Path, name: str, tables: dict[str, Path]) -> None:
    for suffix in ("csv", "parquet"):
        path = out_dir / f"{name}.{suffix}"
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False) if suffix == "csv" else frame.to_parquet(tmp, index=False)
        tables[f"{name}.{suffix}"] = path


def write_report(
    records: Sequence[SweepRecord | Mapping[str, Any]],
    out_dir: str | Path,
    *,
    codings: Sequence[BehaviourCoding] | None = None,
    markers: bool = True,
    plot: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ReportFiles:
    """Write ``summary.md``, tables (``accuracy``, ``behaviours``, ``controls``, ``traces`` as CSV + parquet) and
    ``accuracy.png`` (needs matplotlib, the ``plot`` extra) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = records_frame(records)
    if markers:
        df = add_marker_rates(df)
    if codings:
        df = add_judge_codings(df, codings)
    acc = accuracy_table(df, n_boot=n_boot, seed=seed, confidence=confidence)
    beh = behaviour_table(df, n_boot=n_boot, seed=seed, confidence=confidence) if behaviour_columns(df) else None
    has_groups = "group" in df and df["group"].notna().any()
    ctrl = control_comparison(df, confidence=confidence) if has_groups else None
    tables: dict[str, Path] = {}
    _write_table(acc, out, "accuracy", tables)
    if beh is not None:
        _write_table(beh, out, "behaviours", tables)
    if ctrl is not None:
        _write_table(ctrl.groups, out, "controls", tables)
        if ctrl.regression is not None:
            _write_table(ctrl.regression, out, "controls_regression", tables)
    _write_table(df, out, "traces", tables)
    first = records[0]
    settings = first.settings if isinstance(first, SweepRecord) else first.get("settings")
    flat = None
    if isinstance(settings, Mapping):
        gen = settings.get("generation", {})
        flat = {k: v for k, v in settings.items() if k != "generation"} | (gen if isinstance(gen, Mapping) else {})
    summary = out / "summary.md"
    atomic_write_text(summary, summary_markdown(acc, beh, ctrl, flat))
    png = None
    if plot:
        from interp_sot.experiments.plots import plot_report

        png = plot_report(acc, beh, ctrl, out / "accuracy.png")
    return ReportFiles(summary, tables, png)
