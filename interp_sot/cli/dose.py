"""``interp-sot dose``: the coherent strength range of one SAE feature, before a sweep.

A short pre-sweep (a few prompts, both signs, tens of tokens) scores every trace with the unsteered model and
returns, per sign, the largest strength whose mean log-prob drop against s = 0 stays within ``--tolerance``
(:mod:`interp_sot.stages.dose`). Example: ``interp-sot dose --layer 15 --sae-path SAE --feature 1107 --units
resid --out runs/dose1107``, then ``interp-sot steer ... --strengths auto:5 --dose runs/dose1107``. The
candidate, tolerance and sampling flags are the fields of ``experiments.dose_config.DoseConfig``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from interp_sot.cli.common import (
    add_model_args,
    add_problem_args,
    bad_input,
    check_features,
    check_sae_flags,
    check_stats_flag,
    load_decoder,
    load_feature_stats,
    load_problems,
    load_run_model,
    model_config_and_tokenizer,
    units_of,
)
from interp_sot.experiments.dose_config import DoseConfig
from interp_sot.flags import add_flags, from_flags
from interp_sot.tasks.countdown.prompts import PROMPT_STYLES

SET_ELSEWHERE = ("layer", "site", "scope", "add_special_tokens", "coherence")
"""``DoseConfig`` fields with no flag of their own here: the model group's flags, and what the prompts decide."""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("dose", help="coherent strength range of a feature (short pre-sweep, writes dose.json)")
    add_model_args(p)
    p.add_argument("--feature", type=int, required=True, help="SAE feature id")
    g = p.add_argument_group("candidates, tolerance and sampling")
    add_flags(g, DoseConfig, exclude=SET_ELSEWHERE)
    g.add_argument("--greedy", dest="do_sample", action="store_false", help="greedy decoding (= --no-do-sample)")
    g = p.add_argument_group("prompts")
    add_problem_args(g, n_problems=8)
    g.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None, help="default: the task's")
    p.add_argument("--out", required=True, help="run directory (dose.json, dose_traces.jsonl, dose.png)")
    p.set_defaults(run=run)


def dose_prompt_spec(args: argparse.Namespace) -> Any:
    """The task preset's prompt (``--prompt-style`` overriding its style)."""
    from interp_sot.experiments.settings import SweepConfig

    with bad_input("--prompt-style"):
        spec = SweepConfig.for_task(args.task, layer=args.layer).prompt_spec
        return replace(spec, style=args.prompt_style) if args.prompt_style else spec


def dose_config(args: argparse.Namespace) -> DoseConfig:
    from interp_sot.tasks.countdown.prompts import adds_special_tokens

    return from_flags(DoseConfig, args, layer=args.layer, site=args.site, scope=args.scope,
                      add_special_tokens=adds_special_tokens(dose_prompt_spec(args)))


def run(args: argparse.Namespace) -> int:
    """Flags, input paths, the prompts' fit in the context, the output folder and the run's identity are checked
    from the model's config and tokenizer alone, before the SAE or the weights load."""
    from interp_sot.stages.bounds import check_texts_fit, context_length
    from interp_sot.stages.dose import STAGE, dose_identity, dose_stage
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.rundir import check_identity
    from interp_sot.stages.strengths import run_prompts

    config = dose_config(args)  # bad tolerance / candidates fail before anything loads
    units = units_of(args, "resid")
    check_sae_flags(args)
    check_stats_flag(args, units)
    problems = load_problems(args)
    model_config, tokenizer = model_config_and_tokenizer(args)
    with bad_input("--prompt-style"):
        prompts = run_prompts(problems, dose_prompt_spec(args), tokenizer, n=None)
    check_texts_fit(prompts, tokenizer, context_length(model_config), config.max_new_tokens, config.add_special_tokens)
    inputs = {"model": model_identity(args.model)}
    check_identity(args.out, STAGE, dose_identity(config, args.feature, units, prompts, problems), inputs)
    sae, stats = load_decoder(args), load_feature_stats(args, units)
    check_features(sae, [args.feature], units, stats)  # a bad feature fails before the model loads
    model, tokenizer = load_run_model(args)
    result = dose_stage(model, tokenizer, sae, args.feature, prompts, config, args.out, units=units, stats=stats,
                        inputs=inputs, problems=problems)
    print(f"feature {result.feature}: coherent strengths [{result.negative:.4g}, {result.positive:.4g}] {units} "
          f"= [-{result.negative_ratio:.3f}, +{result.positive_ratio:.3f}] of the median residual norm "
          f"{result.residual_norm:.1f} (tolerance {result.tolerance:g} nats/token, {result.n_prompts} prompts)")
    print(f"{'ratio':>8} {'strength':>10} {'logprob':>8} {'drop':>7} {'degen':>6}  coherent")
    for row in result.table:
        print(f"{row['ratio']:>8.3f} {row['strength']:>10.4g} {row['mean_logprob']:>8.3f} {row['drop']:>7.3f} "
              f"{row['degenerate_share']:>6.2f}  {'yes' if row['coherent'] else 'no'}")
    print(f"dose: {args.out}")
    return 0
