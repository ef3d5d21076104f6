"""``interp-sot steer``: a Countdown steering sweep (features x strengths x problems), then its report.

Example (the paper's setting on a GPU): ``--model deepseek-ai/DeepSeek-R1-Distill-Llama-8B --sae-release
llama_scope_r1_distill --sae-id l15r_800m_slimpajama --features 30939 --layer 15 --strengths=-10,-5,0,5,10
--problems Jiayi-Pan/Countdown-Tasks-3to4 --tinyzero-split test --scorer tinyzero --out runs/steer30939`` (the
README's GPU runbook has the full command). The run directory holds ``sweep.jsonl`` (every trace with its settings;
rerun the same command to resume), ``problems.jsonl`` and ``report/`` (:mod:`interp_sot.stages.steer`, then
:mod:`interp_sot.stages.report`). ``--plan`` prints the run's size and memory plan and exits; a batch that cannot fit
the device is refused before anything is loaded (:mod:`interp_sot.plan`). ``torchrun --nproc-per-node N -m
interp_sot.cli steer --device cuda ...`` runs whole batches on each of N GPUs and merges them into the same
``sweep.jsonl`` (:mod:`interp_sot.experiments.sharding`); ``controls`` likewise.
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
    check_dose,
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
    parse_floats,
    parse_strengths,
    plan_generation_run,
    read_dose_flag,
    sweep_config,
    units_of,
)
from interp_sot.errors import FlagError, shorten

__all__ = ["add_parser", "parse_floats", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("steer", help="Countdown steering sweep over features x strengths x problems")
    add_model_args(p)
    p.add_argument("--features", default=None, help="comma-separated SAE feature ids (paper: 30939)")
    p.add_argument("--direction", default=None, help="a custom direction file [d_model] instead of SAE features")
    p.add_argument("--spec", default=None, metavar="FILE",
                   help="a portable steering spec (steering.json, written by every steer and dose run; "
                   "docs/steering_spec.md): its direction, layer, site and scope, and its strengths unless "
                   "--strengths is given; replaces --features/--direction/--layer")
    p.add_argument("--strengths", default=None,
                   help=f"comma-separated strengths (use --strengths=-10,...), or auto:N with --dose (default: the "
                   f"spec's, else {DEFAULT_STRENGTHS})")
    p.add_argument("--dose", default=None,
                   help="a finished `interp-sot dose` run: --strengths auto:N spreads N strengths over its range")
    add_coding_args(p)
    add_generation_args(p)
    add_plan_args(p)
    p.set_defaults(run=run)
    for action in p._actions:  # --spec gives the layer, so this command checks --layer itself (in run)
        if action.dest == "layer":
            action.required = False
            action.default = None


DEFAULT_STRENGTHS = "-10,-5,0,5,10"
"""The paper's strengths, used without ``--strengths`` or a spec."""


def _apply_spec(args: argparse.Namespace) -> tuple[Any, dict[Any, Any]]:
    """``--spec FILE``: the spec and its direction (per unit of s in its units) under its label, with ``args`` set to
    its layer, site, scope and (unless given) strengths. A flag that contradicts the spec is refused."""
    from interp_sot.steering.spec import read_spec, spec_direction

    if args.features or args.direction:
        raise FlagError("--spec gives the direction: leave out --features and --direction")
    with bad_input(f"--spec {shorten(args.spec)}"):
        spec = read_spec(args.spec)
        direction = spec_direction(spec)
    if args.layer is not None and args.layer != spec.layer:
        raise FlagError(f"--layer {args.layer} contradicts the spec's layer {spec.layer} (leave --layer out)")
    args.layer, args.site, args.scope, args.layers_path = spec.layer, spec.site, spec.scope, spec.layers_path
    if args.strengths is None:
        if not spec.strengths:
            raise FlagError(f"--spec {shorten(args.spec)} records no strengths: give --strengths")
        args.strengths = ",".join(repr(float(x)) for x in spec.strengths)
    label = spec.direction.feature if spec.direction.feature is not None else Path(spec.direction.vector or "spec").stem
    return spec, {label: direction}


def _features(args: argparse.Namespace) -> list[int]:
    if args.spec:
        return []
    if bool(args.features) == bool(args.direction):
        raise FlagError("give SAE --features or one --direction file (not both)")
    try:
        return [int(x) for x in (args.features or "").split(",") if x.strip()]
    except ValueError as err:
        raise FlagError(f"--features: {shorten(err)}") from err


def _direction_file(args: argparse.Namespace) -> dict[Any, Any]:
    from interp_sot.steering import load_direction

    with bad_input(f"--direction {shorten(args.direction)}"):
        d = load_direction(args.direction)
    if d.ndim != 1:
        raise FlagError(f"--direction {args.direction}: expected [d_model], got shape {tuple(d.shape)}")
    return {Path(args.direction).stem: d}


def run(args: argparse.Namespace) -> int:
    """Flags, input paths, the output folder and the run's identity are all checked before the SAE or the model
    loads; ``stage.json`` is written once every check passed (the SAE directions, known only with the model's
    residual norm, are compared then)."""
    spec, spec_directions = _apply_spec(args) if args.spec else (None, None)
    if args.layer is None:
        raise FlagError("--layer is required (or --spec, which gives it)")
    if args.strengths is None:
        args.strengths = DEFAULT_STRENGTHS
    features = _features(args)
    dose = read_dose_flag(args)
    strengths = parse_strengths(args, dose=dose)
    config = sweep_config(args)
    coding = coding_config(args)
    units = units_of(args, "unit")
    if features:
        check_sae_flags(args)
        check_stats_flag(args, units)
    problems = load_problems(args)
    check_dose(args, dose, problems, strengths)  # tuned on other problems, and inside the coherent range it measured
    directions = {} if features else spec_directions if spec_directions is not None else _direction_file(args)
    from interp_sot.experiments.sharding import join_torchrun  # torch loads from here on, after the flag checks
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.rundir import check_identity
    from interp_sot.stages.steer import STAGE, steer_features, steer_identity, steer_stage

    inputs = {"model": model_identity(args.model)}
    check_prompt_context(args, problems)  # config.json and the tokenizer only
    if plan_generation_run(args, len(problems) * max(len(features), 1) * len(strengths), problems):
        return 0
    shard = join_torchrun()  # under torchrun: one rank per process, each running whole batches of the sweep
    if shard.is_main:  # refuse a busy folder or another run's folder now, not after the weights load
        check_identity(args.out, STAGE, steer_identity(config, directions, problems, strengths, coding), inputs,
                       pending=("config.directions",) if features else ())
    sae: Any = None
    if features:  # SAE features: directions in --units, judged against this model's residual norm
        sae, stats = load_decoder(args), load_feature_stats(args, units)
        check_features(sae, features, units, stats)
        model, tokenizer = load_run_model(args)
        result = steer_features(model, tokenizer, sae, problems, features, strengths, config, args.out, units=units,
                                stats=stats, dose=dose, coding=coding, inputs=inputs)
    else:
        model, tokenizer = load_run_model(args)
        if spec is not None:
            from interp_sot.steering.spec import check_width

            check_width(spec, model)
        result = steer_stage(model, tokenizer, problems, directions, strengths, config, args.out, coding=coding,
                             inputs=inputs)
    if not shard.is_main:  # rank 0 merged the records and writes the report
        return 0
    measure_and_report(args, model, tokenizer, sae, result)
    return 0
