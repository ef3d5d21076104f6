"""``interp-sot controls``: random conversational vs non-conversational features, each on N random problems.

Paper setting: 300 + 300 features sampled from the screening table (``--screen-table``), strength 2 x each
feature's max observed activation in SAE units (``--units sae``), 16 problems each. Or give the list directly
(``--controls`` file with columns feature, strength, group). Rerun the same command to resume
(:mod:`interp_sot.stages.controls`, then :mod:`interp_sot.stages.report`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp_sot.cli.common import (
    add_coding_args,
    add_generation_args,
    add_model_args,
    add_plan_args,
    bad_input,
    check_features,
    check_prompt_context,
    check_sae_flags,
    check_stats_flag,
    coding_config,
    load_decoder,
    load_feature_stats,
    load_problems,
    load_run_model,
    measure_and_report,
    plan_generation_run,
    sweep_config,
    units_of,
)
from interp_sot.errors import FlagError, InterpSotError, shorten
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.controls_config import ControlsConfig

CONTROL_FLAGS = {"seed": "control_seed"}
"""``ControlsConfig.seed`` is ``--control-seed`` (``--seed`` seeds the sampling)."""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("controls", help="control runs: random conversational vs non-conversational features")
    add_model_args(p)
    src = p.add_argument_group("control features")
    src.add_argument("--controls", default=None, help="file (.csv/.parquet/.json/.jsonl) with feature,strength,group")
    src.add_argument("--screen-table", default=None, help="screening table to sample controls from")
    add_flags(src, ControlsConfig, exclude=("matched_norms",), rename=CONTROL_FLAGS,
              aliases={"mode": ("--strength-mode",)})
    src.add_argument("--match-run", default=None,
                     help="with --mode matched: the picked feature's finished steer run (its strength_units.json)")
    add_coding_args(p)
    add_generation_args(p)
    add_plan_args(p)
    p.set_defaults(run=run)


def controls_config(args: argparse.Namespace) -> ControlsConfig:
    norms: tuple[float, ...] = ()
    if args.mode == "matched":
        norms = _matched_norms(args)
    elif args.match_run:
        raise FlagError("--match-run is only used with --mode matched")
    return from_flags(ControlsConfig, args, rename=CONTROL_FLAGS, matched_norms=norms)


def _matched_norms(args: argparse.Namespace) -> tuple[float, ...]:
    """The picked feature's signed added norms at its non-zero strengths, from its steer run."""
    from interp_sot.stages.controls import matched_norms
    from interp_sot.stages.rundir import require_complete
    from interp_sot.stages.strengths import read_units

    if not args.match_run:
        raise FlagError("--mode matched needs --match-run STEER_DIR (the picked feature's steer run)")
    if args.units not in (None, "unit"):
        raise FlagError("--mode matched steers unit-norm directions (strength = added norm): "
                        "leave --units out or use --units unit")
    args.units = "unit"
    if not Path(args.match_run).expanduser().is_dir():
        raise FileNotFoundError(f"--match-run {shorten(args.match_run)}: no such run directory")
    require_complete(Path(args.match_run), "--match-run")
    with bad_input(f"--match-run {shorten(args.match_run)}"):
        record = read_units(args.match_run)
        if record is None:
            raise FlagError(f"--match-run {args.match_run}: no strength_units.json (steer SAE --features to record it)")
        return matched_norms(record)


def run(args: argparse.Namespace) -> int:
    """Flags, input files, the output folder and the run's identity are checked before the SAE or the model loads
    (the directions, known only with the model, are compared when ``stage.json`` is written)."""
    from interp_sot.experiments import load_control_features
    from interp_sot.experiments.controls import control_rows
    from interp_sot.experiments.sharding import join_torchrun
    from interp_sot.screening.screen import load_table
    from interp_sot.stages.controls import STAGE, controls_identity, sample_control_features, steer_controls
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.rundir import check_identity, require_complete

    if bool(args.controls) == bool(args.screen_table):
        raise FlagError("give either --controls FILE or --screen-table FILE")
    config = controls_config(args)
    units = units_of(args, "sae")
    if args.screen_table and config.mode == "max_act" and units != "sae":
        raise FlagError("sampled controls run at --strength-factor x max activation in SAE units: use --units sae "
                        "(or --strength-mode matched, or a --controls file with strengths in your units)")
    check_sae_flags(args)
    check_stats_flag(args, units)
    sweep = sweep_config(args)
    coding = coding_config(args)
    if args.controls:
        with bad_input(f"--controls {shorten(args.controls)}"):
            controls = load_control_features(args.controls)
    else:
        require_complete(Path(args.screen_table).parent, "--screen-table")
        with bad_input(f"--screen-table {shorten(args.screen_table)}"):
            controls = sample_control_features(load_table(args.screen_table), config)
    bad = [c.feature for c in controls if not isinstance(c.feature, int)]
    if bad:
        raise InterpSotError(f"control features must be SAE feature ids (integers); got {shorten(bad[:5])}")
    problems = load_problems(args)
    with bad_input("--controls/--problems-per-feature"):
        rows = control_rows(controls, problems, problems_per_feature=config.problems_per_feature, seed=config.seed)
    check_prompt_context(args, problems)  # config.json and the tokenizer only
    if plan_generation_run(args, len(rows), problems):
        return 0
    inputs = {"model": model_identity(args.model)}
    shard = join_torchrun()  # under torchrun: one rank per process, each running whole batches of the sweep
    if shard.is_main:  # refuse a busy folder or another run's folder now, not after the weights load
        check_identity(args.out, STAGE, controls_identity(controls, problems, {}, sweep, config, coding), inputs,
                       pending=("config.directions",))
    sae = load_decoder(args)
    stats = load_feature_stats(args, units)
    check_features(sae, sorted({int(c.feature) for c in controls}), units, stats)
    model, tokenizer = load_run_model(args)
    result = steer_controls(model, tokenizer, sae, controls, problems, sweep, config, args.out, units=units,
                            stats=stats, coding=coding, inputs=inputs)
    if not shard.is_main:  # rank 0 merged the records and writes the report
        return 0
    measure_and_report(args, model, tokenizer, sae, result)
    return 0
