"""The ``analyze`` stage's tables built on the ``measure`` stage's sidecars and the runs' strength units.

- ``coherence_by_strength.csv`` (+ ``controls_coherence.csv``): the coherence guard by strength, in every
  analysis of a measured run;
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
from typing import Any

import pandas as pd

from interp_sot.analysis.conditions import condition_table
from interp_sot.analysis.measures import coherence_by_strength, join_coherence, join_diversity, slope_regressions
from interp_sot.analysis.multiple_testing import add_corrections, significance_summary
from interp_sot.analysis.steering_effects import SweepColumns
from interp_sot.analysis.sweep_table import resolve_run_path
from interp_sot.experiments.trace_features import feature_sets
from interp_sot.io import write_frame
from interp_sot.stages.measure import require_measured_completely
from interp_sot.stages.strengths import read_units

logger = logging.getLogger(__name__)


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


def measure_tables(
    frame: pd.DataFrame,
    sweep: str | Path,
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
    """Write the tables above that the runs hold inputs for; -> (files, summary entries, skipped outcomes)."""
    files: dict[str, str] = {}
    summary: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    run = run_dir_of(sweep)
    require_measured_completely(run)
    frame = join_coherence(frame, run)
    if "coherence_logprob" in frame.columns:
        coh = coherence_by_strength(frame, cols.strength)
        write_frame(coh, out / "coherence_by_strength.csv")
        files["coherence"] = "coherence_by_strength.csv"
        summary["coherence"] = coh.to_dict(orient="records")
    if screen is not None:
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
        prun = run_dir_of(prompted)
        require_measured_completely(prun)
        prompted_frame = join_coherence(prompted_frame, prun)
    if prompted_frame is not None and (controls is None or control_frame is None):  # the arm without controls
        shown = [y for y in ("coherence_logprob", *outcomes) if y in frame.columns]
        cond = condition_table(frame, None, picked_units=read_units(run), control_units=None, outcomes=shown,
                               prompted=prompted_frame)
        write_frame(cond, out / "conditions.csv")
        files["conditions"] = "conditions.csv"
    if controls is not None and control_frame is not None:
        crun = run_dir_of(controls)
        require_measured_completely(crun)
        control_frame = join_coherence(control_frame, crun)
        if "coherence_logprob" in control_frame.columns:
            write_frame(coherence_by_strength(control_frame, "group"), out / "controls_coherence.csv")
            files["controls_coherence"] = "controls_coherence.csv"
        if not ({"feature", "strength", "correct"} <= set(frame.columns)
                and {"feature", "strength", "correct", "group"} <= set(control_frame.columns)):
            return files, summary, skipped  # plain tables: no per-feature conditions to line up
        shown = [y for y in ("coherence_logprob", *outcomes) if y in frame.columns]
        cond = condition_table(frame, control_frame, picked_units=read_units(run), control_units=read_units(crun),
                               outcomes=shown, prompted=prompted_frame)
        write_frame(cond, out / "conditions.csv")
        files["conditions"] = "conditions.csv"
        summary["conditions_matched"] = bool(cond["matched"].iloc[0]) if len(cond) else False
    return files, summary, skipped
