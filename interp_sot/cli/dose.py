"""``interp-sot dose``: the coherent strength range of one SAE feature, before a sweep.

A short pre-sweep (a few prompts, both signs, tens of tokens) scores every trace with the unsteered model and
returns, per sign, the largest strength whose mean log-prob drop against s = 0 stays within ``--tolerance``
(:mod:`interp_sot.stages.dose`). Example: ``interp-sot dose --layer 15 --sae-path SAE --feature 1107 --units
resid --out runs/dose1107``, then ``interp-sot steer ... --strengths auto:5 --dose runs/dose1107``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

from interp_sot.cli.common import (
    add_model_args,
    bad_input,
    check_sae_flags,
    check_stats_flag,
    load_decoder,
    load_feature_stats,
    load_problems,
    load_run_model,
    model_config_and_tokenizer,
    parse_floats,
)
from interp_sot.tasks.countdown.presets import PRESETS
from interp_sot.tasks.countdown.prompts import PROMPT_STYLES

if TYPE_CHECKING:
    from interp_sot.steering.strength_units import StrengthUnits

DEFAULT_RATIOS = "-0.3,-0.2,-0.15,-0.1,0,0.1,0.15,0.2,0.3"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("dose", help="coherent strength range of a feature (short pre-sweep, writes dose.json)")
    add_model_args(p)
    p.add_argument("--feature", type=int, required=True, help="SAE feature id")
    g = p.add_argument_group("candidates and tolerance")
    g.add_argument("--ratios", default=DEFAULT_RATIOS,
                   help="candidate strengths as signed added norm / median residual norm (must hold 0)")
    g.add_argument("--strengths", default=None, help="candidates in --units instead of --ratios (must hold 0)")
    g.add_argument("--tolerance", type=float, default=0.25,
                   help="largest mean log-prob drop against s = 0 (nats/token) that still counts as coherent")
    g.add_argument("--max-degenerate-share", type=float, default=None,
                   help="also require at most this share of degenerate traces per strength")
    g = p.add_argument_group("prompts and sampling")
    g.add_argument("--problems", default="generate", help="'generate', a problem file, or an HF dataset id")
    g.add_argument("--split", default="train")
    g.add_argument("--n-problems", type=int, default=8, help="prompts of the pre-sweep")
    g.add_argument("--problem-seed", type=int, default=0)
    g.add_argument("--task", choices=sorted(PRESETS), default="paper",
                   help="task preset whose prompts the pre-sweep uses (give the sweep's); draw the dose problems "
                   "from a split disjoint from the sweep's (e.g. another --problem-seed): a sweep with --dose refuses "
                   "evaluation problems the dose was tuned on")
    g.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None, help="default: the task's")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float, default=0.6)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--greedy", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--batch-size", type=int, default=64, help="rows (prompt x strength) per generate call")
    p.add_argument("--out", required=True, help="run directory (dose.json, dose_traces.jsonl, dose.png)")
    p.set_defaults(run=run, tinyzero_split=None)


def dose_prompt_spec(args: argparse.Namespace) -> Any:
    """The task preset's prompt (``--prompt-style`` overriding its style)."""
    from dataclasses import replace

    from interp_sot.experiments.sweep import SweepConfig

    with bad_input("--prompt-style"):
        spec = SweepConfig.for_task(args.task, layer=args.layer).prompt_spec
        return replace(spec, style=args.prompt_style) if args.prompt_style else spec


def dose_config(args: argparse.Namespace) -> Any:

    strengths = tuple(parse_floats(args.strengths, "--strengths")) if args.strengths else None
    ratios = tuple(parse_floats(args.ratios, "--ratios"))
    with bad_input(""):
        return _dose_config(args, strengths, ratios)


def _dose_config(args: argparse.Namespace, strengths: tuple[float, ...] | None, ratios: tuple[float, ...]) -> Any:
    from interp_sot.experiments.dose import DoseConfig
    from interp_sot.tasks.countdown.prompts import adds_special_tokens

    return DoseConfig(layer=args.layer, ratios=ratios, strengths=strengths, tolerance=args.tolerance,
                      max_new_tokens=args.max_new_tokens, do_sample=not args.greedy, temperature=args.temperature,
                      top_p=args.top_p, seed=args.seed, batch_size=args.batch_size, site=args.site, scope=args.scope,
                      add_special_tokens=adds_special_tokens(dose_prompt_spec(args)),
                      max_degenerate_share=args.max_degenerate_share)


def run(args: argparse.Namespace) -> int:
    """Flags, input paths, the prompts' fit in the context, the output folder and the run's identity are checked
    from the model's config and tokenizer alone, before the SAE or the weights load."""
    from interp_sot.stages.bounds import check_texts_fit, context_length
    from interp_sot.stages.dose import STAGE, dose_identity, dose_stage
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.rundir import check_identity
    from interp_sot.stages.strengths import feature_scales, run_prompts

    config = dose_config(args)  # bad tolerance / candidates fail before anything loads
    units = cast("StrengthUnits", args.units or "resid")
    check_sae_flags(args)
    check_stats_flag(args, units)
    problems = load_problems(args)
    model_config, tokenizer = model_config_and_tokenizer(args)
    with bad_input("--prompt-style"):
        prompts = run_prompts(problems, dose_prompt_spec(args), tokenizer, n=None)
    check_texts_fit(prompts, tokenizer, context_length(model_config), config.max_new_tokens, config.add_special_tokens)
    inputs = {"model": model_identity(args.model)}
    check_identity(args.out, STAGE, dose_identity(config, args.feature, units, prompts, problems), inputs)
    stats = load_feature_stats(args) if units == "max_act" else None
    sae = load_decoder(args)
    with bad_input("--feature"):  # a bad feature fails before the model loads
        feature_scales(sae, [args.feature], units, residual=1.0, stats=stats)
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
