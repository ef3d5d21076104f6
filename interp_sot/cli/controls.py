"""``interp-sot controls``: random conversational vs non-conversational features, each on N random problems.

Paper setting: 300 + 300 features sampled from the screening table (``--screen-table``), strength 2 x each
feature's max observed activation in SAE units (``--units sae``), 16 problems each. Or give the list directly
(``--controls`` file with columns feature, strength, group). Rerun the same command to resume
(:func:`interp_sot.stages.run_controls.run_controls`).
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
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.controls_config import ControlsConfig
from interp_sot.stages.run_controls import ControlsChoice, ControlsRequest, matched_norms_of

CONTROL_FLAGS = {"seed": "control_seed"}
"""``ControlsConfig.seed`` is ``--control-seed`` (``--seed`` seeds the sampling)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("controls", help="control runs: random conversational vs non-conversational features")
    add_model_args(p)
    src = p.add_argument_group("control features")
    add_flags(src, ControlsChoice)
    add_flags(src, ControlsConfig, exclude=("matched_norms",), rename=CONTROL_FLAGS,
              aliases={"mode": ("--strength-mode",)})
    add_coding_args(p)
    add_generation_args(p)
    add_plan_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    choice = from_flags(ControlsChoice, args)
    config = from_flags(ControlsConfig, args, rename=CONTROL_FLAGS,
                        matched_norms=matched_norms_of(choice, args.mode, args.units))
    from interp_sot.stages.run_controls import run_controls

    return show(run_controls(ControlsRequest(args.out, sweep_config(args), choice, config, **sources(args),
                                             **run_options(args))))
