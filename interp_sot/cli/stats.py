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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("stats", help="per-feature SAE statistics and top-k contexts over a corpus")
    p.add_argument("--model", required=True, help="'smollm2', a model folder or a hub id")
    p.add_argument("--sae", required=True, help="SAE folder (sae-lens save_model) or sae-lens release name")
    p.add_argument("--sae-id", default=None, help="SAE id within the release (hub releases only)")
    p.add_argument("--layer", type=int, required=True, help="decoder layer L (resid_post = blocks.L.hook_resid_post)")
    p.add_argument("--corpus", required=True, help="text/jsonl/parquet/csv file, saved dataset folder or hub name")
    p.add_argument("--out", required=True, help="output folder")
    c = p.add_argument_group("corpus")
    c.add_argument("--text-field", default="text", help="field holding the text in records (default 'text')")
    c.add_argument("--metadata-field", action="append", default=[],
                   help="record field stored per sequence, e.g. 'conversational' (repeatable)")
    c.add_argument("--split", default="train", help="dataset split (hub/saved datasets; default 'train')")
    c.add_argument("--txt-split", choices=("line", "blank"), default="line",
                   help=".txt documents: one per line (default) or per blank-line-separated block")
    c.add_argument("--max-tokens", type=int, default=None, help="stop after this many counted tokens")
    c.add_argument("--max-length", type=int, default=1024, help="truncate documents to this many tokens (1024)")
    r = p.add_argument_group("run")
    r.add_argument("--batch-tokens", type=int, default=8192, help="padded tokens per forward batch (8192)")
    r.add_argument("--chunk-size", type=int, default=1024, help="tokens per SAE GEMM (1024)")
    r.add_argument("--top-k", type=int, default=50, help="top contexts per feature (50)")
    r.add_argument("--first-n", type=int, default=4, help="first-n window of a sequence (4)")
    r.add_argument("--onset-n", type=int, default=4, help="window after a sentence/turn onset (4)")
    r.add_argument("--checkpoint-every", type=int, default=1_000_000, help="counted tokens between checkpoints")
    r.add_argument("--device", default=None, help="device for model and SAE (default: cuda if available)")
    r.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 (default: as saved)")
    r.add_argument("--compute-dtype", default=None, help="SAE GEMM dtype, e.g. bfloat16 on GPU")
    r.add_argument("--no-contexts", action="store_true", help="do not keep the token ids of top contexts")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _txt_documents(path: Path, split: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        if split == "line":
            for line in fh:
                if line.strip():
                    yield line.rstrip("\n")
            return
        block: list[str] = []
        for line in fh:
            if line.strip():
                block.append(line.rstrip("\n"))
            elif block:
                yield "\n".join(block)
                block = []
        if block:
            yield "\n".join(block)


def open_corpus(spec: str, split: str = "train", txt_split: str = "line") -> Any:
    """An iterable of documents for ``--corpus`` (see the module docstring)."""
    path = Path(spec).expanduser()
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".txt"):
            return _txt_documents(path, txt_split)
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            from interp_sot.io import iter_jsonl

            return iter_jsonl(path)
        import datasets

        for suffix, builder in ((".parquet", "parquet"), (".csv", "csv"), (".json", "json")):
            if name.endswith(suffix):
                return datasets.load_dataset(builder, data_files=str(path), split="train")
        raise ValueError(f"--corpus {path}: unknown file type (use .txt, .jsonl, .jsonl.gz, .parquet, .csv, .json)")
    import datasets

    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    if spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"--corpus {spec}: no such file or folder")
    return datasets.load_dataset(spec, split=split, streaming=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from interp_sot.features.collect import CollectConfig, collect
    from interp_sot.features.distributed import collect_distributed, init_from_env, launched_by_torchrun
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model

    distributed = launched_by_torchrun()
    if distributed:
        device = str(init_from_env())
    else:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model, tokenizer = load_model(args.model, dtype=dtype, device=device)
    sae = load_sae(args.sae, args.sae_id, device=device)
    config = CollectConfig(
        batch_tokens=args.batch_tokens, max_length=args.max_length, chunk_size=args.chunk_size, top_k=args.top_k,
        first_n=args.first_n, onset_n=args.onset_n, text_field=args.text_field,
        metadata_fields=tuple(args.metadata_field), keep_contexts=not args.no_contexts,
        checkpoint_every=args.checkpoint_every, max_tokens=args.max_tokens, compute_dtype=args.compute_dtype,
        progress=not args.no_progress,
    )
    corpus = open_corpus(args.corpus, args.split, args.txt_split)
    if distributed:
        import torch.distributed as dist

        stats = collect_distributed(model, tokenizer, corpus, args.layer, sae, config,
                                    checkpoint_dir=out / "checkpoint")
        if dist.get_rank() != 0:
            return 0
    else:
        stats = collect(model, tokenizer, corpus, args.layer, sae, config, checkpoint_dir=out / "checkpoint")
    stats.info.update({"model": args.model, "sae": args.sae, "sae_id": args.sae_id, "corpus": args.corpus})
    stats.save(out)
    table_path = write_table(stats.to_frame(), out / "features")
    fired = int((stats.fire_count > 0).sum())
    print(f"{stats.n_tokens} tokens, {fired}/{stats.d_sae} features fired; wrote {out} ({table_path.name})")
    if int(stats.nonfinite_count.sum()):
        print(f"warning: {int(stats.nonfinite_count.sum())} NaN/inf activations were counted and left out")
    return 0


def write_table(frame: Any, stem: Path) -> Path:
    """Parquet when pyarrow is installed, else CSV; written atomically."""
    from interp_sot.io import atomic_path

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        target = stem.with_suffix(".csv")
        with atomic_path(target) as tmp:
            frame.to_csv(tmp, index=False)
        return target
    target = stem.with_suffix(".parquet")
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return target
