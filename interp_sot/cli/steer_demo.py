"""``interp-sot steer-demo``: steering in one minute, offline, without an SAE (:mod:`interp_sot.demo.steer_demo`;
every flag is a field of its ``SteerDemoConfig``)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from interp_sot.demo.steer_demo import CONVERSATIONAL_TEXTS, EXPOSITORY_TEXTS, SteerDemoConfig

__all__ = ["CONVERSATIONAL_TEXTS", "EXPOSITORY_TEXTS", "add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    from interp_sot.flags import add_flags

    p = subparsers.add_parser("steer-demo",
                              help="steer SmolLM2 along a direction at several strengths (offline, no SAE)")
    add_flags(p, SteerDemoConfig)
    p.add_argument("--out", default="runs/steer-demo", help="run directory for the table and direction")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.demo.steer_demo import run_steer_demo
    from interp_sot.flags import from_flags

    cfg = from_flags(SteerDemoConfig, args)
    result = run_steer_demo(cfg, args.out)
    print(f"\nSteering {cfg.model} at layer {cfg.layer} ({result.source}); {len(cfg.strengths)} strengths in one "
          f"batch, {result.seconds:.1f} s\nPrompt: {cfg.prompt}\n")
    for s, c in zip(cfg.strengths, result.table["completion"], strict=True):
        body = textwrap.fill(" ".join(c.split()), width=100, subsequent_indent=" " * 10)
        print(f"s={s:+6.1f} | {body}\n")
    print("Saved " + " and ".join(str(f) for f in result.files))
    return 0
