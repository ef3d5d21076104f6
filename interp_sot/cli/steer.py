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
    add_generation_args,
    add_model_args,
    add_plan_args,
    coding_config,
    load_decoder,
    load_problems,
    load_run_model,
    measure_and_report,
    parse_floats,
    parse_strengths,
    plan_generation_run,
    scaled_directions,
    sweep_config,
)

__all__ = ["add_parser", "parse_floats", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("steer", help="Countdown steering sweep over features x strengths x problems")
    add_model_args(p)
    p.add_argument("--features", default=None, help="comma-separated SAE feature ids (paper: 30939)")
    p.add_argument("--direction", default=None, help="a custom direction file [d_model] instead of SAE features")
    p.add_argument("--strengths", default="-10,-5,0,5,10",
                   help="comma-separated strengths (use --strengths=-10,...), or auto:N with --dose")
    p.add_argument("--dose", default=None,
                   help="a finished `interp-sot dose` run: --strengths auto:N spreads N strengths over its range")
    p.add_argument("--judge", default=None, help="judge spec for behaviour coding (e.g. openai:MODEL@URL)")
    p.add_argument("--schemes", default="conversational,bales,cognitive", help="behaviour coding schemes")
    add_generation_args(p)
    add_plan_args(p)
    p.set_defaults(run=run)


def _features(args: argparse.Namespace) -> list[int]:
    if bool(args.features) == bool(args.direction):
        raise SystemExit("give SAE --features or one --direction file (not both)")
    try:
        return [int(x) for x in (args.features or "").split(",") if x.strip()]
    except ValueError as err:
        raise SystemExit(f"--features: {err}") from err


def _direction_file(args: argparse.Namespace) -> dict[Any, Any]:
    from interp_sot.steering import load_direction

    d = load_direction(args.direction)
    if d.ndim != 1:
        raise SystemExit(f"--direction {args.direction}: expected [d_model], got shape {tuple(d.shape)}")
    return {Path(args.direction).stem: d}


def run(args: argparse.Namespace) -> int:
    from interp_sot.experiments.sharding import join_torchrun
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.rundir import begin_stage
    from interp_sot.stages.steer import STAGE, steer_identity, steer_stage
    from interp_sot.stages.strengths import units_record

    features = _features(args)
    strengths = parse_strengths(args)
    config = sweep_config(args)
    coding = coding_config(args)
    problems = load_problems(args)
    if plan_generation_run(args, len(problems) * max(len(features), 1) * len(strengths), problems):
        return 0
    inputs = {"model": model_identity(args.model)}
    shard = join_torchrun()  # under torchrun: one rank per process, each running whole batches of the sweep
    units_rec = None
    sae: Any = None
    if features:  # SAE features: directions in --units, judged against this model's residual norm
        sae = load_decoder(args)
        model, tokenizer = load_run_model(args)
        directions, scales = scaled_directions(args, sae, model, tokenizer, problems, features, args.units or "unit")
        units_rec = units_record(scales, strengths)
        if shard.is_main:
            begin_stage(args.out, STAGE, steer_identity(config, directions, problems, strengths, coding), inputs)
    else:
        directions = _direction_file(args)
        if shard.is_main:
            begin_stage(args.out, STAGE, steer_identity(config, directions, problems, strengths, coding), inputs)
        model, tokenizer = load_run_model(args)
    result = steer_stage(model, tokenizer, problems, directions, strengths, config, args.out, coding=coding,
                         inputs=inputs, strength_units=units_rec)
    if not shard.is_main:  # rank 0 merged the records and writes the report
        return 0
    measure_and_report(args, model, tokenizer, sae, result)
    return 0
