"""``interp-sot screen``: conversation ratio, screening table, filter, labels and categories for every feature.

Input: a stats folder written by ``interp-sot stats`` (``FeatureStats`` with top-k contexts, and the
``ContextStore`` holding each top context's tokens and per-document metadata). Output (``--out``):
``screen.parquet`` / ``screen.csv`` (one row per feature), ``conversation_scores.jsonl`` (every judged context;
a rerun or an interrupted run resumes from it), ``judge_cache.jsonl`` (every judge reply: a rerun makes no judge
call), ``category_scores.jsonl`` and ``categories.csv`` with ``--categories``, and ``summary.json``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from interp_sot.errors import FlagError
from interp_sot.flags import add_flags, from_flags
from interp_sot.screening.settings import FilterConfig, RatioConfig

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from interp_sot.judging.spec import SPEC_HELP

    p = subparsers.add_parser("screen", help="screen all SAE features (conversation ratio + two-criterion filter)")
    p.add_argument("--stats", required=True, help="folder written by `interp-sot stats` (FeatureStats + contexts)")
    p.add_argument("--contexts", default=None, help="ContextStore folder if not inside --stats")
    p.add_argument("--judge", default="labels", help=SPEC_HELP)
    p.add_argument("--out", required=True, help="output folder (also holds the resumable judge scores)")
    g = p.add_argument_group("conversation ratio")
    add_flags(g, RatioConfig)
    g.add_argument("--label-field", default="conversational",
                   help="per-document boolean metadata used by --judge labels (default 'conversational')")
    g.add_argument("--features", default=None, help="judge only these features, e.g. '0-99,30939'")
    g.add_argument("--window", type=int, nargs=2, default=(32, 8), metavar=("BEFORE", "AFTER"),
                   help="tokens shown before/after the marked token (default 32 8)")
    g.add_argument("--tokenizer", default=None,
                   help="tokenizer (folder or hub id) to decode contexts; default: the one the stats name")
    add_flags(p.add_argument_group("filter"), FilterConfig)
    j = p.add_argument_group("judge backend")
    j.add_argument("--concurrency", type=int, default=None,
                   help="requests in flight (openai judge; default 2 on loopback, 8 elsewhere)")
    j.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    j.add_argument("--timeout", type=float, default=120.0,
                   help="longest silence in seconds (connect, first token, between streamed tokens) before a call "
                        "is retried (openai judge; default 120)")
    j.add_argument("--prompt-file", action="append", default=[], metavar="KIND=PATH",
                   help="replace a judge prompt by a text file (repeatable); KIND: conversational_score, "
                        "feature_category (see the README's prompt table)")
    j.add_argument("--judge-batch-out", default=None, metavar="FILE",
                   help="write every judge request the reply cache cannot answer to FILE (OpenAI Batch API JSONL) "
                        "instead of sending it; no live call is made")
    j.add_argument("--judge-batch-in", default=None, metavar="FILE",
                   help="read a provider's batch results FILE into the reply cache first; no live call is made")
    j.add_argument("--validate-on", choices=("labels",), default=None,
                   help="score the judge against the documents' --label-field labels (accuracy, Cohen's kappa)")
    lab = p.add_argument_group("labels and categories")
    lab.add_argument("--labels", default=None, help="Neuronpedia explanations export (folder or batch file)")
    lab.add_argument("--prefer-explainer", action="append", default=[],
                     help="explanation model to prefer when a feature has several (repeatable)")
    lab.add_argument("--categories", action="store_true",
                     help="classify each label as personality / expertise / other with the judge")
    p.set_defaults(run=run)


def parse_feature_list(text: str | None) -> list[int] | None:
    """``'0-3,7'`` -> ``[0, 1, 2, 3, 7]``; None stays None."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise FlagError(f"--features: cannot read {part!r}; write e.g. '0-99,30939'") from None
    return out


def _as_tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.judge.startswith("openai:"):
        options: dict[str, Any] = {"api_key_env": args.api_key_env, "timeout_s": args.timeout}
        if args.concurrency is not None:  # else the client picks (2 on loopback: a local server answers one call)
            options["max_concurrency"] = args.concurrency
        return options
    return {}


def load_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(stats, contexts)`` from the folders named on the command line."""
    from interp_sot.features.contexts import ContextStore
    from interp_sot.features.stats import FeatureStats
    from interp_sot.stages.rundir import require_complete

    require_complete(Path(args.stats), "--stats")
    stats = FeatureStats.load(Path(args.stats))
    if args.contexts:
        contexts = ContextStore.load(Path(args.contexts))
    elif stats.contexts is not None:
        contexts = stats.contexts
    else:
        raise FileNotFoundError(f"{args.stats} holds no contexts.safetensors; collect with keep_contexts=True "
                                "or pass --contexts")
    return stats, contexts


def load_tokenizer(name: str | None) -> Any:
    """The tokenizer named by --tokenizer, or None to let the context store load its own."""
    if name is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def run(args: argparse.Namespace) -> int:
    import json

    from interp_sot.judging.prompts.files import load_prompt_files
    from interp_sot.judging.spec import make_judge
    from interp_sot.stages.identity import path_identity
    from interp_sot.stages.screen import SCREEN_PROMPTS, ScreenConfig, screen_stage

    config = ScreenConfig(  # the flags of the ratio and the filter are their configs' fields
        judge=args.judge, label_field=args.label_field, features=_as_tuple(parse_feature_list(args.features)),
        window=tuple(args.window), categories=args.categories,
        ratio=from_flags(RatioConfig, args), filter=from_flags(FilterConfig, args))
    judge = make_judge(args.judge, **judge_options(args))
    if judge is None and (args.judge_batch_out or args.judge_batch_in or args.validate_on):
        raise FlagError("--judge-batch-out, --judge-batch-in and --validate-on need an LLM judge (--judge), "
                        "not 'labels'")
    prompts = load_prompt_files(args.prompt_file, SCREEN_PROMPTS)
    stats, contexts = load_inputs(args)
    labels = None
    if args.labels:
        from interp_sot.screening.labels import feature_labels, read_explanations

        labels = feature_labels(read_explanations(args.labels), args.prefer_explainer, d_sae=len(stats.fire_count))
    if args.categories and (judge is None or labels is None):
        raise FlagError("--categories needs a judge (not 'labels') and --labels")
    result = screen_stage(stats, config, args.out, contexts=contexts, tokenizer=load_tokenizer(args.tokenizer),
                          judge=judge, labels=labels, inputs={"stats": path_identity(args.stats),
                                  "labels": None if args.labels is None else path_identity(args.labels)},
                          prompts=prompts, batch_out=args.judge_batch_out, batch_in=args.judge_batch_in,
                          validate_on=args.validate_on)
    table = result.table
    top = table[table["passes_filter"]].sort_values("rank").head(10)
    cols = ["feature", "conversation_ratio", "ratio_percentile", config.filter.position_column, "frequency",
            "max_act", "label"]
    print(json.dumps(result.summary, indent=2))
    if len(top):
        print(top[cols].to_string(index=False))
    print(f"table: {result.out / 'screen.parquet'}")
    return 0
