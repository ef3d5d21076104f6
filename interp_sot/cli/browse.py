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

from interp_sot.browser.run import BrowseRequest, browse
from interp_sot.flags import add_flags, field_docs, flag_name, from_flags


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("browse", help="static HTML feature browser; Neuronpedia export/import",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p.add_mutually_exclusive_group(required=True), BrowseRequest, only=("stats", "neuronpedia"))
    add_flags(p, BrowseRequest, only=("screen", "out", "tokenizer", "contexts"))
    docs = field_docs(BrowseRequest)
    p.add_argument("--sweep", action="append", default=[], help=docs["sweep"])
    for name in ("window", "judge_window"):  # two numbers, BEFORE AFTER: no comma list
        before, after = getattr(BrowseRequest(), name)
        p.add_argument(flag_name(name), type=int, nargs=2, default=(before, after), metavar=("BEFORE", "AFTER"),
                       help=f"{docs[name]} (default: {before} {after})")
    add_flags(p.add_argument_group("Neuronpedia v1 format"), BrowseRequest,
              only=("neuronpedia_out", "model_id", "source_id", "stats_out", "n_tokens"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = from_flags(BrowseRequest, args, sweep=tuple(args.sweep), window=tuple(args.window),
                         judge_window=tuple(args.judge_window))
    for line in browse(request).lines:
        print(line)
    return 0
