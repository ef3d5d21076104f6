"""``interp-sot stats``: one pass over a corpus -> per-feature statistics, top-k contexts and a features table.

Output (``--out``): ``stats.safetensors`` + ``stats.json`` (:class:`FeatureStats`), ``contexts.safetensors``
(:class:`ContextStore`), ``features.parquet`` (or ``features.csv`` without pyarrow), one row per feature, and
``checkpoint/`` (rerunning the same command resumes an interrupted run). Under ``torchrun`` every rank takes a
shard of the corpus and rank 0 writes the merged result (:func:`interp_sot.stages.stats_run.run_stats`).

``--corpus``: a ``.txt`` file (one document per line, or per blank-line-separated block with
``--txt-split blank``), a ``.jsonl``/``.jsonl.gz`` file of records, a ``.parquet``/``.csv`` file, a folder
written by ``datasets.save_to_disk``, or a ``datasets`` hub name (streamed).
"""

from __future__ import annotations

import argparse

from interp_sot.cli.common import add_plan_args, plan_options, show_plan
from interp_sot.features.collect_config import CollectConfig
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.planning import Planned
from interp_sot.stages.stats_run import CORPUS_FIELDS, DEVICE_FIELDS, StatsRequest


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("stats", help="per-feature SAE statistics and top-k contexts over a corpus")
    add_flags(p, StatsRequest, exclude=CORPUS_FIELDS + DEVICE_FIELDS)
    add_flags(p.add_argument_group("corpus"), StatsRequest, only=CORPUS_FIELDS)
    r = p.add_argument_group("the pass (features.collect_config.CollectConfig)")
    add_flags(r, CollectConfig, exclude=("onset_rule",), aliases={"metadata_fields": ("--metadata-field",)})
    r.add_argument("--no-contexts", dest="keep_contexts", action="store_false", help="= --no-keep-contexts")
    add_flags(r, StatsRequest, only=DEVICE_FIELDS)
    add_plan_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The pass the flags name (:func:`~interp_sot.stages.stats_run.run_stats`); prints its plan or its result."""
    from interp_sot.stages.stats_run import run_stats

    done = run_stats(from_flags(StatsRequest, args), from_flags(CollectConfig, args), plan_options(args))
    if isinstance(done, Planned):
        show_plan(done)
    if done is None or isinstance(done, Planned):  # None: a non-zero rank of a torchrun job
        return 0
    stats = done.stats
    fired = int((stats.fire_count > 0).sum())
    print(f"{stats.n_tokens} tokens, {fired}/{stats.d_sae} features fired; wrote {done.out} ({done.table.name})")
    if truncated := int(stats.info.get("truncated_documents", 0) or 0):
        print(f"note: {truncated} document(s) were cut to --max-length {args.max_length} tokens")
    if nonfinite := int(stats.nonfinite_count.sum()):
        print(f"warning: {nonfinite} NaN/inf activations were counted and left out")
    return 0
