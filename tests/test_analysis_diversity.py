"""Feature-level diversity: chunked totals equal a dense brute force, and do not depend on chunking or order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp_sot.analysis.diversity import (
    DiversityConfig,
    diversity_table,
    feature_totals,
    set_diversity,
    trace_diversity,
)

D_IN, D_SAE = 16, 64


class CountingEncoder:
    """ReLU encoder that records the largest batch it was asked to encode."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(D_IN, D_SAE, generator=g)
        self.b = torch.randn(D_SAE, generator=g) - 1.5  # sparse-ish activations
        self.max_rows = 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.max_rows = max(self.max_rows, x.shape[0])
        return torch.relu(x @ self.w.to(x.dtype) + self.b.to(x.dtype))


def brute_force(acts: np.ndarray, idx: np.ndarray, threshold: float, weighting: str) -> tuple[int, float]:
    """Direct formulas on the dense [T, d_sae] activations, in float64."""
    sub = acts[:, idx].astype(np.float64)
    active = sub > threshold
    coverage = int(active.any(axis=0).sum())
    w = (sub * active).sum(axis=0) if weighting == "mass" else active.sum(axis=0).astype(np.float64)
    if w.sum() == 0:
        return coverage, 0.0
    p = w / w.sum()
    return coverage, float(-sum(q * math.log(q) for q in p if q > 0))


@pytest.fixture
def trace() -> torch.Tensor:
    return torch.randn(300, D_IN, generator=torch.Generator().manual_seed(1))


SETS = {"personality": np.arange(0, 40, 2), "expertise": np.array([1, 3, 5, 50, 63, 7, 9])}


@pytest.mark.parametrize("threshold", [0.0, 0.5])
@pytest.mark.parametrize("weighting", ["mass", "count"])
def test_matches_dense_brute_force(trace: torch.Tensor, threshold: float, weighting: str) -> None:
    enc = CountingEncoder()
    out = trace_diversity(trace, enc, SETS, DiversityConfig(threshold=threshold, chunk_size=37, weighting=weighting))
    dense = enc.encode(trace).numpy()
    for name, idx in SETS.items():
        cov, ent = brute_force(dense, idx, threshold, weighting)
        assert out[name].coverage == cov
        assert out[name].entropy == pytest.approx(ent, rel=1e-9, abs=1e-12)
        assert 0 < cov <= len(idx)  # the test exercises non-trivial sets


def test_invariant_to_chunking_and_token_order_and_streaming(trace: torch.Tensor) -> None:
    # float64 activations, so that only the accumulation (not the encoder's batched float32 matmul) is compared.
    trace = trace.double()
    enc = CountingEncoder()
    ref = trace_diversity(trace, enc, SETS, DiversityConfig(chunk_size=300))
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(2))
    for chunk in (3, 7, 64, 1000):
        for x in (trace, trace[perm], list(trace[perm].split(45))):
            got = trace_diversity(x, enc, SETS, DiversityConfig(chunk_size=chunk))
            for name in SETS:
                assert got[name].coverage == ref[name].coverage
                assert got[name].entropy == pytest.approx(ref[name].entropy, rel=1e-12)
                assert got[name].total == pytest.approx(ref[name].total, rel=1e-12)


def test_never_encodes_more_than_a_chunk(trace: torch.Tensor) -> None:
    enc = CountingEncoder()
    feature_totals(trace, enc, chunk_size=32)
    assert enc.max_rows == 32


def test_log_base_and_hand_computed_case() -> None:
    # Two tokens, three features: masses 1, 1, 2 -> p = (1/4, 1/4, 1/2), H = 1.5 bits; counts 1, 1, 1 -> log 3.
    acts = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    totals = feature_totals(torch.eye(2), lambda x: x @ acts)
    d = set_diversity(totals, [0, 1, 2], log_base=2)
    assert d.coverage == 3 and d.entropy == pytest.approx(1.5)
    assert set_diversity(totals, [0, 1, 2], weighting="count").entropy == pytest.approx(math.log(3))
    assert set_diversity(totals, [2]).entropy == 0.0


def test_nothing_active_gives_zero_not_nan() -> None:
    totals = feature_totals(torch.zeros(5, 3), lambda x: torch.zeros(x.shape[0], 8))
    d = set_diversity(totals, [0, 1])
    assert (d.coverage, d.entropy, d.total) == (0, 0.0, 0.0)


def test_default_encode_path_of_a_sae_lens_sae(trace: torch.Tensor) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    torch.manual_seed(0)
    sae = sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE))
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc):
            p.copy_(torch.randn_like(p))
        sae.threshold.fill_(0.5)
    out = trace_diversity(trace, sae, SETS, DiversityConfig(chunk_size=50))
    with torch.no_grad():
        dense = sae.encode(trace).numpy()
    for name, idx in SETS.items():
        cov, ent = brute_force(dense, idx, 0.0, "mass")
        assert (out[name].coverage, out[name].entropy) == (cov, pytest.approx(ent, rel=1e-9))


def test_table_has_one_row_per_trace_and_set(trace: torch.Tensor) -> None:
    enc = CountingEncoder()
    tab = diversity_table([("t0", trace), ("t1", trace[:10])], enc, SETS)
    assert list(tab.columns) == ["trace_id", "feature_set", "coverage", "entropy", "set_size", "total", "n_tokens"]
    assert len(tab) == 4 and tab["n_tokens"].tolist() == [300, 300, 10, 10]
    assert not tab.isna().any().any()


def test_bad_input() -> None:
    enc = CountingEncoder()
    x = torch.randn(4, D_IN)
    with pytest.raises(ValueError, match="outside"):
        trace_diversity(x, enc, {"s": [0, D_SAE]})
    with pytest.raises(ValueError, match="twice"):
        trace_diversity(x, enc, {"s": [1, 1]})
    with pytest.raises(ValueError, match="integer"):
        trace_diversity(x, enc, {"s": [0.5]})
    with pytest.raises(ValueError, match="non-empty"):
        trace_diversity(x, enc, {"s": []})
    with pytest.raises(ValueError, match="no tokens"):
        trace_diversity(torch.zeros(0, D_IN), enc, {"s": [0]})
    with pytest.raises(ValueError, match="2-D"):
        trace_diversity(torch.zeros(D_IN), enc, {"s": [0]})
    with pytest.raises(ValueError, match="encode returned shape"):
        trace_diversity(x, lambda t: t.sum(), {"s": [0]})
    with pytest.raises(ValueError, match="threshold"):
        DiversityConfig(threshold=-1)
    with pytest.raises(ValueError, match="weighting"):
        DiversityConfig(weighting="bits")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        trace_diversity(x, object(), {"s": [0]})
