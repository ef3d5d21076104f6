"""``interp-sot browse``: a static HTML feature browser, and Neuronpedia v1 export / import.

    interp-sot browse --stats runs/stats [--screen runs/screen] [--sweep runs/steer] --out runs/site
    interp-sot browse --stats runs/stats --neuronpedia-out runs/np --model-id smollm2 --source-id 15-res-8k
    interp-sot browse --neuronpedia runs/np --out runs/site [--stats-out runs/np_stats]

Open ``SITE/index.html`` from disk (no server needed). ``--neuronpedia-out`` writes
``{features,activations,explanations}/batch-N.jsonl.gz``; ``--neuronpedia`` reads such an export (ours or
Neuronpedia's) to browse it, and with ``--stats-out`` saves it as FeatureStats.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.errors import FlagError

if TYPE_CHECKING:
    import pandas as pd


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("browse", help="static HTML feature browser; Neuronpedia export/import",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--stats", help="FeatureStats folder (interp-sot stats --out)")
    src.add_argument("--neuronpedia", help="a Neuronpedia v1 export folder (features/, activations/, explanations/)")
    p.add_argument("--screen", help="screen run folder (screen.parquet, judge scores) or a screening table file")
    p.add_argument("--sweep", action="append", default=[], help="steer/controls run folder with *.jsonl records "
                   "(repeatable)")
    p.add_argument("--out", help="site folder to write (replaced whole)")
    p.add_argument("--tokenizer", help="tokenizer to decode contexts (default: the one the stats name)")
    p.add_argument("--contexts", type=int, default=20, help="top contexts per feature page (default 20)")
    p.add_argument("--window", type=int, nargs=2, default=(24, 8), metavar=("BEFORE", "AFTER"),
                   help="tokens shown around the activating token (default 24 8)")
    p.add_argument("--judge-window", type=int, nargs=2, default=(32, 8), metavar=("BEFORE", "AFTER"),
                   help="the --window the screen's judge saw, to find each context's score (default 32 8)")
    np_ = p.add_argument_group("Neuronpedia v1 format")
    np_.add_argument("--neuronpedia-out", help="write the stats as a Neuronpedia export into this folder")
    np_.add_argument("--model-id", default=None, help="Neuronpedia modelId (default: the stats' model)")
    np_.add_argument("--source-id", default=None,
                     help="Neuronpedia source id, e.g. 15-res-8k (default: LAYER-interp-sot)")
    np_.add_argument("--stats-out", help="with --neuronpedia: save the import as a FeatureStats folder")
    np_.add_argument("--n-tokens", type=int, default=None,
                     help="with --stats-out on a foreign export: tokens its frac_nonzero was measured over")
    p.set_defaults(run=run)


def _check_out(path: str | None, flag: str) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FlagError(f"{flag} {out} is a file, not a folder")
    return out


def run(args: argparse.Namespace) -> int:
    outs = {flag: _check_out(getattr(args, flag.strip("-").replace("-", "_")), flag)
            for flag in ("--out", "--neuronpedia-out", "--stats-out")}
    if not any(outs.values()):
        raise FlagError("nothing to write: give --out, --neuronpedia-out or --stats-out")
    if args.neuronpedia and outs["--neuronpedia-out"]:
        raise FlagError("--neuronpedia-out needs --stats (the input is already an export)")
    if args.stats and outs["--stats-out"]:
        raise FlagError("--stats-out needs --neuronpedia (it imports an export)")

    from interp_sot.browser.data import BrowserOptions, load_sources
    from interp_sot.browser.site import write_site

    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    src = load_sources(args.stats, neuronpedia=args.neuronpedia, screen=args.screen, sweep=args.sweep,
                       tokenizer=tokenizer)
    for note in src.notes:
        print(f"note: {note}")
    if outs["--neuronpedia-out"] and src.stats is not None:  # --stats given (checked above)
        from interp_sot.features.neuronpedia import from_stats, write_export

        info = src.stats.info
        model_id = args.model_id or str(info.get("model", "model"))
        source_id = args.source_id or f"{info.get('layer', 0)}-interp-sot"
        labels = _labels(src.screen)
        export = from_stats(src.stats, model_id, source_id, tokenizer=src.tokenizer, labels=labels,
                            before=args.window[0], after=args.window[1])
        path = write_export(export, outs["--neuronpedia-out"])
        print(f"Neuronpedia export ({len(export.features)} features, {len(export.activations)} contexts, "
              f"{len(export.explanations)} labels): {path}")
    if outs["--stats-out"]:
        from interp_sot.features.neuronpedia import to_feature_stats

        stats = to_feature_stats(src.neuronpedia, n_tokens=args.n_tokens)
        print(f"FeatureStats ({stats.d_sae} features): {stats.save(outs['--stats-out'])}")
    if outs["--out"]:
        options = BrowserOptions(contexts=args.contexts, before=args.window[0], after=args.window[1],
                                 judge_window=tuple(args.judge_window))
        print(f"feature browser: {write_site(src, outs['--out'], options)}")
    return 0


def _labels(screen: pd.DataFrame | None) -> dict[int, str]:
    if screen is None or "label" not in screen.columns:
        return {}
    return {int(f): str(v) for f, v in zip(screen["feature"], screen["label"], strict=True)
            if isinstance(v, str) and v}
