"""``interp-sot screen``: conversation ratio, screening table, filter, labels and categories for every feature.

Input: a stats folder written by ``interp-sot stats`` (``FeatureStats`` with top-k contexts, and the
``ContextStore`` holding each top context's tokens and per-document metadata). Output (``--out``):
``screen.parquet`` / ``screen.csv`` (one row per feature), ``conversation_scores.jsonl`` (every judged context;
a rerun or an interrupted run resumes from it), ``judge_cache.jsonl`` (every judge reply: a rerun makes no judge
call), ``category_scores.jsonl`` and ``categories.csv`` with ``--categories``, and ``summary.json``.

The work is :func:`interp_sot.stages.screen_run.run_screen`; every flag is a field of the settings in
:mod:`interp_sot.stages.screen_config` (or of the ratio and filter configs).
"""

from __future__ import annotations

import argparse

from interp_sot.flags import add_flags, field_docs, from_flags
from interp_sot.screening.settings import FilterConfig, RatioConfig
from interp_sot.stages.screen_config import JudgeOptions, ScreenConfig, ScreenInputs, parse_feature_list


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from interp_sot.judging.spec import SPEC_HELP

    docs = field_docs(ScreenConfig)
    p = subparsers.add_parser("screen", help="screen all SAE features (conversation ratio + two-criterion filter)")
    add_flags(p, ScreenInputs, only=("stats", "contexts", "out"))
    add_flags(p, ScreenConfig, only=("judge",), help={"judge": SPEC_HELP})
    g = p.add_argument_group("conversation ratio")
    add_flags(g, RatioConfig)
    add_flags(g, ScreenConfig, only=("label_field",))
    g.add_argument("--features", default=None, help=f"{docs['features']} E.g. '0-99,30939' (ranges inclusive).")
    g.add_argument("--window", type=int, nargs=2, default=ScreenConfig.window, metavar=("BEFORE", "AFTER"),
                   help=f"{docs['window']} (default: {' '.join(map(str, ScreenConfig.window))})")
    add_flags(g, ScreenInputs, only=("tokenizer",))
    add_flags(p.add_argument_group("filter"), FilterConfig)
    j = p.add_argument_group("judge backend")
    add_flags(j, JudgeOptions, repeat=("prompt_file",), metavar={"prompt_file": "KIND=PATH"})
    lab = p.add_argument_group("labels and categories")
    add_flags(lab, ScreenInputs, only=("labels", "prefer_explainer"), repeat=("prefer_explainer",),
              metavar={"prefer_explainer": "MODEL"})
    add_flags(lab, ScreenConfig, only=("categories",))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from interp_sot.stages.screen_run import run_screen

    config = from_flags(ScreenConfig, args, features=parse_feature_list(args.features), window=tuple(args.window),
                        ratio=from_flags(RatioConfig, args), filter=from_flags(FilterConfig, args))
    result = run_screen(from_flags(ScreenInputs, args), config, from_flags(JudgeOptions, args))
    table = result.table
    top = table[table["passes_filter"]].sort_values("rank").head(10)
    cols = ["feature", "conversation_ratio", "ratio_percentile", config.filter.position_column, "frequency",
            "max_act", "label"]
    print(json.dumps(result.summary, indent=2))
    if len(top):
        print(top[cols].to_string(index=False))
    print(f"table: {result.out / 'screen.parquet'}")
    return 0
