"""encode() parity with sae-lens per architecture, and the fused pass against a dense brute-force reference."""

from __future__ import annotations

import pytest
import torch
from features_helpers import assert_matches, brute_force, make_sae, random_tokens

from interp_sot.features.encode import FusedEncoder, encode, encode_stats, fused_architecture
from interp_sot.features.stats import FeatureStats

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
