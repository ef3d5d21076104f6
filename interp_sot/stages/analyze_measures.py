"""The ``analyze`` stage's tables of each run it reads and those built on the ``measure`` stage's sidecars.

- per run (``sweep`` / ``controls`` arm, the latter prefixed ``controls_``), what the run's report renders:
  ``accuracy_by_feature`` (Wilson and problem-bootstrap intervals, the paired change from s = 0),
  ``behaviour_rates`` (every registered rate outcome per strength), ``controls_groups`` (accuracy per control
  group) and ``traces`` (the per-trace table with every registered outcome), as csv + parquet;
- ``coherence_by_strength`` (+ ``controls_coherence_by_strength``, and ``controls_coherence.csv`` by group): the
  coherence guard, in every analysis of a measured run;
- ``diversity_regression.csv``: coverage and entropy within feature sets (the screen's conversational set,
  ratio > 0.5, and its complement; the judge's personality / expertise categories when the screen has them),
  each regressed on strength with problem fixed effects and log trace length, SEs clustered by problem, with
  the minimal detectable effect at α = 0.05 and 80% power, and Holm's ``p_holm`` / Benjamini–Hochberg's ``q_bh``
  over one family: all slopes of the table (every feature set x coverage / entropy);
- ``conditions.csv``: picked feature, random conversational and random non-conversational controls side by side
  (at equal added-vector norms when the controls were matched), and the prompting arm (condition ``prompted``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from interp_sot.analysis.conditions import condition_table
from interp_sot.analysis.descriptive import accuracy_table, control_groups, rate_columns, rate_table
from interp_sot.analysis.measures import coherence_by_strength, join_coherence, join_diversity, slope_regressions
from interp_sot.analysis.multiple_testing import add_corrections, significance_summary
from interp_sot.analysis.steering_effects import SweepColumns
from interp_sot.analysis.sweep_table import resolve_run_path
from interp_sot.experiments.trace_features import feature_sets
from interp_sot.io import write_frame
from interp_sot.stages.strengths import read_units

logger = logging.getLogger(__name__)

Arm = Literal["sweep", "controls"]
"""The runs an analysis reads that have a report of their own: the steering sweep and the control features."""
ARM_PREFIX: dict[Arm, str] = {"sweep": "", "controls": "controls_"}
"""File-name prefix of an arm's descriptive tables in the analysis folder."""


class ArmTables(NamedTuple):
    """What the report of one run renders: the run's settings and its tables in the analysis folder."""

    settings: dict[str, Any] | None
    """The settings every record of the run stores (None for a plain table)."""
    tables: dict[str, str]
    """Report name (``accuracy``, ``behaviours``, ``controls``, ``controls_regression``, ``coherence``, ``traces``,
    ``regression``, ``accuracy_by_strength``) -> file stem in the analysis folder (``.csv``, and ``.parquet`` for
    those the report copies)."""


def run_dir_of(source: str | Path) -> Path:
    """The folder a run table lives in (the run directory for a steer / controls run)."""
    return resolve_run_path(source).parent


def screen_sets(screen: str | Path, ratio_threshold: float = 0.5) -> dict[str, Any]:
    """Feature sets of the diversity outcome from a screen run directory or its table file."""
    from interp_sot.screening.screen import load_table

    path = Path(screen)
    folder = path if path.is_dir() else path.parent
    table_path = path if path.is_file() else next(
        (folder / n for n in ("screen.parquet", "screen.csv") if (folder / n).is_file()), folder / "screen.parquet")
    cats = None
    if (folder / "categories.csv").is_file():
        cats = pd.read_csv(folder / "categories.csv", index_col=0)
    return feature_sets(load_table(table_path).reset_index(drop=True), cats, ratio_threshold=ratio_threshold)


def write_pair(frame: pd.DataFrame, out: Path, stem: str, files: dict[str, str]) -> str:
    """``stem.csv`` and ``stem.parquet`` (the report copies both); listed in ``files``; returns ``stem``."""
    for suffix, key in (("csv", stem), ("parquet", f"{stem}.parquet")):
        write_frame(frame, out / f"{stem}.{suffix}")
        files[key] = f"{stem}.{suffix}"
    return stem


def units_table(run: str | Path) -> pd.DataFrame | None:
    """The run's strength units (``strength_units.json``) as a table, one row per (feature, strength): what each
    strength adds (``added_norm``) and its ratio to the median residual norm; None when the run recorded none."""
    if not Path(run).is_dir():
        return None
    record = read_units(run)
    if record is None:
        return None
    rows = pd.DataFrame(record.get("rows", []))
    if rows.empty:
        return None
    return rows.assign(units=record.get("units"))[
        ["feature", "strength", "units", "added_norm", "ratio_to_residual", "residual_norm"]]


def descriptive_tables(arm: Arm, traces: pd.DataFrame, out: Path, files: dict[str, str], *, n_boot: int,
                       seed: int) -> dict[str, str]:
    """One run's descriptive tables (``analysis.descriptive``) and its per-trace table, as csv + parquet;
    -> {report name: file stem}."""
    prefix = ARM_PREFIX[arm]
    tables = {"accuracy": write_pair(accuracy_table(traces, n_boot=n_boot, seed=seed), out,
                                     f"{prefix}accuracy_by_feature", files)}
    if rate_columns(traces):
        tables["behaviours"] = write_pair(rate_table(traces, n_boot=n_boot, seed=seed), out,
                                          f"{prefix}behaviour_rates", files)
    if arm == "controls":
        tables["controls"] = write_pair(control_groups(traces), out, "controls_groups", files)
    tables["traces"] = write_pair(traces, out, f"{prefix}traces", files)
    return tables


def measure_tables(
    frame: pd.DataFrame | None,
    sweep: str | Path | None,
    out: Path,
    *,
    cols: SweepColumns,
    length_control: bool,
    controls: str | Path | None = None,
    control_frame: pd.DataFrame | None = None,
    screen: str | Path | None = None,
    outcomes: Sequence[str] = (),
    prompted: str | Path | None = None,
    prompted_frame: pd.DataFrame | None = None,
) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """Write the tables above that the runs hold inputs for; -> (files, summary entries, skipped outcomes).

    ``frame`` / ``control_frame`` / ``prompted_frame``: the runs' tables in the analysis schema; a run's per-trace
    table carries its coherence already, a plain table gains it here from a ``coherence.jsonl`` beside it. The
    caller has refused runs whose measure pass did not finish (``stages.measure.require_measured_completely``)."""
    files: dict[str, str] = {}
    summary: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    run = run_dir_of(sweep) if sweep is not None else None
    if frame is not None and run is not None:
        frame = join_coherence(frame, run)
        if "coherence_logprob" in frame.columns:
            coh = coherence_by_strength(frame, cols.strength)
            write_pair(coh, out, "coherence_by_strength", files)
            files["coherence"] = files.pop("coherence_by_strength")
            summary["coherence"] = coh.to_dict(orient="records")
    if frame is not None and run is not None and screen is not None:
        frame, div_cols = join_diversity(frame, run, screen_sets(screen))
        if div_cols:
            div, why = slope_regressions(frame, div_cols, cols=cols, length_control=length_control)
            skipped.update({f"diversity:{k}": v for k, v in why.items()})
            if len(div):
                div = add_corrections(div)
                summary["significance"] = {"diversity_regression": significance_summary(div)._asdict()}
            write_frame(div, out / "diversity_regression.csv")
            files["diversity_regression"] = "diversity_regression.csv"
            summary["diversity"] = div.to_dict(orient="records") if len(div) else []
        else:
            logger.info("%s has no trace_features.jsonl: no diversity outcome (run the measure stage)", run)
    if prompted is not None and prompted_frame is not None:
        prompted_frame = join_coherence(prompted_frame, run_dir_of(prompted))
    if frame is not None and run is not None and prompted_frame is not None and control_frame is None:
        shown = [y for y in ("coherence_logprob", *outcomes) if y in frame.columns]  # the arm without controls
        cond = condition_table(frame, None, picked_units=read_units(run), control_units=None, outcomes=shown,
                               prompted=prompted_frame)
        write_frame(cond, out / "conditions.csv")
        files["conditions"] = "conditions.csv"
    if controls is not None and control_frame is not None:
        crun = run_dir_of(controls)
        control_frame = join_coherence(control_frame, crun)
        if "coherence_logprob" in control_frame.columns:
            write_frame(coherence_by_strength(control_frame, "group"), out / "controls_coherence.csv")
            files["controls_coherence"] = "controls_coherence.csv"
            write_pair(coherence_by_strength(control_frame, cols.strength), out, "controls_coherence_by_strength",
                       files)
        if frame is None or run is None or not (
                {"feature", "strength", "correct"} <= set(frame.columns)
                and {"feature", "strength", "correct", "group"} <= set(control_frame.columns)):
            return files, summary, skipped  # plain tables: no per-feature conditions to line up
        shown = [y for y in ("coherence_logprob", *outcomes) if y in frame.columns]
        cond = condition_table(frame, control_frame, picked_units=read_units(run), control_units=read_units(crun),
                               outcomes=shown, prompted=prompted_frame)
        write_frame(cond, out / "conditions.csv")
        files["conditions"] = "conditions.csv"
        summary["conditions_matched"] = bool(cond["matched"].iloc[0]) if len(cond) else False
    return files, summary, skipped
