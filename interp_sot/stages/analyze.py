"""Stage ``analyze``: every statistic of a steering run, in the paper's regression form; the one home of a run's
statistics (the ``report`` stage renders these files and computes nothing).

Reads: a ``steer`` run directory (or any table with one row per problem x strength, see
:mod:`interp_sot.analysis.sweep_table`), a ``controls`` run directory or table, or both. From a run directory's
records it builds the per-trace table with every registered outcome (:mod:`interp_sot.analysis.outcomes`: the
graded task outcomes, the coherence guard, the heuristic markers, the LLM judge's codings and what derives from
them). Writes into its directory: ``accuracy_by_strength.csv`` (Wilson intervals), ``regression.csv`` (each outcome
on strength indicators vs the baseline, problem FE, log trace length, SEs clustered by problem), ``mediation.csv``
(baseline -> treated through the mediators, three scales), ``controls_regression.csv`` (conversational vs
non-conversational controls), ``steerability.csv`` (per-problem anti-steerable fraction,
:mod:`interp_sot.analysis.steerability`), ``analysis.png`` and ``summary.json``; and each run's descriptive tables
(:mod:`interp_sot.stages.analyze_measures`: accuracy per feature x strength, behaviour rates, control groups,
coherence by strength, the per-trace table), which ``summary.json`` lists per arm (``arms``) for the report.

Every table with a ``p`` column also carries Holm's ``p_holm`` and Benjamini–Hochberg's ``q_bh``
(:mod:`interp_sot.analysis.multiple_testing`). Families: ``regression.csv``: all strength-vs-baseline terms of
all outcomes (not the log-length control ``log_trace_len``); ``controls_regression.csv``: the ``conversational``
term of all outcomes; ``mediation.csv``: all effects of one ``scale``; ``diversity_regression.csv``: all its slopes.
``summary.json`` counts significant contrasts per family before and after correction (``significance``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from interp_sot.analysis.conditions import prompting_contrast
from interp_sot.analysis.measures import DIVERSITY_PREFIX, accuracy_mde, add_mde, join_diversity
from interp_sot.analysis.mediation import MediationConfig
from interp_sot.analysis.multiple_testing import add_corrections, significance_summary
from interp_sot.analysis.outcomes import check_values, outcome_of
from interp_sot.analysis.policies import MissingPolicy
from interp_sot.analysis.steerability import steerability_table
from interp_sot.analysis.steering_effects import (
    SweepColumns,
    accuracy_by_strength,
    controls_regression,
    is_strength_term,
    strength_label,
    strength_mediation,
    strength_regressions,
)
from interp_sot.analysis.sweep_table import COGNITIVE_BEHAVIOURS, SweepTable, is_sweep_traces
from interp_sot.analysis.traces import load_run_table, run_settings
from interp_sot.errors import InterpSotError
from interp_sot.io import atomic_write_json, write_frame
from interp_sot.stages.analyze_config import AnalyzeConfig
from interp_sot.stages.analyze_measures import (
    ARM_PREFIX,
    Arm,
    ArmTables,
    descriptive_tables,
    measure_tables,
    run_dir_of,
    screen_sets,
    units_table,
    write_pair,
)
from interp_sot.stages.measure import require_measured_completely
from interp_sot.stages.rundir import begin_stage, finish_stage, require_complete

logger = logging.getLogger(__name__)

STAGE = "analyze"
RESERVED = ("problem_id", "strength", "correct", "trace_len", "trace_id", "feature_id", "seed", "task_id")
"""Columns of a plain table that are never outcomes."""


class AnalyzeResult(NamedTuple):
    """The tables of the analysis (also written as CSV)."""

    accuracy: pd.DataFrame
    """Accuracy by strength with Wilson CIs (empty without a sweep)."""
    regression: pd.DataFrame
    """outcome ~ strength indicators (vs baseline) + log trace length | problem FE, SEs clustered (empty without a
    sweep)."""
    mediation: pd.DataFrame | None
    controls: pd.DataFrame | None
    """outcome ~ conversational (0/1) + log trace length | problem FE; None without control runs."""
    skipped: dict[str, str]
    """Outcome (``controls:`` prefix for control fits) -> why it was not fitted (``on_unfittable="skip"``)."""
    files: dict[str, str]
    arms: dict[str, ArmTables]
    """Per run (``sweep``, ``controls``): its settings and descriptive tables, what the report renders."""


def _fit_each(outcomes: Sequence[str], fit: Callable[[str], pd.DataFrame], prefix: str, skipped: dict[str, str],
              frame: pd.DataFrame, config: AnalyzeConfig, what: str) -> pd.DataFrame:
    """``fit(y)`` per outcome, concatenated with an ``outcome`` column; unfittable ones skipped if configured.

    An outcome registered ``lenient`` (the graded task outcomes, added to every run, not asked for) that cannot be
    fitted (all answers invalid, say) is always listed under ``skipped`` with the reason instead of failing the
    analysis. A registered ``binary`` outcome with values other than 0/1 is refused."""
    tabs = []
    for y in outcomes:
        registered = outcome_of(y)
        lenient = config.on_unfittable == "skip" or (registered is not None and registered.lenient)
        check_values(frame, y)
        if lenient and pd.to_numeric(frame[y], errors="coerce").nunique(dropna=True) <= 1:
            skipped[prefix + y] = f"constant (or missing) over the {what}"
            continue
        try:
            tab = fit(y)
        except ValueError as err:
            if not lenient:
                raise
            logger.warning("%s%s not fitted: %s", prefix, y, err)
            skipped[prefix + y] = str(err)
            continue
        clusters = tab.attrs.get("n_clusters")
        if _is_subset(y) and isinstance(clusters, int) and clusters < MIN_SUBSET_CLUSTERS:
            # e.g. two valid answers at one strength: a within-problem fit on 2 problems has SE ~ 0 and p ~ 0
            skipped[prefix + y] = (f"defined on only {clusters} problem(s) with traces in both arms over the {what} "
                                   f"(< {MIN_SUBSET_CLUSTERS}): not estimable")
            logger.warning("%s%s not fitted: %d problems", prefix, y, clusters)
            continue
        if "outcome" not in tab.columns:
            tab.insert(0, "outcome", y)
        tabs.append(tab)
    return pd.concat(tabs, ignore_index=True) if tabs else pd.DataFrame()


def _mediation(frame: pd.DataFrame, mediators: list[str], sweep: str | Path, screen: str | Path | None,
               cols: SweepColumns, config: AnalyzeConfig, skipped: dict[str, str]) -> pd.DataFrame | None:
    """baseline -> treated -> accuracy through ``mediators`` (three scales, Holm / BH per scale), or None with the
    reason under ``skipped["mediation"]``. A measure-stage diversity mediator (``diversity.<set>.<measure>``) is
    joined from the run's sidecar with the screen's feature sets."""
    if not mediators:
        logger.info("no mediators: skipping the mediation")
        return None
    if screen is not None and any(m.startswith(DIVERSITY_PREFIX) for m in mediators):
        frame, _ = join_diversity(frame, run_dir_of(sweep), screen_sets(screen))
    missing = [m for m in mediators if m not in frame.columns]
    pair = frame[cols.strength].isin([config.baseline, config.treated])
    constant = [m for m in mediators if m in frame.columns
                and pd.to_numeric(frame.loc[pair, m], errors="coerce").nunique() <= 1]
    why = None
    if missing:
        why = (f"mediator(s) {missing} not in the run table (diversity mediators need the measure stage's SAE "
               "totals and a screen); the mediation was not fitted")
    elif constant:  # paths a and b are not identified: say so instead of a table of NaN
        why = (f"mediator(s) {constant} constant over the baseline ({config.baseline:g}) and treated "
               f"({config.treated:g}) traces: the mediation is not identified and was not fitted")
    if why is not None:
        if config.on_unfittable == "error":
            raise ValueError(why)
        logger.warning("%s", why)
        skipped["mediation"] = why
        return None
    try:
        med = pd.concat([strength_mediation(
            frame, mediators, cols=cols, baseline=config.baseline, treated=config.treated,
            length_control=config.length_control, missing=config.missing,
            config=MediationConfig(n_boot=config.bootstrap, seed=config.seed, scale=scale))
            for scale in ("raw", "std_all", "std_nox")], ignore_index=True)
    except ValueError as err:  # e.g. too few problems, or a control absorbed by the problem fixed effects
        if config.on_unfittable == "error":
            raise
        logger.warning("mediation not fitted: %s", err)
        skipped["mediation"] = f"not fitted: {err}"
        return None
    return add_corrections(med, family="scale")


MIN_SUBSET_CLUSTERS = 10
"""A subset outcome fitted on fewer problems (clusters) than this is listed as not estimable."""


def _is_subset(outcome: str) -> bool:
    """Registered ``subset`` (the error of a *valid* answer): fitted on the traces that have it (``missing="drop"``)
    whatever ``AnalyzeConfig.missing`` says, a comparison among valid answers (read it with
    ``task.valid_expression``)."""
    registered = outcome_of(outcome)
    return registered is not None and registered.subset


def _missing_policy(outcome: str, config: AnalyzeConfig) -> MissingPolicy:
    return "drop" if _is_subset(outcome) else config.missing


def _outcomes(sweep: pd.DataFrame, run_outcomes: list[str], config: AnalyzeConfig) -> list[str]:
    if config.behaviours is not None:
        return list(config.behaviours)
    if is_sweep_traces(sweep):
        return run_outcomes  # a steer run: its marker and judge columns, not its bookkeeping numbers
    return [c for c in sweep.columns
            if c not in RESERVED and c != config.cluster and pd.api.types.is_numeric_dtype(sweep[c])]


def _load(source: str | Path) -> SweepTable:
    """A run (refused while its measure pass is unfinished: a subset of scored traces would lie) or a table."""
    require_measured_completely(run_dir_of(source))
    return load_run_table(source)


def analyze_stage(
    sweep: str | Path | None,
    config: AnalyzeConfig,
    out: str | Path,
    *,
    controls: str | Path | None = None,
    inputs: Mapping[str, object] | None = None,
    screen: str | Path | None = None,
    prompted: str | Path | None = None,
) -> AnalyzeResult:
    """Fit and write every table of the analysis (see the module docstring) into ``out``.

    ``sweep``: a steer run or a sweep table; None analyses ``controls`` alone (its groups and control contrast).
    ``screen``: a screen run (or its table) whose feature sets the diversity outcome is measured in; the
    measure stage's sidecars in the runs add coherence and diversity tables (``stages.analyze_measures``).
    ``prompted``: the prompting arm's run (``stages.prompted``), shown as condition ``prompted`` and contrasted with
    the sweep's s = 0 rows on the same problems in ``prompting.csv``."""
    out = Path(out)
    if sweep is None and controls is None:
        raise InterpSotError("the analysis needs a sweep (a steer run or its table), a controls run, or both")
    if sweep is None and (screen is not None or prompted is not None):
        raise InterpSotError("a screen or a prompting arm is read beside a sweep: give the sweep too")
    for source, what in ((sweep, "--sweep"), (controls, "--controls"), (screen, "--screen"), (prompted, "--prompted")):
        if source is not None and not Path(source).exists():  # a typo must not claim `out` (stage.json) first
            raise FileNotFoundError(f"{what} {source}: table not found (no such file or run directory)")
        if source is not None and what != "--screen":
            require_complete(source, what)
    cols = SweepColumns(cluster=config.cluster)
    table = _load(sweep) if sweep is not None else None
    ctrl_table = _load(controls) if controls is not None else None
    prompted_table = _load(prompted) if prompted is not None else None
    begin_stage(out, STAGE, config, {"sweep": None if sweep is None else str(sweep),
                                     "controls": None if controls is None else str(controls),
                                     **({"screen": str(screen)} if screen is not None else {}),
                                     **({"prompted": str(prompted)} if prompted is not None else {}), **(inputs or {})})
    main = table if table is not None else ctrl_table
    assert main is not None
    behaviours = _outcomes(main.frame, main.outcomes, config)
    skipped: dict[str, str] = {}
    files: dict[str, str] = {}
    frame = table.frame if table is not None else None
    acc, reg, med = pd.DataFrame(), pd.DataFrame(), None
    mediators: list[str] = []
    if sweep is not None and frame is not None:
        acc, reg, med, mediators = _sweep_tables(frame, behaviours, sweep, screen, cols, config, out, files, skipped)

    ctrl_tab = None
    ctrl = ctrl_table.frame if ctrl_table is not None else None
    if ctrl is not None:
        wanted = (["correct", *[b for b in behaviours if b in ctrl.columns]] if config.control_outcomes is None
                  else list(config.control_outcomes))
        ctrl_tab = _fit_each(wanted, lambda y: controls_regression(
            ctrl, y, cols=cols, length_control=config.length_control, missing=_missing_policy(y, config)),
            "controls:", skipped, ctrl, config, "control runs")
        ctrl_tab = (add_corrections(add_mde(ctrl_tab), rows=ctrl_tab["term"] == "conversational") if len(ctrl_tab)
                    else ctrl_tab)
        write_pair(ctrl_tab, out, "controls_regression", files)

    prompted_frame = prompted_table.frame if prompted_table is not None else None
    prompting: pd.DataFrame | None = None
    if prompted_frame is not None and frame is not None:
        arm = prompted_frame
        base = frame[frame[cols.strength] == config.baseline]
        prompting = _fit_each([y for y in ["correct", *behaviours] if y in arm.columns],
                              lambda y: prompting_contrast(base, arm, y, length_control=config.length_control),
                              "prompted:", skipped, pd.concat([base, arm]), config, "prompted and s = 0 rows")
        if len(prompting):
            prompting = add_corrections(add_mde(prompting), rows=prompting["term"] == "prompted")
        write_frame(prompting, out / "prompting.csv")
        files["prompting"] = "prompting.csv"
    measured, measure_summary, measure_skipped = measure_tables(
        frame, sweep, out, cols=cols, length_control=config.length_control, controls=controls,
        control_frame=ctrl, screen=screen, outcomes=behaviours, prompted=prompted, prompted_frame=prompted_frame)
    files.update(measured)
    skipped.update(measure_skipped)
    arms = _arms(table, ctrl_table, sweep, controls, config, out, files)

    if config.plot and frame is not None:
        from interp_sot.analysis.plots import plot_analysis

        plot_analysis(acc, reg, strength_label(config.treated), out / "analysis.png")
        files["plot"] = "analysis.png"
    significance = {**measure_summary.get("significance", {}), **{  # counts per family, before / after correction
        name: significance_summary(tab)._asdict() for name, tab in
        (("regression", reg), ("controls_regression", ctrl_tab), ("mediation", med),
         ("prompting", prompting))
        if tab is not None and "p_holm" in tab.columns}}
    summary = {"sweep": None if sweep is None else str(sweep), "controls": None if controls is None else str(controls),
               "rows": len(main.frame), "baseline": config.baseline, "treated": config.treated,
               "outcomes": ["correct", *behaviours], "mediators": mediators, "bootstrap": config.bootstrap,
               "seed": config.seed, "length_control": config.length_control, "cluster": cols.cluster_col,
               "files": files, "skipped": skipped, **measure_summary, "significance": significance,
               "arms": {name: arm._asdict() for name, arm in arms.items()}}
    atomic_write_json(out / "summary.json", summary)
    finish_stage(out, STAGE, [*files.values(), "summary.json"], {"rows": len(main.frame), "skipped": len(skipped)})
    logger.info("wrote %s to %s", ", ".join(files.values()), out)
    return AnalyzeResult(acc, reg, med, ctrl_tab, skipped, files, arms)


def _sweep_tables(frame: pd.DataFrame, behaviours: list[str], sweep: str | Path, screen: str | Path | None,
                  cols: SweepColumns, config: AnalyzeConfig, out: Path, files: dict[str, str],
                  skipped: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, list[str]]:
    """Accuracy by strength, the strength regressions, steerability and the mediation of a sweep (written);
    -> (accuracy, regression, mediation, mediators)."""
    mediators = list(config.mediators) if config.mediators is not None else [
        c for c in COGNITIVE_BEHAVIOURS if c in frame.columns and frame[c].notna().any()]
    acc = accuracy_mde(accuracy_by_strength(frame, cols), config.baseline)
    write_frame(acc, out / "accuracy_by_strength.csv")
    files["accuracy"] = "accuracy_by_strength.csv"
    reg = _fit_each(["correct", *behaviours], lambda y: strength_regressions(
        frame, [y], cols=cols, baseline=config.baseline, length_control=config.length_control,
        missing=_missing_policy(y, config)), "", skipped, frame, config, "sweep")
    reg = add_corrections(add_mde(reg), rows=reg["term"].map(is_strength_term)) if len(reg) else reg
    write_frame(reg, out / "regression.csv")
    files["regression"] = "regression.csv"
    steer = steerability_table(frame, [y for y in ["correct", *behaviours] if y in frame.columns], cols=cols,
                               baseline=config.baseline)
    write_frame(steer, out / "steerability.csv")
    files["steerability"] = "steerability.csv"
    med = _mediation(frame, mediators, sweep, screen, cols, config, skipped)
    if med is not None:
        write_frame(med, out / "mediation.csv")
        files["mediation"] = "mediation.csv"
    return acc, reg, med, mediators


def _arms(table: SweepTable | None, ctrl_table: SweepTable | None, sweep: str | Path | None,
          controls: str | Path | None, config: AnalyzeConfig, out: Path, files: dict[str, str]
          ) -> dict[str, ArmTables]:
    """Each run's descriptive tables (written) and the list of what its report renders."""
    arms: dict[str, ArmTables] = {}
    named: tuple[tuple[Arm, SweepTable | None, str | Path | None], ...] = (
        ("sweep", table, sweep), ("controls", ctrl_table, controls))
    for arm, tab, source in named:
        if tab is None or source is None:
            continue
        tables = ({} if tab.traces is None else
                  descriptive_tables(arm, tab.traces, out, files, n_boot=config.bootstrap, seed=config.seed))
        units = units_table(source)
        if units is not None:
            tables["units"] = write_pair(units, out, f"{ARM_PREFIX[arm]}strength_units", files)
        if arm == "sweep":
            tables |= {"accuracy_by_strength": "accuracy_by_strength", "regression": "regression"}
            if "coherence" in files:
                tables["coherence"] = "coherence_by_strength"
        else:
            tables["controls_regression"] = "controls_regression"
            if "controls_coherence_by_strength" in files:
                tables["coherence"] = "controls_coherence_by_strength"
        arms[arm] = ArmTables(run_settings(source), tables)
    return arms
