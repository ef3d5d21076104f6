"""``interp-sot train-sae``: harvest layer-L activations of a built corpus, train a TopK SAE, report and export it.

Everything long is resumable: rerun the same command after an interruption. ``--work`` keeps the activation
shards (about 1.2 kB per token) and the trainer checkpoint; ``--out`` receives the fp16 SAE in sae-lens's folder
format plus ``training_report.json``/``.md``. The command exits 1 when held-out explained variance is below
``--min-ev``, after writing the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train-sae", help="train a TopK SAE on a built corpus (see `interp-sot corpus`)")
    p.add_argument("--corpus", required=True, help="folder written by `interp-sot corpus` (train.jsonl, eval.jsonl)")
    p.add_argument("--work", required=True, help="folder for activation shards and checkpoints")
    p.add_argument("--out", required=True, help="folder for the exported SAE and its training report")
    p.add_argument("--model", default="smollm2", help="'smollm2', a model folder or a hub id")
    p.add_argument("--layer", type=int, default=15, help="decoder layer (15)")
    p.add_argument("--tokens", type=int, default=2_100_000, help="training tokens to harvest (2.1M)")
    p.add_argument("--eval-tokens", type=int, default=100_000, help="held-out tokens for the report (100k)")
    p.add_argument("--conversational-share", type=float, default=0.5, help="share of conversational windows (0.5)")
    p.add_argument("--harvest-dtype", choices=("float32", "bfloat16"), default="bfloat16",
                   help="model dtype for the training harvest (bfloat16: 1.9x faster on CPU); held-out tokens "
                        "are always harvested in float32, the dtype the SAE is used at")
    p.add_argument("--d-sae", type=int, default=8192)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-norm-factor", type=float, default=10.0,
                   help="leave out tokens whose norm exceeds this x the median (massive activations; 10)")
    p.add_argument("--min-ev", type=float, default=0.7, help="fail below this held-out explained variance (0.7)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _records(path: Path) -> list[dict[str, Any]]:
    from interp_sot.io import read_jsonl

    if not path.exists():
        raise FileNotFoundError(f"{path} not found; build the corpus with `interp-sot corpus` first")
    return list(read_jsonl(path))


def _report_md(report: dict[str, Any]) -> str:
    q = report["held_out"]
    lines = [f"# Training report: {report['name']}", "",
             f"TopK SAE (k={report['config']['k']}, d_sae={report['config']['d_sae']}) on {report['model']} "
             f"layer {report['layer']} resid_post, trained with sae-lens {report['sae_lens_version']}.", "",
             "| held-out metric | value |", "|---|---|",
             f"| explained variance | {q['explained_variance']:.4f} |", f"| L0 | {q['l0']:.2f} |",
             f"| dead features (never fire on held-out) | {q['dead_fraction']:.4f} |",
             f"| held-out tokens | {q['n_tokens']} |", "",
             f"Tokens with norm above {report['massive_activations']['max_norm_factor']} x the median (massive "
             f"activations at attention-sink positions) are left out of training and of the numbers above: "
             f"{report['massive_activations']['dropped_train']} training and "
             f"{report['massive_activations']['dropped_eval']} held-out tokens. With them included the held-out "
             f"explained variance is {report['held_out_with_massive']['explained_variance']:.4f} "
             f"(L0 {report['held_out_with_massive']['l0']:.2f}).", "",
             f"Training tokens: {report['train_tokens']} ({report['harvest_dtype']} harvest), "
             f"{report['steps']} steps of {report['config']['batch_size']}; wall time of the invocation that wrote this report {report['minutes']:.1f} min (a resumed run counts only its own part).", "",
             "Checkpoint history (held-out subset, normalised space):", ""]
    lines += [f"- step {h['step']}: EV {h['explained_variance']:.4f}, L0 {h['l0']:.1f}, dead {h['dead_fraction']:.4f}"
              for h in report["history"]]
    lines += ["", "Corpus: see `corpus_summary` in training_report.json and interp_sot/data/CORPUS.md.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import sae_lens
    import torch

    from interp_sot.features.sae import load_sae
    from interp_sot.io import atomic_write_json, atomic_write_text
    from interp_sot.models import load_model
    from interp_sot.training.harvest import (
        HarvestConfig,
        drop_massive,
        harvest,
        load_shards,
        select_windows,
        token_windows,
    )
    from interp_sot.training.sae_quality import sae_quality
    from interp_sot.training.sae_training import SAETrainConfig, export_fp16, train_topk_sae

    started = time.time()
    corpus, work, out = Path(args.corpus), Path(args.work), Path(args.out)
    hcfg = HarvestConfig(layer=args.layer)
    tcfg = SAETrainConfig(d_sae=args.d_sae, k=args.k, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
                          lr_end=args.lr / 10, seed=args.seed)
    model, tokenizer = load_model(args.model)
    model.eval()
    per_window = hcfg.seq_len - 1
    ids, labels = token_windows(_records(corpus / "eval.jsonl"), tokenizer, hcfg.seq_len)
    n_eval = min(len(ids), -(-args.eval_tokens // per_window))
    eval_ids = ids[select_windows(labels, n_eval, None, args.seed)]
    eval_acts = load_shards(harvest(model, eval_ids, work / "eval_acts", hcfg))
    ids, labels = token_windows(_records(corpus / "train.jsonl"), tokenizer, hcfg.seq_len)
    train_ids = ids[select_windows(labels, -(-args.tokens // per_window), args.conversational_share, args.seed)]
    if args.harvest_dtype == "bfloat16":
        model.to(torch.bfloat16)
    train_acts, dropped_train = drop_massive(load_shards(harvest(model, train_ids, work / "train_acts", hcfg)),
                                             args.max_norm_factor)
    del model
    eval_all = eval_acts
    eval_acts, dropped_eval = drop_massive(eval_all, args.max_norm_factor)
    logger.info("left out %d train and %d eval tokens with norm > %g x median (massive activations)",
                dropped_train, dropped_eval, args.max_norm_factor)

    history_path = work / "history.json"
    history: list[dict[str, Any]] = json.loads(history_path.read_text()) if history_path.exists() else []
    probe = eval_acts[:16_384].float()

    def on_checkpoint(sae: Any, step: int) -> None:
        scale = float(probe.shape[1]) ** 0.5 / probe.norm(dim=-1).mean().item()
        q = sae_quality(sae, probe * scale)
        history.append({"step": step, **q._asdict()})
        logger.info("step %d: held-out EV %.4f, L0 %.1f, dead %.4f", step, q.explained_variance, q.l0,
                    q.dead_fraction)
        atomic_write_json(history_path, history)

    sae = train_topk_sae(train_acts, tcfg, work, on_checkpoint=on_checkpoint)
    name = f"{args.model}-l{args.layer}-topk{args.k}-{args.d_sae}"
    meta = {"hook_name": f"blocks.{args.layer}.hook_resid_post", "model_name": args.model,
            "context_size": hcfg.seq_len, "dataset_path": "interp_sot corpus (see training_report.json)"}
    export_fp16(sae, out, meta)
    exported = load_sae(out)
    final = sae_quality(exported, eval_acts)
    with_massive = sae_quality(exported, eval_all)
    summary_path = corpus / "summary.json"
    report = {"name": name, "model": args.model, "layer": args.layer, "harvest_dtype": args.harvest_dtype,
              "sae_lens_version": sae_lens.__version__, "train_tokens": int(train_acts.shape[0]),
              "steps": tcfg.total_steps(train_acts.shape[0]), "config": asdict(tcfg),
              "held_out": final._asdict(), "held_out_with_massive": with_massive._asdict(),
              "massive_activations": {"max_norm_factor": args.max_norm_factor, "dropped_train": dropped_train,
                                      "dropped_eval": dropped_eval}, "history": history, "minutes": (time.time() - started) / 60,
              "corpus_summary": json.loads(summary_path.read_text()) if summary_path.exists() else None,
              "target": {"min_explained_variance": args.min_ev, "max_l0": 64}}
    atomic_write_json(out / "training_report.json", report)
    atomic_write_text(out / "training_report.md", _report_md(report))
    logger.info("held-out EV %.4f, L0 %.2f, dead %.4f on %d tokens -> %s", final.explained_variance, final.l0,
                final.dead_fraction, final.n_tokens, out)
    if final.explained_variance < args.min_ev:
        logger.error("explained variance %.4f is below --min-ev %.2f", final.explained_variance, args.min_ev)
        return 1
    return 0
