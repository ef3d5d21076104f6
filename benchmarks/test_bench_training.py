"""Harvesting and SAE training throughput on SmolLM2-135M layer 15 (issue 7).

Run: ``pytest -q -s benchmarks/test_bench_training.py``. Each round times every variant once, interleaved, and a
ratio is the median of per-round ratios (the machine is shared and noisy).

* harvest: ``forward_to_layer`` (stops after layer 15) vs the full forward with the LM head, both fp32, and
  the truncated forward in bf16 vs fp32: tokens per second on 16 x 128-token windows.
* train: one sae-lens ``SAETrainer`` step (TopK k=32, d_sae 8192, batch 1024, Adam) through ``train_topk_sae``'s
  settings, in tokens per second.

No target in the issue for these; they set the 45-minute figure of ``make sae`` and why harvesting stops early.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_harvest_throughput():
    from interp_sot.activations import forward_to_layer
    from interp_sot.layers import resolve_layer
    from interp_sot.models import load_model

    model, _ = load_model("smollm2")
    ids = torch.randint(100, 40000, (16, 128), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    bf16 = load_model("smollm2", dtype=torch.bfloat16)[0]
    arms = {
        "truncated fp32": lambda: forward_to_layer(model, resolve_layer(model, 15), ids, mask),
        "full fp32": lambda: model(input_ids=ids, attention_mask=mask, use_cache=False),
        "truncated bf16": lambda: forward_to_layer(bf16, resolve_layer(bf16, 15), ids, mask),
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    with torch.no_grad():
        for fn in arms.values():
            fn()  # warm-up
        for _ in range(ROUNDS):
            for name, fn in arms.items():
                times[name].append(_time(fn))
    n = ids.numel()
    for name, t in times.items():
        print(f"{name:>15}: {n / statistics.median(t):8.0f} tok/s")
    full = statistics.median(f / t for f, t in zip(times["full fp32"], times["truncated fp32"], strict=True))
    bf = statistics.median(f / t for f, t in zip(times["truncated fp32"], times["truncated bf16"], strict=True))
    print(f"truncated forward is {full:.2f}x faster than the full forward; bf16 is {bf:.2f}x faster than fp32")


def test_sae_training_step_throughput():
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(0)
    batch = 1024
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=576, d_sae=8192, k=32, normalize_activations="none"))
    trainer = SAETrainer(SAETrainerConfig(total_training_samples=batch * 100, train_batch_size_samples=batch,
                                          lr=1e-3, lr_end=1e-4, device="cpu"), sae, iter(()))
    x = torch.randn(batch, 576) * 4
    trainer.step(x)
    t = [_time(lambda: trainer.step(x)) for _ in range(ROUNDS * 2)]
    print(f"SAE train step (k=32, d_sae=8192, batch {batch}): {statistics.median(t):.2f} s = "
          f"{batch / statistics.median(t):.0f} tok/s (before AuxK revives dead latents)")
