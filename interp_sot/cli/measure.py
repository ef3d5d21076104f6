"""``interp-sot measure``: per-trace coherence and SAE feature totals of a finished steer / controls run.

Writes ``coherence.jsonl`` and ``trace_features.jsonl`` into the run directory (keyed by record; rerun to
resume), read by ``interp-sot analyze`` (:mod:`interp_sot.stages.measure`). Example: ``interp-sot measure --run
runs/steer1107 --layer 15 --sae-path SAE``, then ``interp-sot analyze --sweep runs/steer1107 --screen
runs/screen``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp_sot.errors import FlagError
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.sources import ModelSource, SaeSource


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("measure", help="coherence + SAE feature totals of every trace of a finished run")
    p.add_argument("--run", dest="run_dir", required=True, help="a finished steer or controls run directory")
    add_flags(p, ModelSource)
    p.add_argument("--layer", type=int, required=True, help="the SAE's layer (the steered layer)")
    add_flags(p, SaeSource, only=("sae_release", "sae_id", "sae_path"))
    p.add_argument("--no-diversity", action="store_true", help="coherence only (no SAE re-encoding)")
    p.add_argument("--threshold", type=float, default=0.0, help="activation above which a feature counts as active")
    p.add_argument("--batch-size", type=int, default=8, help="traces per forward pass")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The run directory (finished, with records), the measures folder (free, same identity) and the SAE flags are
    checked before the SAE or the model loads."""
    if not Path(args.run_dir).expanduser().is_dir():  # before torch loads (stages.measure checks it fully)
        raise FileNotFoundError(f"{args.run_dir}: no such run directory (measure a finished steer or controls run)")
    from interp_sot.errors import bad_input
    from interp_sot.experiments.coherence import CoherenceConfig
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.measure import MeasureConfig, check_measure, measure_stage

    with bad_input(""):
        config = MeasureConfig(layer=args.layer, coherence=CoherenceConfig(batch_size=args.batch_size),
                               diversity=not args.no_diversity, threshold=args.threshold, batch_size=args.batch_size)
    source = from_flags(SaeSource, args)
    if config.diversity and not source.given:
        raise FlagError("name the SAE (--sae-path, or --sae-release with --sae-id), or pass --no-diversity")
    if config.diversity:
        source.check()
    inputs = {"model": model_identity(args.model), "sae": source.identity() if config.diversity else None}
    check_measure(args.run_dir, config, inputs)  # --run exists, is finished, and its measures are ours to resume
    sae = source.load_sae(args.layer) if config.diversity else None
    model, tokenizer = from_flags(ModelSource, args).load()
    result = measure_stage(model, tokenizer, sae, args.run_dir, config, inputs=inputs)
    print(f"measured {result.n_traces} traces: {', '.join(str(f) for f in result.files)}")
    return 0
