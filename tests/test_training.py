"""SAE training path: windows, resumable fp16 harvest (== a direct forward), quality metrics (== brute force),
sae-lens training that resumes to the same weights, and the fp16 export that load_sae reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import VOCAB

from interp_sot.training.harvest import HarvestConfig, harvest, load_shards, select_windows, token_windows
from interp_sot.training.sae_quality import sae_quality
from interp_sot.training.sae_training import SAETrainConfig, export_fp16, shuffled_batches, train_topk_sae


def test_token_windows_cut_each_record(tmp_path):
    from conftest import char_tokenizer

    tok = char_tokenizer()
    records = [{"text": "abcdefghij", "conversational": True}, {"text": "xyz"}, {"text": "0123456789abc"}]
    ids, labels = token_windows(records, tok, 4)
    assert ids.shape == (2 + 3, 4)
    assert labels.tolist() == [True, True, False, False, False]
    assert ids[0].tolist() == tok("abcd", add_special_tokens=False)["input_ids"]
    assert ids[2].tolist() == tok("0123", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="at least 40 tokens"):
        token_windows(records, tok, 40)
    with pytest.raises(ValueError, match="no 'text'"):
        token_windows([{"body": "x"}], tok, 4)


def test_select_windows_balances_labels():
    labels = np.array([True] * 30 + [False] * 70)
    idx = select_windows(labels, 40, 0.5, seed=3)
    assert len(set(idx.tolist())) == 40 and labels[idx].sum() == 20
    assert np.array_equal(idx, select_windows(labels, 40, 0.5, seed=3))
    assert len(select_windows(labels, 100, None, seed=0)) == 100
    with pytest.raises(ValueError, match="has 30 and 70"):
        select_windows(labels, 80, 0.5, seed=0)


def test_harvest_equals_direct_forward_and_resumes(tiny_llama, tmp_path):
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(3, VOCAB, (10, 8), generator=g).numpy()
    cfg = HarvestConfig(layer=1, seq_len=8, batch_size=3, shard_windows=4)
    paths = harvest(tiny_llama, windows, tmp_path, cfg)
    assert len(paths) == 3
    acts = load_shards(paths)
    with torch.no_grad():
        hs = tiny_llama(torch.from_numpy(windows), output_hidden_states=True).hidden_states[2]
    expected = hs[:, 1:].reshape(-1, hs.shape[-1]).to(torch.float16)
    assert acts.dtype == torch.float16 and torch.equal(acts, expected)
    # resume: only the missing shard is recomputed, and identically
    before = paths[0].stat().st_mtime_ns
    paths[1].unlink()
    again = harvest(tiny_llama, windows, tmp_path, cfg)
    assert paths[0].stat().st_mtime_ns == before
    assert torch.equal(load_shards(again), acts)
    with pytest.raises(ValueError, match="different harvest"):
        harvest(tiny_llama, windows[:5], tmp_path, cfg)
    with pytest.raises(ValueError, match=r"\[n, 8\]"):
        harvest(tiny_llama, windows[:, :4], tmp_path / "other", cfg)


class LinearSAE(torch.nn.Module):
    """Hand-checkable SAE: ReLU(x W) and decode by W^T."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def encode(self, x):
        return torch.relu(x @ self.w)

    def decode(self, f):
        return f @ self.w.T


def test_sae_quality_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g) + 2.0
    sae = LinearSAE(torch.randn(6, 10, generator=g))
    q = sae_quality(sae, x, batch_size=64)
    f = sae.encode(x)
    x_hat = sae.decode(f)
    ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert q.explained_variance == pytest.approx(ev.item(), rel=1e-5)
    assert q.l0 == pytest.approx((f > 0).float().sum(1).mean().item())
    assert q.dead_fraction == pytest.approx(1 - (f > 0).any(0).float().mean().item())
    assert (q.n_tokens, q.d_sae) == (300, 10)
    with pytest.raises(ValueError, match="NaN"):
        sae_quality(sae, torch.full((4, 6), float("nan")))


def test_shuffled_batches_skip_matches_consumption():
    acts = torch.arange(40, dtype=torch.float16).reshape(20, 2)
    full = shuffled_batches(acts, 6, seed=1)
    seen = [next(full) for _ in range(7)]  # 3 batches per epoch: crosses two epoch boundaries
    resumed = shuffled_batches(acts, 6, seed=1, skip=4)
    for expected in seen[4:]:
        assert torch.equal(next(resumed), expected)
    assert all(b.dtype == torch.float32 for b in seen)
    with pytest.raises(ValueError, match="fewer than one batch"):
        next(shuffled_batches(acts, 64, seed=0))


def _sparse_data(n: int = 4096, d: int = 16, atoms: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(atoms, d, generator=g), dim=-1) * 5
    codes = torch.zeros(n, atoms)
    for i in range(n):
        idx = torch.randperm(atoms, generator=g)[:3]
        codes[i, idx] = torch.rand(3, generator=g) + 0.5
    return (codes @ dictionary + 3.0).to(torch.float16)  # an offset, like the residual stream's mean


CFG = dict(d_sae=64, k=4, batch_size=128, lr=1e-2, lr_end=1e-3, warmup_steps=5, dead_feature_window=20)


def test_training_learns_and_resume_is_exact(tmp_path):
    acts = _sparse_data()
    cfg = SAETrainConfig(epochs=2.0, checkpoint_every=16, **CFG)
    steps = cfg.total_steps(acts.shape[0])
    whole = train_topk_sae(acts, cfg, tmp_path / "a")
    q = sae_quality(whole, acts.float())
    assert q.explained_variance > 0.6 and q.l0 == pytest.approx(4.0)

    class Stop(Exception):
        pass

    def crash(_sae, step):
        if step == 32:
            raise Stop

    with pytest.raises(Stop):
        train_topk_sae(acts, cfg, tmp_path / "b", on_checkpoint=crash)
    resumed = train_topk_sae(acts, cfg, tmp_path / "b")
    assert steps == 64
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(resumed, name), getattr(whole, name), rtol=1e-5, atol=1e-6)


def test_export_fp16_loads_with_load_sae(tmp_path):
    from interp_sot.features.sae import load_sae

    acts = _sparse_data(n=1024)
    sae = train_topk_sae(acts, SAETrainConfig(epochs=1.0, checkpoint_every=100, **CFG), tmp_path / "w")
    before = sae_quality(sae, acts.float())
    out = export_fp16(sae, tmp_path / "sae", {"hook_name": "blocks.1.hook_resid_post"})
    loaded = load_sae(out, dtype="float16")  # asked for explicitly: on CPU the default policy computes in fp32
    assert loaded.W_enc.dtype == torch.float16 and loaded.cfg.d_sae == 64
    assert load_sae(out).W_enc.dtype == torch.float32
    assert loaded.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    after = sae_quality(loaded, acts.float())
    assert after.explained_variance == pytest.approx(before.explained_variance, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae", "w"]  # no staging folder left behind


@pytest.mark.integration
def test_train_sae_command_end_to_end(smollm2, tmp_path, monkeypatch):
    import json

    from interp_sot.cli import main
    from interp_sot.data import read_screening_corpus
    from interp_sot.features.sae import load_sae

    records = list(read_screening_corpus())
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:60] + records[-60:]))
    (corpus / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[100:130]))
    monkeypatch.setattr("interp_sot.models.load_model", lambda *a, **k: smollm2)
    args = ["train-sae", "--corpus", str(corpus), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "sae"),
            "--tokens", "4000", "--eval-tokens", "1000", "--d-sae", "128", "--k", "8", "--batch-size", "256",
            "--epochs", "10", "--lr", "0.01", "--harvest-dtype", "float32"]
    rc = main([*args, "--min-ev", "0.0"])
    assert rc == 0
    report = json.loads((tmp_path / "sae" / "training_report.json").read_text())
    assert report["train_tokens"] + report["massive_activations"]["dropped_train"] == 32 * 127
    assert 0 < report["held_out"]["explained_variance"] < 1 and report["held_out"]["l0"] == pytest.approx(8.0)
    sae = load_sae(tmp_path / "sae", dtype="float16")  # stored fp16 (the CPU policy would compute in fp32)
    assert sae.cfg.d_sae == 128 and sae.W_enc.dtype == torch.float16
    assert sae.cfg.metadata.hook_name == "blocks.15.hook_resid_post"
    assert "explained variance" in (tmp_path / "sae" / "training_report.md").read_text()
    # the quality gate: the same run with an unreachable bar exits 1, after writing its report
    assert main([*args, "--min-ev", "0.999"]) == 1
