"""collect_distributed with the gloo backend and 2 CPU processes equals a single-process collect."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp
from features_helpers import assert_stats_equal, collect_setup

from interp_sot.features.collect import CollectConfig, collect
from interp_sot.features.stats import FeatureStats

LAYER = 1
LENGTH = 24
# One document per batch (equal lengths, budget = one document), so each document's forward pass is the same
# computation in both runs and the comparison can be exact.
CFG = dict(batch_tokens=LENGTH, max_length=LENGTH, chunk_size=64, top_k=4, progress=False)


def corpus() -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [[1, *torch.randint(4, 73, (LENGTH - 1,), generator=g).tolist()] for _ in range(9)]


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from interp_sot.features.distributed import collect_distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, tok, sae = collect_setup(LAYER)
        stats = collect_distributed(model, tok, corpus(), LAYER, sae, CollectConfig(**CFG),
                                    checkpoint_dir=f"{out_dir}/ckpt")
        stats.save(f"{out_dir}/rank{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    model, tok, sae = collect_setup(LAYER)
    single = collect(model, tok, corpus(), LAYER, sae, CollectConfig(**CFG))
    merged = [FeatureStats.load(tmp_path / f"rank{r}") for r in range(2)]
    for stats in merged:
        assert_stats_equal(stats, single, exact_sums=False)
        assert stats.contexts is not None and single.contexts is not None
        assert stats.contexts.seq_ids() == single.contexts.seq_ids()
    assert (tmp_path / "ckpt" / "rank0" / "checkpoint.safetensors").is_file()
    assert (tmp_path / "ckpt" / "rank1" / "checkpoint.safetensors").is_file()
    assert int((single.fire_count > 0).sum()) > 10
