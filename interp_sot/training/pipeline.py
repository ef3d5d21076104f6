"""Train a TopK SAE on a built corpus (``interp-sot train-sae``): harvest layer-L activations, train with
sae-lens, export fp16 in sae-lens's folder format and write ``training_report.json``/``.md``.

Everything long is resumable: rerun after an interruption. ``work`` keeps the activation shards (about 1.2 kB per
token) and the trainer checkpoint; ``out`` receives the SAE and its report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

if TYPE_CHECKING:
    from interp_sot.protocols import SparseAutoencoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSaeConfig:
    """What the SAE is trained on and how."""

    model: str = "smollm2"
    """'smollm2', a model folder or a hub id."""
    layer: int = 15
    """Decoder layer whose resid_post the SAE reads."""
    tokens: int = 2_100_000
    """Training tokens to harvest."""
    eval_tokens: int = 100_000
    """Held-out tokens for the report."""
    conversational_share: float = 0.5
    """Share of conversational windows among the training tokens."""
    harvest_dtype: Literal["float32", "bfloat16"] = "bfloat16"
    """Model dtype for the training harvest (bfloat16: 1.9x faster on CPU); held-out tokens are always harvested
    in float32, the dtype the SAE is used at."""
    d_sae: int = 8192
    """SAE width (features)."""
    k: int = 32
    """Active features per token (TopK)."""
    batch_size: int = 1024
    """Tokens per training step."""
    epochs: float = 1.0
    """Passes over the harvested tokens."""
    lr: float = 1e-3
    """Learning rate (decays to lr / 10)."""
    max_norm_factor: float = 10.0
    """Leave out tokens whose norm exceeds this x the median (massive activations at attention sinks)."""
    min_ev: float = 0.7
    """The run fails below this held-out explained variance (after writing the report)."""
    seed: int = 0
    """Seed of the window selection and the trainer."""

    def __post_init__(self) -> None:
        for name in ("tokens", "eval_tokens", "d_sae", "k", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.conversational_share <= 1 or self.epochs <= 0 or self.lr <= 0:
            raise ValueError("need 0 <= conversational_share <= 1, epochs > 0 and lr > 0")


class _Massive(TypedDict):
    max_norm_factor: float
    dropped_train: int
    dropped_eval: int


class TrainingReport(TypedDict):
    """``training_report.json``: what was trained on what, and how well it reconstructs held-out activations."""

    name: str
    model: str
    layer: int
    harvest_dtype: str
    sae_lens_version: str
    train_tokens: int
    steps: int
    config: dict[str, object]
    held_out: dict[str, float]
    held_out_with_massive: dict[str, float]
    massive_activations: _Massive
    history: list[dict[str, float]]
    minutes: float
    corpus_summary: object
    target: dict[str, float]


def _records(path: Path) -> list[dict[str, object]]:
    from interp_sot.io import read_jsonl

    if not path.exists():
        raise FileNotFoundError(f"{path} not found; build the corpus with `interp-sot corpus` first")
    return list(read_jsonl(path))


def _report_md(report: TrainingReport) -> str:
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
             f"{report['steps']} steps of {report['config']['batch_size']}; wall time of the invocation that wrote "
             f"this report {report['minutes']:.1f} min (a resumed run counts only its own part).", "",
             "Checkpoint history (held-out subset, normalised space):", ""]
    lines += [f"- step {h['step']}: EV {h['explained_variance']:.4f}, L0 {h['l0']:.1f}, dead {h['dead_fraction']:.4f}"
              for h in report["history"]]
    lines += ["", "Corpus: see `corpus_summary` in training_report.json and interp_sot/data/CORPUS.md.", ""]
    return "\n".join(lines)


def train_sae(cfg: TrainSaeConfig, corpus: str | Path, work: str | Path, out: str | Path) -> TrainingReport:
    """Harvest, train, export and report (the module docstring); the report's ``held_out`` has the explained
    variance the caller compares with ``cfg.min_ev``."""
    import sae_lens
    import torch

    from interp_sot.features.sae import load_sae
    from interp_sot.io import atomic_write_json, atomic_write_text
    from interp_sot.layers import unwrap
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
    corpus, work, out = Path(corpus), Path(work), Path(out)
    hcfg = HarvestConfig(layer=cfg.layer)
    tcfg = SAETrainConfig(d_sae=cfg.d_sae, k=cfg.k, batch_size=cfg.batch_size, epochs=cfg.epochs, lr=cfg.lr,
                          lr_end=cfg.lr / 10, seed=cfg.seed)
    model, tokenizer = load_model(cfg.model)
    per_window = hcfg.seq_len - 1
    ids, labels = token_windows(_records(corpus / "eval.jsonl"), tokenizer, hcfg.seq_len)
    n_eval = min(len(ids), -(-cfg.eval_tokens // per_window))
    eval_ids = ids[select_windows(labels, n_eval, None, cfg.seed)]
    eval_acts = load_shards(harvest(model, eval_ids, work / "eval_acts", hcfg))
    ids, labels = token_windows(_records(corpus / "train.jsonl"), tokenizer, hcfg.seq_len)
    train_ids = ids[select_windows(labels, -(-cfg.tokens // per_window), cfg.conversational_share, cfg.seed)]
    if cfg.harvest_dtype == "bfloat16":
        unwrap(model).to(torch.bfloat16)
    train_acts, dropped_train = drop_massive(load_shards(harvest(model, train_ids, work / "train_acts", hcfg)),
                                             cfg.max_norm_factor)
    del model
    eval_all = eval_acts
    eval_acts, dropped_eval = drop_massive(eval_all, cfg.max_norm_factor)
    logger.info("left out %d train and %d eval tokens with norm > %g x median (massive activations)",
                dropped_train, dropped_eval, cfg.max_norm_factor)

    history_path = work / "history.json"
    history: list[dict[str, float]] = json.loads(history_path.read_text()) if history_path.exists() else []
    probe = eval_acts[:16_384].float()

    def on_checkpoint(sae: SparseAutoencoder, step: int) -> None:
        scale = float(probe.shape[1]) ** 0.5 / probe.norm(dim=-1).mean().item()
        q = sae_quality(sae, probe * scale)
        history.append({"step": step, **q._asdict()})
        logger.info("step %d: held-out EV %.4f, L0 %.1f, dead %.4f", step, q.explained_variance, q.l0,
                    q.dead_fraction)
        atomic_write_json(history_path, history)

    sae = train_topk_sae(train_acts, tcfg, work, on_checkpoint=on_checkpoint)
    name = f"{cfg.model}-l{cfg.layer}-topk{cfg.k}-{cfg.d_sae}"
    meta = {"hook_name": f"blocks.{cfg.layer}.hook_resid_post", "model_name": cfg.model,
            "context_size": hcfg.seq_len, "dataset_path": "interp_sot corpus (see training_report.json)"}
    export_fp16(sae, out, meta)
    exported = load_sae(out)
    final = sae_quality(exported, eval_acts)
    with_massive = sae_quality(exported, eval_all)
    summary_path = corpus / "summary.json"
    report: TrainingReport = {
        "name": name, "model": cfg.model, "layer": cfg.layer, "harvest_dtype": cfg.harvest_dtype,
        "sae_lens_version": sae_lens.__version__, "train_tokens": int(train_acts.shape[0]),
        "steps": tcfg.total_steps(train_acts.shape[0]), "config": asdict(tcfg),
        "held_out": final._asdict(), "held_out_with_massive": with_massive._asdict(),
        "massive_activations": {"max_norm_factor": cfg.max_norm_factor, "dropped_train": dropped_train,
                                "dropped_eval": dropped_eval},
        "history": history, "minutes": (time.time() - started) / 60,
        "corpus_summary": json.loads(summary_path.read_text()) if summary_path.exists() else None,
        "target": {"min_explained_variance": cfg.min_ev, "max_l0": 64}
    }
    atomic_write_json(out / "training_report.json", report)
    atomic_write_text(out / "training_report.md", _report_md(report))
    logger.info("held-out EV %.4f, L0 %.2f, dead %.4f on %d tokens -> %s", final.explained_variance, final.l0,
                final.dead_fraction, final.n_tokens, out)
    return report
