"""``interp-sot dose``: the coherent strength range of one SAE feature, before a sweep.

A short pre-sweep (a few prompts, both signs, tens of tokens) scores every trace with the unsteered model and
returns, per sign, the largest strength whose mean log-prob drop against s = 0 stays within ``--tolerance``
(:func:`interp_sot.stages.run_dose.run_dose`). Example: ``interp-sot dose --layer 15 --sae-path SAE --feature 1107
--units resid --out runs/dose1107``, then ``interp-sot steer ... --strengths auto:5 --dose runs/dose1107``. The
candidate, tolerance and sampling flags are the fields of ``experiments.dose_config.DoseConfig``.
"""

from __future__ import annotations

import argparse

from interp_sot.cli.common import add_model_args, add_problem_args, sources
from interp_sot.experiments.dose_config import DoseConfig
from interp_sot.experiments.settings import SweepConfig
from interp_sot.flags import add_flags, from_flags

SET_ELSEWHERE = ("layer", "site", "scope", "add_special_tokens", "coherence")
"""``DoseConfig`` fields with no flag of their own here: the model group's flags, and what the prompts decide."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("dose", help="coherent strength range of a feature (short pre-sweep, writes dose.json)")
    add_model_args(p)
    p.add_argument("--feature", type=int, required=True, help="SAE feature id")
    g = p.add_argument_group("candidates, tolerance and sampling")
    add_flags(g, DoseConfig, exclude=SET_ELSEWHERE)
    g.add_argument("--greedy", dest="do_sample", action="store_false", help="greedy decoding (= --no-do-sample)")
    g = p.add_argument_group("prompts")
    add_problem_args(g, n_problems=8)
    add_flags(g, SweepConfig, only=("prompt_style",), defaults={"prompt_style": None},
              help={"prompt_style": "None: the task's."})
    p.add_argument("--out", required=True, help="run directory (dose.json, dose_traces.jsonl, dose.png)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.stages.run_dose import DoseRequest, dose_prompt, run_dose
    from interp_sot.tasks.countdown.prompts import adds_special_tokens

    prompt = dose_prompt(args.task, args.prompt_style)
    config = from_flags(DoseConfig, args, layer=args.layer, site=args.site, scope=args.scope,
                        add_special_tokens=adds_special_tokens(prompt))  # bad flags fail before anything loads
    result = run_dose(DoseRequest(args.out, args.feature, config, prompt, **sources(args)))
    print(f"feature {result.feature}: coherent strengths [{result.negative:.4g}, {result.positive:.4g}] "
          f"{result.units} = [-{result.negative_ratio:.3f}, +{result.positive_ratio:.3f}] of the median residual "
          f"norm {result.residual_norm:.1f} (tolerance {result.tolerance:g} nats/token, {result.n_prompts} prompts)")
    print(f"{'ratio':>8} {'strength':>10} {'logprob':>8} {'drop':>7} {'degen':>6}  coherent")
    for row in result.table:
        print(f"{row['ratio']:>8.3f} {row['strength']:>10.4g} {row['mean_logprob']:>8.3f} {row['drop']:>7.3f} "
              f"{row['degenerate_share']:>6.2f}  {'yes' if row['coherent'] else 'no'}")
    print(f"dose: {args.out}")
    return 0
