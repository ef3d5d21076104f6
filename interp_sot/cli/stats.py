"""``interp-sot stats``: one pass over a corpus -> per-feature statistics, top-k contexts and a features table.

Output (``--out``): ``stats.safetensors`` + ``stats.json`` (:class:`FeatureStats`), ``contexts.safetensors``
(:class:`ContextStore`), ``features.parquet`` (or ``features.csv`` without pyarrow), one row per feature, and
``checkpoint/`` (rerunning the same command resumes an interrupted run). Under ``torchrun`` every rank takes a
shard of the corpus and rank 0 writes the merged result.

``--corpus``: a ``.txt`` file (one document per line, or per blank-line-separated block with
``--txt-split blank``), a ``.jsonl``/``.jsonl.gz`` file of records, a ``.parquet``/``.csv`` file, a folder
written by ``datasets.save_to_disk``, or a ``datasets`` hub name (streamed).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from interp_sot.cli.common import add_plan_args, device_bytes, model_not_found, model_shape, show_or_require_fit
from interp_sot.errors import FlagError, shorten
from interp_sot.features.collect_config import CollectConfig
from interp_sot.flags import add_flags, from_flags

if TYPE_CHECKING:
    from interp_sot.protocols import SparseAutoencoder

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("stats", help="per-feature SAE statistics and top-k contexts over a corpus")
    p.add_argument("--model", required=True, help="'smollm2', a model folder or a hub id")
    p.add_argument("--sae", required=True, help="SAE folder (sae-lens save_model) or sae-lens release name")
    p.add_argument("--sae-id", default=None, help="SAE id within the release (hub releases only)")
    p.add_argument("--layer", type=int, required=True, help="decoder layer L (resid_post = blocks.L.hook_resid_post)")
    p.add_argument("--allow-layer-mismatch", action="store_true",
                   help="use the SAE on --layer even though its config names another layer's hook")
    p.add_argument("--corpus", required=True, help="text/jsonl/parquet/csv file, saved dataset folder or hub name")
    p.add_argument("--out", required=True, help="output folder")
    c = p.add_argument_group("corpus")
    c.add_argument("--split", default="train", help="dataset split (hub/saved datasets; default 'train')")
    c.add_argument("--txt-split", choices=("line", "blank"), default="line",
                   help=".txt documents: one per line (default) or per blank-line-separated block")
    r = p.add_argument_group("the pass (features.collect_config.CollectConfig)")
    add_flags(r, CollectConfig, exclude=("onset_rule",), aliases={"metadata_fields": ("--metadata-field",)})
    r.add_argument("--no-contexts", dest="keep_contexts", action="store_false", help="= --no-keep-contexts")
    r.add_argument("--device", default=None, help="device for model and SAE (default: cuda if available)")
    r.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 (default: as saved)")
    add_plan_args(p)
    p.set_defaults(run=run)


def plan_run(args: argparse.Namespace, sae: SparseAutoencoder, device: str) -> bool:
    """With ``--plan``: print the pass's memory plan and return True (the command exits). Otherwise raise PlanError
    when a batch cannot fit the device, before anything is written; False when the run may go on."""
    from interp_sot.plan import plan_stats

    resident = sum(t.numel() * t.element_size() for t in sae.state_dict().values())  # the SAE is already there
    available = device_bytes(args, device, resident_bytes=resident)
    if not args.plan and available is None:
        return False  # nothing to check against
    shape, dtype = model_shape(args.model, args.dtype)
    plan = plan_stats(shape, tokens=args.max_tokens or args.batch_tokens, batch_tokens=args.batch_tokens,
                      d_sae=int(sae.cfg.d_sae), chunk_size=args.chunk_size, dtype=dtype, device_bytes=available)
    return show_or_require_fit(args, plan, f"{args.model} ({shape.n_params:,} parameters, {dtype}), SAE with "
                               f"{int(sae.cfg.d_sae):,} features")


def run(args: argparse.Namespace) -> int:
    """Flags, the inputs (they exist, the corpus decodes), the output folder and the run's identity are checked
    before the SAE or the model loads; ``stage.json`` is written after the SAE's layer and the memory plan passed."""
    import torch

    from interp_sot.cli.common import bad_input
    from interp_sot.corpora.reader import open_corpus
    from interp_sot.features.distributed import init_from_env, launched_by_torchrun
    from interp_sot.features.sae import check_sae_layer, load_sae
    from interp_sot.io import check_text_file
    from interp_sot.models import load_model
    from interp_sot.stages.identity import model_identity, sae_identity, source_identity
    from interp_sot.stages.rundir import begin_stage, check_identity
    from interp_sot.stages.stats import STAGE, StatsConfig, stats_stage

    with bad_input(""):  # the configs check the flags
        config = StatsConfig(layer=args.layer, collect=from_flags(CollectConfig, args))
    if args.plan and args.max_tokens is None:
        raise FlagError("--plan needs --max-tokens (the corpus is not read to count its tokens)")
    # everything cheap first: inputs exist and decode, the output folder is usable and holds no other run
    inputs = {"model": model_identity(args.model), "sae": sae_identity(args.sae, args.sae_id),
              "corpus": source_identity(args.corpus, args.split)}
    check_text_file(args.corpus, "--corpus")  # a decode error names file and line, before anything is claimed
    main_rank = True
    if launched_by_torchrun():
        import torch.distributed as dist

        device = str(init_from_env())
        main_rank = dist.get_rank() == 0
    else:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not args.plan and main_rank:  # under torchrun rank 0 claims for every rank
        check_identity(args.out, STAGE, config.identity(), inputs)
    with bad_input(f"--sae {shorten(args.sae)}"):
        sae = load_sae(args.sae, args.sae_id, device=device)
        check_sae_layer(sae, args.layer, allow_mismatch=args.allow_layer_mismatch)
    if plan_run(args, sae, device):  # before begin_stage: --batch-tokens is part of the run's identity
        return 0
    if not launched_by_torchrun():  # under torchrun the stage lets rank 0 alone claim the folder
        begin_stage(args.out, STAGE, config.identity(), inputs)
    with bad_input(f"--corpus {shorten(args.corpus)}"):
        corpus = open_corpus(args.corpus, args.split, args.txt_split)
    try:
        model, tokenizer = load_model(args.model, dtype=getattr(torch, args.dtype) if args.dtype else None,
                                      device=device)
    except OSError as err:
        raise model_not_found(args.model, err) from err
    info = {"model": args.model, "sae": args.sae, "sae_id": args.sae_id, "corpus": args.corpus}
    result = stats_stage(model, tokenizer, sae, corpus, config, args.out, inputs=inputs, info=info,
                         allow_layer_mismatch=args.allow_layer_mismatch)
    if result is None:  # a non-zero rank of a torchrun job
        return 0
    stats = result.stats
    fired = int((stats.fire_count > 0).sum())
    print(f"{stats.n_tokens} tokens, {fired}/{stats.d_sae} features fired; wrote {result.out} ({result.table.name})")
    truncated = int(stats.info.get("truncated_documents", 0) or 0)
    if truncated:
        print(f"note: {truncated} document(s) were cut to --max-length {args.max_length} tokens")
    if int(stats.nonfinite_count.sum()):
        print(f"warning: {int(stats.nonfinite_count.sum())} NaN/inf activations were counted and left out")
    return 0
