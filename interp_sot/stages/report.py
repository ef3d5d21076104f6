"""Stage ``report``: the human-readable report of one steering run (sweep or controls).

Reads: the run's records (``steer``/``controls`` stage) and its LLM-judge codings, if any. Writes into its
directory: ``summary.md`` (accuracy per strength with Wilson and problem-bootstrap intervals, behaviour rates,
the control comparison), the tables ``accuracy``, ``behaviours``, ``controls``, ``controls_regression`` and
``traces`` (CSV + parquet) and ``accuracy.png``. Every number comes from :mod:`interp_sot.analysis`.

The control regression is this report's one family of tested contrasts: its ``conversational`` term (the
log-length control is not a tested hypothesis). It carries Holm's ``p_holm`` and Benjamini–Hochberg's ``q_bh``
(:mod:`interp_sot.analysis.multiple_testing`; with one contrast both equal ``p``), and the summary counts
significance before and after correction, as every contrast table of the ``analyze`` stage does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from interp_sot.analysis.measures import coherence_by_strength, join_coherence
from interp_sot.analysis.multiple_testing import significance_summary
from interp_sot.analysis.traces import (
    ControlComparison,
    accuracy_table,
    add_judge_codings,
    add_marker_rates,
    behaviour_columns,
    behaviour_table,
    control_comparison,
    records_frame,
)
from interp_sot.behaviours.judge_coding import BehaviourCoding
from interp_sot.experiments.records import SweepRecord
from interp_sot.io import atomic_write_text, write_frame
from interp_sot.stages.measure import require_measured_completely
from interp_sot.stages.rundir import begin_stage, finish_stage

STAGE = "report"


@dataclass(frozen=True)
class ReportConfig:
    """What the report computes and draws."""

    n_boot: int = 2000
    """Problem-bootstrap resamples of the intervals."""
    seed: int = 0
    """Bootstrap seed."""
    confidence: float = 0.95
    """Interval level."""
    markers: bool = True
    """Compute the heuristic behaviour markers (per 1,000 words)."""
    plot: bool = True
    """Write ``accuracy.png`` (needs matplotlib, the ``plot`` extra)."""

    def __post_init__(self) -> None:
        if self.n_boot < 1 or not 0 < self.confidence < 1:
            raise ValueError("ReportConfig needs n_boot >= 1 and 0 < confidence < 1")


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
                "| term | coef | se | p | p (Holm) | q (BH) | 95% CI |",
                "|---|---:|---:|---:|---:|---:|---|",
            ]
            for r in ctrl.regression.itertuples():
                lines.append(
                    f"| {r.term} | {r.coef:.4f} | {r.se:.4f} | {r.p:.3g} | {_fmt(r.p_holm, False)} | "
                    f"{_fmt(r.q_bh, False)} | [{r.ci_low:.4f}, {r.ci_high:.4f}] |"
                )
            lines += ["", significance_summary(ctrl.regression).sentence()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    tables: dict[str, Path]
    plot: Path | None


def _write_table(frame: pd.DataFrame, out_dir: Path, name: str, tables: dict[str, Path]) -> None:
    for suffix in ("csv", "parquet"):
        path = out_dir / f"{name}.{suffix}"
        write_frame(frame, path)
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
    run_dir: str | Path | None = None,
) -> ReportFiles:
    """Write ``summary.md``, tables (``accuracy``, ``behaviours``, ``controls``, ``coherence``, ``traces`` as CSV +
    parquet) and ``accuracy.png`` (needs matplotlib, the ``plot`` extra) to ``out_dir``.

    ``run_dir``: the run directory of ``records``; when the measure stage left ``coherence.jsonl`` there, the report
    shows coherence (unsteered mean log-prob, degenerate share) by strength, so no effect is read off broken text."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = records_frame(records)
    coherence = None
    if run_dir is not None:
        require_measured_completely(run_dir)
        df = join_coherence(df, run_dir)
        if "coherence_logprob" in df.columns:
            coherence = coherence_by_strength(df, confidence=confidence)
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
    if coherence is not None:
        _write_table(coherence, out, "coherence", tables)
    _write_table(df, out, "traces", tables)
    first = records[0]
    settings = first.settings if isinstance(first, SweepRecord) else first.get("settings")
    flat = None
    if isinstance(settings, Mapping):
        gen = settings.get("generation", {})
        flat = {k: v for k, v in settings.items() if k != "generation"} | (dict(gen) if isinstance(gen, Mapping) else {})
    summary = out / "summary.md"
    text = summary_markdown(acc, beh, ctrl, flat)
    if coherence is not None:
        text += coherence_markdown(coherence)
    atomic_write_text(summary, text)
    png = None
    if plot:
        from interp_sot.analysis.plots import plot_report

        png = plot_report(acc, beh, ctrl, out / "accuracy.png")
    return ReportFiles(summary, tables, png)


def coherence_markdown(coherence: pd.DataFrame) -> str:
    """The coherence guard's section of ``summary.md`` (one row per strength)."""
    lines = [
        "",
        "## Coherence per strength",
        "",
        "Unsteered model's mean token log-prob of the generated text (95% t interval) and the share of degenerate "
        "traces (repeated n-grams or symbol soup); a large drop against s=0 means the text, not the behaviour, changed.",
        "",
        "| strength | n | mean log-prob | 95% | drop vs s=0 | degenerate % |",
        "|---:|---:|---:|---|---:|---:|",
    ]
    for r in coherence.to_dict("records"):
        drop = r.get("drop_vs_0", float("nan"))
        lines.append(
            f"| {r['strength']:g} | {r['n']} | {r['mean_logprob']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
            f"{'–' if drop != drop else f'{drop:.3f}'} | {_fmt(r['degenerate_share'])} |"
        )
    return "\n".join(lines) + "\n"


def report_stage(
    records: Sequence[SweepRecord | Mapping[str, Any]],
    config: ReportConfig,
    out: str | Path,
    *,
    codings: Sequence[BehaviourCoding] | None = None,
    inputs: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
) -> ReportFiles:
    """:func:`write_report` into a stage directory (identity recorded, manifest written last)."""
    out = Path(out)
    begin_stage(out, STAGE, config, inputs)
    files = write_report(records, out, codings=codings, markers=config.markers, plot=config.plot,
                         n_boot=config.n_boot, seed=config.seed, confidence=config.confidence, run_dir=run_dir)
    finish_stage(out, STAGE, [files.summary, *files.tables.values(), *([files.plot] if files.plot else [])],
                 {"rows": len(records)})
    return files
