"""``interp-sot controls``: random conversational vs non-conversational features, each on N random problems.

Paper setting: 300 + 300 features sampled from the screening table (``--screen-table``), strength 2 x each
feature's max observed activation in SAE units (``--norm sae``), 16 problems each. Or give the list directly
(``--controls`` file with columns feature, strength, group). Rerun the same command to resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp_sot.cli.steer import (
    add_generation_args,
    add_model_args,
    feature_directions,
    finish_run,
    load_problems,
    load_run_model,
    make_behaviour_judge,
    save_problems,
    sweep_config,
)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("controls", help="control runs: random conversational vs non-conversational features")
    add_model_args(p)
    src = p.add_argument_group("control features")
    src.add_argument("--controls", default=None, help="file (.csv/.parquet/.json/.jsonl) with feature,strength,group")
    src.add_argument("--screen-table", default=None, help="screening table to sample controls from")
    src.add_argument("--n-controls", type=int, default=300, help="features per group when sampling")
    src.add_argument("--control-seed", type=int, default=0)
    src.add_argument("--strength-factor", type=float, default=2.0, help="strength = factor x max activation")
    src.add_argument("--exclude", default="", help="comma-separated feature ids never sampled (e.g. 30939)")
    src.add_argument("--problems-per-feature", type=int, default=16)
    p.add_argument("--judge", default=None, help="judge spec for behaviour coding")
    p.add_argument("--schemes", default="conversational,bales,cognitive")
    add_generation_args(p)
    p.set_defaults(run=run)


def sample_from_table(args: argparse.Namespace) -> list[Any]:
    from interp_sot.experiments import control_features
    from interp_sot.screening.controls import control_strength, sample_controls
    from interp_sot.screening.screen import load_table

    table = load_table(args.screen_table)
    try:
        exclude = [int(x) for x in args.exclude.split(",") if x.strip()]
    except ValueError as err:
        raise SystemExit(f"--exclude: {err}") from err
    out = []
    for kind in ("conversational", "non_conversational"):
        ids = sample_controls(table, args.n_controls, kind, seed=args.control_seed, exclude=exclude)  # type: ignore[arg-type]
        strengths = control_strength(table, ids, factor=args.strength_factor)
        out += control_features([int(i) for i in ids], [float(s) for s in strengths], kind)
    return out


def run(args: argparse.Namespace) -> int:
    from interp_sot.experiments import load_control_features, run_controls
    from interp_sot.io import atomic_write_json

    if bool(args.controls) == bool(args.screen_table):
        raise SystemExit("give either --controls FILE or --screen-table FILE")
    controls = load_control_features(args.controls) if args.controls else sample_from_table(args)
    bad = [c.feature for c in controls if not isinstance(c.feature, int)]
    if bad:
        raise SystemExit(f"control features must be SAE feature ids (integers); got {bad[:5]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "controls.json", [c.__dict__ for c in controls])
    directions = feature_directions(args, [int(c.feature) for c in controls], args.norm or "sae")
    config = sweep_config(args)
    judge = make_behaviour_judge(args)
    problems = load_problems(args)
    save_problems(problems, out)
    model, tokenizer = load_run_model(args)
    records = run_controls(
        model,
        tokenizer,
        controls,
        problems,
        directions,
        config=config,
        problems_per_feature=args.problems_per_feature,
        seed=args.control_seed,
        out_path=out / "controls.jsonl",
    )
    finish_run(args, judge, records, out)
    return 0
