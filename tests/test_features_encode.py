"""encode() parity with sae-lens per architecture, and the fused pass against a dense brute-force reference."""

from __future__ import annotations

import logging

import pytest
import torch
from features_helpers import assert_matches, assert_stats_equal, brute_force, make_sae, random_acts, random_tokens

from interp_sot.features.encode import FusedEncoder, encode, encode_stats, fused_architecture
from interp_sot.features.stats import FeatureStats, TokenInfo

VARIANTS = [
    ("jumprelu", {}),
    ("jumprelu", {"apply_b_dec_to_input": False}),
    ("standard", {}),
    ("standard", {"normalize_activations": "layer_norm"}),
    ("standard", {"normalize_activations": "constant_norm_rescale"}),
    ("topk", {"k": 5}),
    ("topk", {"k": 4, "rescale_acts_by_decoder_norm": True}),
]


@pytest.mark.parametrize(("arch", "cfg"), VARIANTS)
def test_encode_is_bit_identical_to_sae_lens(arch: str, cfg: dict) -> None:
    sae = make_sae(arch, **cfg)
    assert fused_architecture(sae) == arch
    x = torch.randn(4, 25, 32, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        ref = sae.encode(x)
    got = encode(sae, x)
    assert got.shape == (4, 25, 48) and torch.equal(got, ref)
    assert torch.equal(encode(sae, x[0]), sae.encode(x[0]).detach())
    assert (ref > 0).any() and (ref == 0).any()


def test_folded_input_scaling_stays_exact() -> None:
    sae = make_sae("jumprelu", apply_b_dec_to_input=False)
    sae.fold_activation_norm_scaling_factor(5.5293)  # what sae-lens does to Llama Scope at load
    x = torch.randn(50, 32, generator=torch.Generator().manual_seed(2)) / 5.5293
    with torch.no_grad():
        assert torch.equal(encode(sae, x), sae.encode(x))


def test_non_fused_architectures_fall_back_to_sae_encode() -> None:
    sae = make_sae("gated")
    assert fused_architecture(sae) is None
    x = torch.randn(20, 32)
    with torch.no_grad():
        assert torch.equal(encode(sae, x), sae.encode(x))
    hooked = make_sae("jumprelu")
    hooked.hook_sae_acts_post.register_forward_hook(lambda m, a, o: o * 2)
    assert fused_architecture(hooked) is None


@pytest.mark.parametrize(("arch", "cfg"), [*VARIANTS, ("gated", {})])
@pytest.mark.parametrize("chunk", [7, 64])
def test_fused_statistics_equal_dense_reference(arch: str, cfg: dict, chunk: int) -> None:
    sae = make_sae(arch, seed=3, **cfg)
    tokens = random_tokens([40, 3, 57, 28])
    x = torch.randn(tokens.n, 32, generator=torch.Generator().manual_seed(4)) * 1.5
    stats = FeatureStats(48, top_k=6)
    encode_stats(sae, x, tokens, stats, chunk_size=chunk)
    with torch.no_grad():
        dense = sae.encode(x)
    assert_matches(stats, brute_force(dense, tokens, 6), sums_rtol=1e-6, values_rtol=1e-6)
    assert int(stats.fire_count.sum()) > 0


def test_nonfinite_and_overflowing_inputs_are_counted_not_propagated() -> None:
    sae = make_sae("jumprelu", seed=5)
    tokens = random_tokens([30, 30])
    x = torch.randn(60, 32, generator=torch.Generator().manual_seed(6))
    x[4, 3] = float("nan")
    x[10, 0] = float("inf")
    x[20] = 3e37  # finite input whose pre-activations overflow float32
    stats = FeatureStats(48, top_k=5)
    encode_stats(sae, x, tokens, stats, chunk_size=16)
    with torch.no_grad():
        dense = sae.encode(x)
    assert not torch.isfinite(dense[[4, 10, 20]]).all()
    assert_matches(stats, brute_force(dense, tokens, 5), sums_rtol=1e-6, values_rtol=1e-6)
    assert int(stats.nonfinite_count.sum()) == int((~torch.isfinite(dense)).sum()) > 0
    assert torch.isfinite(stats.max_act).all() and torch.isfinite(stats.act_sum).all()


def test_fused_block_buffer_is_reused() -> None:
    sae = make_sae("jumprelu")
    enc = FusedEncoder(sae, chunk_size=16)
    enc.firings(torch.randn(16, 32))
    buf = enc._buf
    enc.firings(torch.randn(9, 32))
    assert enc._buf is buf and buf is not None and buf.shape == (16, 48)


def test_width_and_weight_errors() -> None:
    sae = make_sae("jumprelu")
    with pytest.raises(ValueError, match="width 31 != SAE d_in 32"):
        encode(sae, torch.zeros(2, 31))
    with pytest.raises(ValueError, match=r"\[n, d_in=32\]"):
        encode_stats(sae, torch.zeros(2, 31), random_tokens([2]), FeatureStats(48))
    with pytest.raises(ValueError, match="d_sae=48"):
        encode_stats(sae, torch.zeros(2, 32), random_tokens([2]), FeatureStats(40))
    with torch.no_grad():
        sae.W_enc[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        FusedEncoder(sae)


# -- the sync-free dense path (the default on CUDA) ---------------------------------------------------------------
@pytest.mark.parametrize(("arch", "cfg"), VARIANTS)
@pytest.mark.parametrize("chunk", [7, 64])
def test_sync_free_path_equals_dense_reference_and_sparse_path(arch: str, cfg: dict, chunk: int) -> None:
    sae = make_sae(arch, seed=3, **cfg)
    tokens = random_tokens([40, 3, 57, 28])
    x = torch.randn(tokens.n, 32, generator=torch.Generator().manual_seed(4)) * 1.5
    dense_stats, sparse_stats = FeatureStats(48, top_k=6), FeatureStats(48, top_k=6)
    encode_stats(sae, x, tokens, dense_stats, encoder=FusedEncoder(sae, chunk, sync_free=True))
    encode_stats(sae, x, tokens, sparse_stats, encoder=FusedEncoder(sae, chunk, sync_free=False))
    with torch.no_grad():
        ref = brute_force(sae.encode(x), tokens, 6)
    assert_matches(dense_stats, ref, sums_rtol=1e-6, values_rtol=1e-6)
    assert_stats_equal(dense_stats, sparse_stats, exact_sums=False)
    assert int(dense_stats.fire_count.sum()) > 0


def test_dense_update_breaks_ties_by_token_even_when_rows_are_shuffled() -> None:
    tokens = random_tokens([30, 25, 41])
    acts = random_acts(tokens.n, 20, seed=9, density=0.5, levels=3)  # few levels: ties everywhere
    perm = torch.randperm(tokens.n, generator=torch.Generator().manual_seed(1))
    shuffled = TokenInfo(tokens.seq_id[perm], tokens.pos[perm], tokens.start_dist[perm], tokens.onset_dist[perm])
    stats = FeatureStats(20, top_k=5)
    for start in range(0, tokens.n, 13):
        stats.update_dense(acts[perm][start:start + 13], shuffled.slice(start, start + 13))
    assert_matches(stats, brute_force(acts, tokens, 5))


def test_dense_update_counts_nonfinite_like_the_sparse_path() -> None:
    tokens = random_tokens([16, 16])
    acts = random_acts(tokens.n, 12, seed=2, nonfinite=True)
    dense, sparse = FeatureStats(12, top_k=4), FeatureStats(12, top_k=4)
    bad_tokens = dense.update_dense(acts, tokens)
    sparse.update(acts, tokens)
    assert_stats_equal(dense, sparse, exact_sums=False)
    assert int(bad_tokens) == int((~torch.isfinite(acts)).any(1).sum()) == 4  # rows 3, 5, 7, 9


def test_dense_update_is_fixed_shape_so_it_never_syncs() -> None:
    # Every data-dependent op (nonzero, .item(), bool(tensor), boolean indexing) fails on the meta device, where
    # tensors have shapes but no values: what runs there needs no host-device sync on CUDA either.
    stats = FeatureStats(48, top_k=6, device="meta")
    tokens = random_tokens([20, 12]).to("meta")
    bad = stats.update_dense(torch.empty(32, 48, device="meta"), tokens, torch.empty(48, device="meta"))
    assert bad.device.type == "meta" and stats.topk_values.shape == (48, 6)


def test_nonfinite_warning_once_per_run_with_the_token_count(caplog: pytest.LogCaptureFixture) -> None:
    sae = make_sae("jumprelu", seed=5)
    tokens = random_tokens([30, 30])
    x = torch.randn(60, 32, generator=torch.Generator().manual_seed(6)).half()
    x[4, 3] = float("nan")
    x[10, 0] = float("inf")
    x[20] = 60000.0  # finite half-precision input whose pre-activations overflow
    x[41] = 60000.0
    expected = 4  # rows 4, 10, 20, 41
    for sync_free in (False, True):
        caplog.clear()
        enc = FusedEncoder(sae, chunk_size=8, compute_dtype=torch.float16, sync_free=sync_free)
        stats = FeatureStats(48, top_k=5)
        with caplog.at_level(logging.WARNING, logger="interp_sot.features.encode"):
            for start in (0, 30):  # two batches of one run, four chunks each
                encode_stats(sae, x[start:start + 30], tokens.slice(start, start + 30), stats, encoder=enc)
            assert not caplog.records  # nothing per chunk or per batch
            assert enc.report_nonfinite() == expected
        assert len(caplog.records) == 1 and f"{expected} token(s)" in caplog.records[0].getMessage()
        assert int(stats.nonfinite_count.sum()) > 0 and torch.isfinite(stats.max_act).all()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="interp_sot.features.encode"):
        encode_stats(sae, x, tokens, FeatureStats(48, top_k=5), chunk_size=8)  # own encoder: reports at the end
    # float32 encoder: the 60000-rows do not overflow, only the NaN and inf inputs count
    assert len(caplog.records) == 1 and "2 token(s)" in caplog.records[0].getMessage()


def test_compiled_dense_block_equals_eager() -> None:
    # On CUDA update_dense runs block_stats through inductor; here inductor builds C++ for it (a few seconds).
    from interp_sot.kernels.dense_block import block_stats

    g = torch.Generator().manual_seed(0)
    block = torch.randn(64, 48, generator=g) * 2
    block[3, 1], block[5, 2], block[6, 3] = float("nan"), float("inf"), float("-inf")
    args = (block, torch.rand(48, generator=g), torch.rand(64, generator=g) < 0.3, torch.rand(64, generator=g) < 0.5,
            torch.randperm(64, generator=g), True)
    torch._dynamo.reset()
    got = torch.compile(block_stats, backend="inductor", dynamic=False, fullgraph=True)(*args)
    ref = block_stats(*args)
    for name, a, b in zip(ref._fields, ref, got, strict=True):
        if a.dtype == torch.float64:  # inductor may reorder the float64 reduction
            assert torch.allclose(a, b, rtol=1e-12, atol=0), name
        else:
            assert torch.equal(a, b), name
    assert int(ref.nonfinite_count.sum()) == 2 and int(ref.bad_tokens) == 2  # -inf pre-activation = activation 0
