"""``interp-sot steer``: a Countdown steering sweep (features x strengths x problems), then its report.

Example (the paper's setting on a GPU): ``--model deepseek-ai/DeepSeek-R1-Distill-Llama-8B --sae-release
llama_scope_r1_distill --sae-id l15r_800m_slimpajama --features 30939 --layer 15 --strengths=-10,-5,0,5,10
--problems Jiayi-Pan/Countdown-Tasks-3to4 --tinyzero-split test --scorer tinyzero --out runs/steer30939`` (the
README's GPU runbook has the full command). The run directory holds ``sweep.jsonl`` (every trace with its settings;
rerun the same command to resume), ``problems.jsonl`` and ``report/`` (:func:`interp_sot.stages.run_steer.run_steer`).
``--plan`` prints the run's size and memory plan and exits; a batch that cannot fit the device is refused before
anything is loaded (:mod:`interp_sot.plan`). ``torchrun --nproc-per-node N -m interp_sot.cli steer --device cuda
...`` runs whole batches on each of N GPUs and merges them into the same ``sweep.jsonl``
(:mod:`interp_sot.experiments.sharding`); ``controls`` likewise.
"""

from __future__ import annotations

import argparse

from interp_sot.cli.common import (
    add_coding_args,
    add_generation_args,
    add_model_args,
    add_plan_args,
    run_options,
    show,
    sources,
    sweep_config,
)
from interp_sot.errors import FlagError
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.run_steer import SteerChoice, SteerRequest, read_spec_choice


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("steer", help="Countdown steering sweep over features x strengths x problems")
    add_model_args(p)
    add_flags(p.add_argument_group("directions and strengths"), SteerChoice)
    add_coding_args(p)
    add_generation_args(p)
    add_plan_args(p)
    p.set_defaults(run=run)
    for action in p._actions:  # --spec gives the layer, so this command checks --layer itself (in run)
        if action.dest == "layer":
            action.required, action.default = False, None


def run(args: argparse.Namespace) -> int:
    choice = from_flags(SteerChoice, args)
    spec = read_spec_choice(choice.spec, args.layer) if choice.spec else None
    if spec is not None:
        vars(args).update(spec.flags())
    if args.layer is None:
        raise FlagError("--layer is required (or --spec, which gives it)")
    from interp_sot.stages.run_steer import run_steer

    return show(run_steer(SteerRequest(args.out, sweep_config(args), choice, spec=spec, **sources(args),
                                       **run_options(args))))
