"""Stage ``report``: the human-readable report of one run (sweep or controls), rendered from the ``analyze`` stage's
folder. It computes nothing: every number is one the analysis wrote; this module only selects, words and formats.

Reads: an analysis folder (``stages.analyze``, finished) and, in its ``summary.json``, which tables belong to the
run (``arms``: ``sweep`` or ``controls``). Writes into its directory: ``summary.md`` (accuracy per strength with
Wilson and problem-bootstrap intervals, behaviour rates, the control comparison, coherence by strength, every
registered outcome's effect with what could not be fitted), the tables it shows (``accuracy``, ``behaviours``,
``controls``, ``controls_regression``, ``coherence``, ``traces``: byte-for-byte copies of the analysis' csv and
parquet files, under these names) and ``accuracy.png``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from interp_sot.analysis.multiple_testing import SignificanceCount
from interp_sot.analysis.outcomes import outcome_of
from interp_sot.analysis.steering_effects import is_strength_term
from interp_sot.errors import InterpSotError, shorten
from interp_sot.io import atomic_path, atomic_write_text
from interp_sot.stages.analyze_measures import Arm
from interp_sot.stages.rundir import MANIFEST_FILE, begin_stage, finish_stage, is_complete, require_complete

logger = logging.getLogger(__name__)

STAGE = "report"
COPIED = ("accuracy", "behaviours", "controls", "controls_regression", "coherence", "traces")
"""The analysis tables a report carries (csv + parquet), under these names."""


@dataclass(frozen=True)
class ReportConfig:
    """How the report is drawn (what it shows is the analysis': see ``AnalyzeConfig``)."""

    plot: bool = True
    """Write ``accuracy.png`` (needs matplotlib, the ``plot`` extra)."""

    def __post_init__(self) -> None:
        if not isinstance(self.plot, bool):
            raise InterpSotError(f"ReportConfig.plot must be True or False, got {self.plot!r}")


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    tables: dict[str, Path]
    """``<name>.csv`` / ``<name>.parquet`` -> the copy in the report folder."""
    plot: Path | None


class Analysis(NamedTuple):
    """One run's part of an analysis folder, read back."""

    folder: Path
    arm: Arm
    settings: Mapping[str, Any] | None
    tables: dict[str, pd.DataFrame]
    """Report name -> the table (from its parquet file where there is one)."""
    stems: dict[str, str]
    summary: Mapping[str, Any]
    """The analysis' ``summary.json``."""


def read_analysis(folder: str | Path, arm: Arm | None = None) -> Analysis:
    """The tables of ``arm`` (default: the sweep, else the controls) in the finished analysis ``folder``."""
    folder = Path(folder)
    require_complete(folder, "the analysis")
    if not is_complete(folder, "analyze"):
        raise InterpSotError(f"{shorten(folder)} is not a finished analyze stage folder (no manifest.json of the "
                             "analyze stage): run `interp-sot analyze` into it first")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    arms = summary.get("arms") or {}
    if arm is None:
        arm = "sweep" if "sweep" in arms else "controls"
    if arm not in arms:
        raise InterpSotError(f"the analysis in {shorten(folder)} holds no {arm} run (it holds: "
                             f"{', '.join(arms) or 'nothing a report renders; rerun the analyze stage'})")
    stems = dict(arms[arm]["tables"])
    tables = {}
    for name, stem in stems.items():
        parquet, csv = folder / f"{stem}.parquet", folder / f"{stem}.csv"
        if parquet.is_file():
            tables[name] = pd.read_parquet(parquet)
        elif csv.is_file() and csv.stat().st_size > 1:
            tables[name] = pd.read_csv(csv)
    return Analysis(folder, arm, arms[arm].get("settings"), tables, stems, summary)


def _fmt(x: float, pct: bool = True) -> str:
    if x != x:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3g}"


def flat_settings(settings: Mapping[str, object] | None) -> dict[str, object] | None:
    """The records' settings on one level (the generation settings lifted), for the report's first line."""
    if not isinstance(settings, Mapping):
        return None
    gen = settings.get("generation", {})
    return {k: v for k, v in settings.items() if k != "generation"} | (dict(gen) if isinstance(gen, Mapping) else {})


def accuracy_markdown(acc: pd.DataFrame) -> list[str]:
    lines = [
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
    return lines


def pooled_accuracy_markdown(acc: pd.DataFrame) -> list[str]:
    """A plain table's accuracy by strength (no features, no records): Wilson intervals only."""
    lines = ["## Accuracy per strength", "", "| strength | n | accuracy % | Wilson 95% |", "|---:|---:|---:|---|"]
    for r in acc.itertuples():
        lines.append(f"| {r.strength:g} | {r.n} | {_fmt(r.accuracy)} | [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] |")
    return lines


def rates_markdown(beh: pd.DataFrame) -> list[str]:
    strengths = sorted(beh["strength"].unique())
    lines = [
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
    return lines


def _significance(summary: Mapping[str, object], family: str) -> list[str]:
    families = summary.get("significance", {})
    counts = families.get(family) if isinstance(families, Mapping) else None
    return ["", SignificanceCount(**counts).sentence()] if counts else []


def _skipped(summary: Mapping[str, object], arm: Arm) -> list[str]:
    """What the analysis could not fit for this run, with its reasons."""
    prefix = "controls:" if arm == "controls" else ""
    skipped = summary.get("skipped", {})
    mine = {k.removeprefix(prefix): v for k, v in (skipped.items() if isinstance(skipped, Mapping) else ())
            if (k.startswith(prefix) if prefix else (":" not in k and k != "mediation"))}
    return ["", *[f"- not fitted: `{k}` ({v})" for k, v in mine.items()]] if mine else []


def _model(outcome: str) -> str:
    registered = outcome_of(outcome)
    return "LPM" if registered is not None and registered.kind == "binary" else "OLS"


def controls_markdown(groups: pd.DataFrame | None, reg: pd.DataFrame | None, summary: Mapping[str, object]
                      ) -> list[str]:
    lines = ["", "## Controls", ""]
    if groups is not None:
        lines += ["| group | n | features | accuracy % | Wilson 95% |", "|---|---:|---:|---:|---|"]
        lines += [f"| {r.group} | {r.n} | {r.features} | {_fmt(r.accuracy)} | [{_fmt(r.wilson_low)}, "
                  f"{_fmt(r.wilson_high)}] |" for r in groups.itertuples()]
    if reg is not None and len(reg):
        lines += [
            "",
            "Each outcome on the conversational (1) vs non-conversational (0) control features, problem fixed "
            "effects, log trace length, SEs clustered by problem (LPM: linear probability model of a 0/1 outcome):",
            "",
            "| outcome | model | term | coef | se | p | p (Holm) | q (BH) | 95% CI |",
            "|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in reg.to_dict("records"):
            lines.append(
                f"| {r['outcome']} | {_model(r['outcome'])} | {r['term']} | {r['coef']:.4f} | {r['se']:.4f} | "
                f"{r['p']:.3g} | {_fmt(r['p_holm'], False)} | {_fmt(r['q_bh'], False)} | "
                f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}] |"
            )
        lines += _significance(summary, "controls_regression")
    return lines + _skipped(summary, "controls")


def coherence_markdown(coherence: pd.DataFrame) -> str:
    """The coherence guard's section of ``summary.md`` (one row per strength)."""
    lines = [
        "",
        "## Coherence per strength",
        "",
        "Unsteered model's mean token log-prob of the generated text (95% t interval) and the share of degenerate "
        "traces (repeated n-grams or symbol soup); a large drop against s=0 means the text, not the behaviour, "
        "changed.",
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


def units_markdown(units: pd.DataFrame) -> str:
    """What each strength adds, in the run's strength units (``steering.units``)."""
    names = ", ".join(sorted({str(u) for u in units["units"]}))
    lines = ["", f"## Strength units: {names}", "",
             "The added vector's norm per strength and its ratio to the median residual norm on the run's prompts "
             "(SmolLM2 writes broken text beyond roughly 0.2).", "",
             "| feature | strength | units | added norm | ratio to residual norm |", "|---|---:|---|---:|---:|"]
    lines += [f"| {r['feature']} | {r['strength']:g} | {r['units']} | {r['added_norm']:.4g} | "
              f"{r['ratio_to_residual']:.4g} |" for r in units.to_dict("records")]
    return "\n".join(lines) + "\n"


def outcomes_markdown(reg: pd.DataFrame, summary: Mapping[str, object]) -> str:
    """Every fitted outcome's effect of each strength against the baseline (``regression.csv``)."""
    rows = reg[reg["term"].map(is_strength_term)] if len(reg) else reg
    lines = [
        "",
        f"## Every outcome per strength (vs s={summary.get('baseline', 0.0):g})",
        "",
        "Each outcome on indicators of each strength, problem fixed effects, log trace length, SEs clustered by "
        "problem (LPM: linear probability model of a 0/1 outcome); Holm / BH over every strength term of every "
        "outcome; mde: the smallest effect detectable at α = 0.05 with 80% power.",
        "",
    ]
    if len(rows):
        lines += ["| outcome | model | strength | coef | 95% CI | p | p (Holm) | q (BH) | mde |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|"]
        for r in rows.to_dict("records"):
            lines.append(
                f"| {r['outcome']} | {_model(r['outcome'])} | {r['term']} | {r['coef']:.4g} | "
                f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}] | {_fmt(r['p'], False)} | {_fmt(r['p_holm'], False)} | "
                f"{_fmt(r['q_bh'], False)} | {_fmt(r.get('mde', float('nan')), False)} |")
        lines += _significance(summary, "regression")
    else:
        lines.append("No outcome could be fitted.")
    return "\n".join(lines + _skipped(summary, "sweep")) + "\n"


def summary_markdown(analysis: Analysis) -> str:
    """The human-readable report (accuracy in %, CIs in brackets) of one run of ``analysis``."""
    t = analysis.tables
    lines = ["# Countdown steering report", ""]
    settings = flat_settings(analysis.settings)
    if settings:
        lines += ["Settings: `" + ", ".join(f"{k}={v}" for k, v in settings.items()) + "`", ""]
    if "accuracy" in t:
        lines += accuracy_markdown(t["accuracy"])
    elif "accuracy_by_strength" in t:
        lines += pooled_accuracy_markdown(t["accuracy_by_strength"])
    if "behaviours" in t and len(t["behaviours"]):
        lines += rates_markdown(t["behaviours"])
    if analysis.arm == "controls":
        lines += controls_markdown(t.get("controls"), t.get("controls_regression"), analysis.summary)
    text = "\n".join(lines) + "\n"
    if "units" in t and len(t["units"]):
        text += units_markdown(t["units"])
    if "coherence" in t:
        text += coherence_markdown(t["coherence"])
    if analysis.arm == "sweep" and "regression" in analysis.stems:
        text += outcomes_markdown(t.get("regression", pd.DataFrame()), analysis.summary)
    return text


def _copy(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def write_report(analysis: Analysis, out: str | Path, *, plot: bool = True) -> ReportFiles:
    """Write ``summary.md``, the copies of the tables it shows and ``accuracy.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Path] = {}
    for name in COPIED:
        stem = analysis.stems.get(name)
        for suffix in ("csv", "parquet"):
            if stem is not None and (analysis.folder / f"{stem}.{suffix}").is_file():
                tables[f"{name}.{suffix}"] = _copy(analysis.folder / f"{stem}.{suffix}", out / f"{name}.{suffix}")
    summary = out / "summary.md"
    atomic_write_text(summary, summary_markdown(analysis))
    png = None
    if plot and "accuracy" in analysis.tables:
        from interp_sot.analysis.plots import plot_report

        t = analysis.tables
        groups = t.get("controls") if analysis.arm == "controls" else None
        beh = t.get("behaviours")
        png = plot_report(t["accuracy"], beh if beh is not None and len(beh) else None, groups, out / "accuracy.png")
    return ReportFiles(summary, tables, png)


def report_stage(analysis: str | Path, config: ReportConfig, out: str | Path, *, arm: Arm | None = None
                 ) -> ReportFiles:
    """Render ``arm`` (default: the sweep, else the controls) of the finished analysis folder ``analysis`` into the
    stage directory ``out`` (identity recorded, manifest written last).

    A report is a rendering: rerun, it renders the analysis it is given now, whichever analysis folder rendered it
    before (a run's report after its own analysis, then after one with its controls); the manifest names the
    analysis. Other settings (``config``, ``arm``) are refused as in every stage."""
    view = read_analysis(analysis, arm)
    out = Path(out)
    begin_stage(out, STAGE, config, {"arm": view.arm})
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # incomplete until this rendering is whole
    for name in COPIED:  # a table the analysis no longer holds must not survive from an earlier rendering
        for suffix in ("csv", "parquet"):
            (out / f"{name}.{suffix}").unlink(missing_ok=True)
    files = write_report(view, out, plot=config.plot)
    finish_stage(out, STAGE, [files.summary, *files.tables.values(), *([files.plot] if files.plot else [])],
                 {"arm": view.arm, "analysis": str(analysis), "tables": sorted(files.tables)})
    return files
