"""``interp-sot train-sae``: harvest layer-L activations of a built corpus, train a TopK SAE, report and export it
(:mod:`interp_sot.training.pipeline`; the flags are ``TrainSaeConfig``'s fields). Rerun the same command after an
interruption. Exits 1 when held-out explained variance is below ``--min-ev``, after writing the report.
"""

from __future__ import annotations

import argparse
import logging

from interp_sot.flags import add_flags, from_flags
from interp_sot.training.pipeline import TrainSaeConfig

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("train-sae", help="train a TopK SAE on a built corpus (see `interp-sot corpus`)")
    p.add_argument("--corpus", required=True, help="folder written by `interp-sot corpus` (train.jsonl, eval.jsonl)")
    p.add_argument("--work", required=True, help="folder for activation shards and checkpoints")
    p.add_argument("--out", required=True, help="folder for the exported SAE and its training report")
    add_flags(p, TrainSaeConfig)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.training.pipeline import train_sae

    cfg = from_flags(TrainSaeConfig, args)
    report = train_sae(cfg, args.corpus, args.work, args.out)
    if report["held_out"]["explained_variance"] < cfg.min_ev:
        logger.error("explained variance %.4f is below --min-ev %.2f", report["held_out"]["explained_variance"],
                     cfg.min_ev)
        return 1
    return 0
