"""Train a TopK SAE on harvested activations with sae-lens's ``SAETrainer``, checkpointing so a killed run resumes.

sae-lens's own runner needs a TransformerLens model; its ``SAETrainer`` only needs an iterator of
``[batch, d_in]`` tensors, which is what the on-disk shards give. Two settings matter on small data (measured:
held-out explained variance 0.34 with sae-lens defaults, 0.80 with these): the decoder bias starts at the data
mean (in the normalised space the trainer works in), and the learning rate is 1e-3 with warm-up and cosine decay.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from interp_sot.io import atomic_write_json, replaced_dir

if TYPE_CHECKING:  # sae-lens has no type information: these name the classes, mypy sees Any
    from sae_lens.saes.topk_sae import TopKTrainingSAE
    from sae_lens.training.sae_trainer import SAETrainer

    from interp_sot.protocols import SparseAutoencoder

log = logging.getLogger(__name__)


@dataclass
class SAETrainConfig:
    """Architecture and optimisation of the TopK SAE."""

    d_sae: int = 8192
    """Number of latents; 8192 is the largest power of two whose fp16 weights (18.9 MB at d_in 576) stay < 25 MB."""
    k: int = 32
    """Active latents per token (TopK)."""
    batch_size: int = 1024
    """Tokens per optimiser step."""
    epochs: float = 1.0
    """Passes over the training activations."""
    lr: float = 1e-3
    """Peak Adam learning rate."""
    lr_end: float = 1e-4
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    dead_feature_window: int = 250
    """Steps without firing after which a latent counts as dead and gets the AuxK loss."""
    aux_loss_coefficient: float = 1.0
    """Weight of the AuxK loss that revives dead latents."""
    checkpoint_every: int = 300
    """Steps between checkpoints (trainer state is 76 MB at d_sae 8192)."""
    seed: int = 0
    """Seed of the weight init and the per-epoch shuffles."""

    def __post_init__(self) -> None:
        if self.d_sae < 1 or not 1 <= self.k <= self.d_sae:
            raise ValueError(f"need d_sae >= 1 and 1 <= k <= d_sae, got d_sae={self.d_sae}, k={self.k}")
        if self.batch_size < 1 or self.epochs <= 0 or self.lr <= 0 or self.lr_end <= 0:
            raise ValueError("batch_size, epochs, lr and lr_end must be positive")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")

    def total_steps(self, n_tokens: int) -> int:
        return max(1, int(n_tokens * self.epochs) // self.batch_size)


def shuffled_batches(acts: torch.Tensor, batch_size: int, seed: int, skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless fp32 batches ``[batch_size, d_in]``, reshuffled every epoch; ``skip`` batches are passed over
    without being built, so a resumed run sees exactly the batches the killed one would have seen next."""
    per_epoch = acts.shape[0] // batch_size
    if per_epoch == 0:
        raise ValueError(f"{acts.shape[0]} training tokens are fewer than one batch of {batch_size}")
    epoch, start = divmod(skip, per_epoch)
    while True:
        order = torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        for b in range(start, per_epoch):
            yield acts[order[b * batch_size:(b + 1) * batch_size]].float()
        epoch, start = epoch + 1, 0


def _save(trainer: SAETrainer, folder: Path) -> None:
    with replaced_dir(folder) as tmp:  # a kill mid-save keeps the previous checkpoint
        trainer.save_checkpoint(tmp.name, base_path=str(tmp.parent))


def train_topk_sae(acts: torch.Tensor, cfg: SAETrainConfig, work_dir: Path,
                   on_checkpoint: Callable[[SparseAutoencoder, int], None] | None = None) -> TopKTrainingSAE:
    """Train on ``acts: [tokens, d_in]`` (fp16 is fine); returns the trained sae-lens ``TopKTrainingSAE`` with the
    activation scaling folded into its weights, so it takes raw residuals. Resumes from ``work_dir/checkpoint``.

    ``on_checkpoint(sae, step)`` runs after each checkpoint, e.g. to log held-out quality; the SAE is then in
    the trainer's normalised space.
    """
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if acts.ndim != 2:
        raise ValueError(f"acts must be [tokens, d_in], got {list(acts.shape)}")
    torch.manual_seed(cfg.seed)
    steps = cfg.total_steps(acts.shape[0])
    sae_cfg = TopKTrainingSAEConfig(d_in=int(acts.shape[1]), d_sae=cfg.d_sae, k=cfg.k, dtype="float32",
                                    device="cpu", apply_b_dec_to_input=True,
                                    normalize_activations="expected_average_only_in",
                                    aux_loss_coefficient=cfg.aux_loss_coefficient)
    sae = TopKTrainingSAE(sae_cfg)
    trainer_cfg = SAETrainerConfig(total_training_samples=steps * cfg.batch_size,
                                   train_batch_size_samples=cfg.batch_size, lr=cfg.lr, lr_end=cfg.lr_end,
                                   lr_scheduler_name="cosineannealing", lr_warm_up_steps=cfg.warmup_steps,
                                   device="cpu", dead_feature_window=cfg.dead_feature_window,
                                   feature_sampling_window=cfg.checkpoint_every)
    checkpoint = Path(work_dir) / "checkpoint"
    fingerprint = {"n_tokens": int(acts.shape[0]), "d_in": int(acts.shape[1]), **asdict(cfg),
                   "data_checksum": float(acts[:: max(1, acts.shape[0] // 4096)].float().sum())}
    trainer = SAETrainer(trainer_cfg, sae, iter(()))
    if (checkpoint / "trainer_state.pt").exists():
        saved = json.loads((Path(work_dir) / "fingerprint.json").read_text())
        if saved != fingerprint:
            raise ValueError(f"the checkpoint in {checkpoint} was trained on other data or settings; "
                             "delete it or use another work folder")
        sae.load_weights_from_checkpoint(str(checkpoint))
        trainer.load_trainer_state(checkpoint)
        log.info("resuming SAE training at step %d of %d", trainer.n_training_steps, steps)
    else:
        # The scale that makes E||x|| = sqrt(d_in), then the decoder bias at the mean in that scale.
        scale = float(acts.shape[1]) ** 0.5 / acts[: 1 << 18].float().norm(dim=-1).mean().item()
        trainer.activation_scaler.scaling_factor = scale
        with torch.no_grad():
            sae.b_dec.copy_(acts.float().mean(0) * scale)
        atomic_write_json(Path(work_dir) / "fingerprint.json", fingerprint)
    trainer.data_provider = shuffled_batches(acts, cfg.batch_size, cfg.seed, skip=trainer.n_training_steps)
    bar = tqdm(total=steps, initial=trainer.n_training_steps, desc="train SAE", unit="step")
    while trainer.n_training_steps < steps:
        trainer.maybe_reset_sparsity()
        out = trainer.step(next(trainer.data_provider))
        trainer.n_training_steps += 1
        bar.update(1)
        if trainer.n_training_steps % 20 == 0:
            bar.set_postfix({k: f"{float(torch.as_tensor(v).detach()):.4g}" for k, v in out.losses.items()})
        if trainer.n_training_steps % cfg.checkpoint_every == 0 or trainer.n_training_steps == steps:
            _save(trainer, checkpoint)
            if on_checkpoint is not None:
                on_checkpoint(sae, trainer.n_training_steps)
    bar.close()
    sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
    trainer.activation_scaler.scaling_factor = None
    trainer.set_final_sae_metadata()
    return sae


def export_fp16(sae: TopKTrainingSAE, out_dir: Path, metadata: Mapping[str, object]) -> Path:
    """Write the inference SAE in sae-lens's folder format (``cfg.json`` + ``sae_weights.safetensors``), fp16."""
    from sae_lens import SAE

    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".fp32")
    shutil.rmtree(staging, ignore_errors=True)
    sae.save_inference_model(str(staging))
    inference = SAE.load_from_disk(str(staging), device="cpu")
    inference = inference.to(torch.float16)
    inference.cfg.dtype = "float16"
    for key, value in metadata.items():
        setattr(inference.cfg.metadata, key, value)
    with replaced_dir(out_dir) as tmp:
        inference.save_model(str(tmp))
    shutil.rmtree(staging, ignore_errors=True)
    return out_dir
