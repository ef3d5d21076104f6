"""``interp-sot controls`` as one call: random conversational vs non-conversational features, each on N random
problems, checked before anything heavy loads, run, then measured, analysed and reported (:func:`run_controls`).

What the user chooses is declared once: where the control features come from (:class:`ControlsChoice`), how they
are drawn and steered (``ControlsConfig``), the sources, the sweep and the options of
:mod:`interp_sot.stages.run_options`. Pure Python at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.errors import FlagError, InterpSotError, bad_input, shorten
from interp_sot.stages.controls_config import ControlMode, ControlsConfig
from interp_sot.stages.run_options import SweepRequest

if TYPE_CHECKING:
    from interp_sot.experiments.controls import ControlFeature
    from interp_sot.experiments.settings import SweepConfig
    from interp_sot.stages.launch import Launched


@dataclass(frozen=True)
class ControlsChoice:
    """Where the control features come from: a list, or a screening table to sample them from."""

    controls: str | None = None
    """File (.csv/.parquet/.json/.jsonl) with columns feature, strength, group."""
    screen_table: str | None = None
    """Screening table to sample the controls from."""
    match_run: str | None = None
    """With --mode matched: the picked feature's finished steer run (its strength_units.json)."""

    def __post_init__(self) -> None:
        if bool(self.controls) == bool(self.screen_table):
            raise ValueError("give either --controls FILE or --screen-table FILE")


def matched_norms_of(choice: ControlsChoice, mode: ControlMode, units: str | None) -> tuple[float, ...]:
    """``matched`` mode: the picked feature's signed added norms at its non-zero strengths, from its steer run
    (``choice.match_run``); () otherwise. Matched controls steer unit-norm directions, so ``units`` must be
    'unit' (or None)."""
    if mode != "matched":
        if choice.match_run:
            raise FlagError("--match-run is only used with --mode matched")
        return ()
    if not choice.match_run:
        raise FlagError("--mode matched needs --match-run STEER_DIR (the picked feature's steer run)")
    if units not in (None, "unit"):
        raise FlagError("--mode matched steers unit-norm directions (strength = added norm): "
                        "leave --units out or use --units unit")
    if not Path(choice.match_run).expanduser().is_dir():
        raise FileNotFoundError(f"--match-run {shorten(choice.match_run)}: no such run directory")
    from interp_sot.stages.controls import matched_norms
    from interp_sot.stages.rundir import require_complete
    from interp_sot.stages.strengths import read_units

    require_complete(Path(choice.match_run), "--match-run")
    with bad_input(f"--match-run {shorten(choice.match_run)}"):
        record = read_units(choice.match_run)
        if record is None:
            raise FlagError(f"--match-run {choice.match_run}: no strength_units.json (steer SAE --features to "
                            "record it)")
        return matched_norms(record)


@dataclass(frozen=True)
class ControlsRequest(SweepRequest):
    """A control run as the user asks for it: nothing is loaded until :func:`run_controls`."""

    out: str
    """Run directory (rerun the same request to resume)."""
    sweep: SweepConfig
    """Site, prompting, sampling and batching, as in a steer run."""
    choice: ControlsChoice
    config: ControlsConfig = field(default_factory=ControlsConfig)


def control_list(choice: ControlsChoice, config: ControlsConfig) -> list[ControlFeature]:
    """The control features: read from ``choice.controls``, or sampled from the screening table."""
    from interp_sot.experiments import load_control_features
    from interp_sot.screening.screen import load_table
    from interp_sot.stages.controls import sample_control_features
    from interp_sot.stages.rundir import require_complete

    if choice.controls:
        with bad_input(f"--controls {shorten(choice.controls)}"):
            controls = load_control_features(choice.controls)
    else:
        table = str(choice.screen_table)
        require_complete(Path(table).parent, "--screen-table")
        with bad_input(f"--screen-table {shorten(table)}"):
            controls = sample_control_features(load_table(table), config)
    bad = [c.feature for c in controls if not isinstance(c.feature, int)]
    if bad:
        raise InterpSotError(f"control features must be SAE feature ids (integers); got {shorten(bad[:5])}")
    return controls


def run_controls(request: ControlsRequest) -> Launched:
    """Check flags, input files, prompts against the context, the memory plan, the output folder and the run's
    identity before the SAE or the model loads (the directions, known only with the model, are compared when
    ``stage.json`` is written), then run the controls (``stages.controls``) and conclude them."""
    config, sweep = request.config, request.sweep
    units = request.units.resolve(config.units)
    if request.choice.screen_table and config.mode == "max_act" and units != "sae":
        raise FlagError("sampled controls run at --strength-factor x max activation in SAE units: use --units sae "
                        "(or --mode matched, or a --controls file with strengths in your units)")
    request.sae.check()
    request.units.check(units)
    coding = request.coding.config()
    controls = control_list(request.choice, config)
    problems = request.problems.load()
    from interp_sot.experiments.controls import control_rows  # torch loads from here on, after the flag checks
    from interp_sot.stages.controls import STAGE, controls_identity, steer_controls
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.launch import Launched, check_context, check_features, claim, conclude, plan_or_refuse

    with bad_input("--controls/--problems-per-feature"):
        rows = control_rows(controls, problems, problems_per_feature=config.problems_per_feature, seed=config.seed)
    check_context(request.model, problems, sweep)  # config.json and the tokenizer only
    planned = plan_or_refuse(request.plan, request.model, problems, sweep, rows=len(rows))
    if planned is not None:
        return Launched(planned=planned)
    inputs = {"model": model_identity(request.model.model)}
    shard = claim(request.out, STAGE, controls_identity(controls, problems, {}, sweep, config, coding), inputs,
                  pending=("config.directions",))
    sae = request.sae.load(sweep.layer)
    stats = request.units.load_stats(units)
    check_features(sae, sorted({int(c.feature) for c in controls}), units, stats)
    model, tokenizer = request.model.load()
    result = steer_controls(model, tokenizer, sae, controls, problems, sweep, config, request.out, units=units,
                            stats=stats, coding=coding, inputs=inputs)
    if not shard.is_main:  # rank 0 merged the records and concludes
        return Launched(result=result)
    return Launched(result=result, concluded=conclude(request.finish, model, tokenizer, sae, request.out,
                                                      layer=sweep.layer, model_source=request.model,
                                                      sae_source=request.sae))
