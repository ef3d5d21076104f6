"""Fused SAE feature statistics vs the bare encoder GEMM and the peer path, plus memory vs corpus size.

Run: ``pytest -q -s benchmarks/test_bench_features.py``. Each round times every variant once (interleaved: the
machine is shared and noisy) and the reported ratio is the median of the per-round ratios.

* bare: the encoder GEMM alone, chunk by chunk into a reused buffer (``x @ W_enc``).
* peer: sae-lens ``sae.encode`` per chunk + naive count / max / top-50 (``topk`` over running top-50 + chunk).
* fused: ``encode_stats`` (bias, JumpReLU, firing count, sums, sums of squares, first-n, onset, top-50 with
  positions, NaN/inf accounting) + the final top-k compaction.

Targets (issue 3): CPU, d_in 576, d_sae 32768, 16k tokens: fused <= 1.5x bare (peer measured 6.9x before this
work); peak memory independent of corpus size. GPU (d_in 4096, bf16 GEMM with fp32 accumulation): fused >= 70% of
the bare bf16 GEMM rate, i.e. <= 1.43x. The random JumpReLU SAE fires ~70 features per token (printed as L0),
in the range of real SAEs (Llama Scope L0 ~ 50-100).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import torch

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
D_IN, D_SAE, N_TOKENS, CHUNK = (4096, 32768, 65536, 4096) if CUDA else (576, 32768, 16384, 1024)
COMPUTE = torch.bfloat16 if CUDA else None
TOP_K = 50
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TARGET = 1.5 if not CUDA else 1 / 0.7


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def _sae(d_in: int = D_IN) -> Any:
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=D_SAE))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, D_SAE, generator=g) * d_in**-0.5)
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.1)
        sae.threshold.copy_(2.6 + 0.6 * torch.rand(D_SAE, generator=g))
        sae.b_dec.zero_()
    return sae.to(DEVICE).eval()


def _tokens(n: int, seq_len: int = 256) -> Any:
    from interp_sot.features.stats import TokenInfo

    i = torch.arange(n)
    return TokenInfo(i // seq_len, i % seq_len + 1, i % seq_len, (i * 7) % 23)


def bare(sae: Any, x: torch.Tensor) -> None:
    w = sae.W_enc.detach().to(COMPUTE or sae.W_enc.dtype)
    buf = torch.empty(CHUNK, D_SAE, device=DEVICE, dtype=w.dtype)
    for a in range(0, x.shape[0], CHUNK):
        torch.mm(x[a : a + CHUNK].to(w.dtype), w, out=buf)
    _sync()


def peer(sae: Any, x: torch.Tensor) -> None:
    """sae-lens encode, then count / max / top-50 the obvious way on each dense chunk."""
    count = torch.zeros(D_SAE, dtype=torch.int64, device=DEVICE)
    mx = torch.full((D_SAE,), float("-inf"), device=DEVICE)
    top_v = torch.empty(0, D_SAE, device=DEVICE)
    top_i = torch.empty(0, D_SAE, dtype=torch.int64, device=DEVICE)
    with torch.no_grad():
        for a in range(0, x.shape[0], CHUNK):
            acts = sae.encode(x[a : a + CHUNK])
            count += (acts > 0).sum(0)
            mx = torch.maximum(mx, acts.max(0).values)
            idx = torch.arange(a, a + acts.shape[0], device=DEVICE)[:, None].expand_as(acts)
            cand_v, cand_i = torch.cat([top_v, acts]), torch.cat([top_i, idx])
            top_v, j = torch.topk(cand_v, TOP_K, dim=0)
            top_i = cand_i.gather(0, j)
    _sync()


def fused(sae: Any, x: torch.Tensor, tokens: Any) -> Any:
    from interp_sot.features.encode import FusedEncoder, encode_stats
    from interp_sot.features.stats import FeatureStats

    stats = FeatureStats(D_SAE, top_k=TOP_K, device=DEVICE)
    encode_stats(sae, x, tokens, stats, encoder=FusedEncoder(sae, CHUNK, COMPUTE))
    stats.flush()
    _sync()
    return stats


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, {bench_dir!r})

    def hwm_mb():  # VmHWM belongs to this process image (ru_maxrss would include the forking parent's peak)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    from test_bench_features import _sae, _tokens, CHUNK, D_SAE, TOP_K
    from interp_sot.features.encode import FusedEncoder, encode_stats
    from interp_sot.features.stats import FeatureStats
    n, d_in = int(sys.argv[1]), 64
    sae = _sae(d_in)
    stats = FeatureStats(D_SAE, top_k=TOP_K)
    enc = FusedEncoder(sae, CHUNK)
    g = torch.Generator().manual_seed(1)
    tokens = _tokens(n)
    base = hwm_mb()
    for a in range(0, n, 4096):  # the corpus streams in; nothing of size n is ever allocated
        x = torch.randn(4096, d_in, generator=g)
        encode_stats(sae, x, tokens.slice(a, a + 4096), stats, encoder=enc)
    stats.flush()
    print(json.dumps({{"n": n, "peak_rss_mb": hwm_mb(), "setup_mb": base, "l0": int(stats.fire_count.sum()) / n}}))
    """
)


def _peak_rss(n: int) -> dict[str, float]:
    script = MEMORY_SCRIPT.format(bench_dir=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_fused_statistics_vs_bare_gemm_and_peer() -> None:
    torch.manual_seed(0)
    sae = _sae()
    x = torch.randn(N_TOKENS, D_IN, device=DEVICE)
    tokens = _tokens(N_TOKENS).to(DEVICE)
    times: dict[str, list[float]] = {"bare": [], "fused": [], "peer": []}
    ratios: dict[str, list[float]] = {"fused": [], "peer": []}
    stats = fused(sae, x[:CHUNK], tokens.slice(0, CHUNK))  # warm-up (allocator, thread pool)
    for _ in range(ROUNDS):
        t = {"bare": _timed(lambda: bare(sae, x))}
        t["fused"] = _timed(lambda: fused(sae, x, tokens))
        t["peer"] = _timed(lambda: peer(sae, x))
        for name, v in t.items():
            times[name].append(v)
        for name in ratios:
            ratios[name].append(t[name] / t["bare"])
    stats = fused(sae, x[: 4 * CHUNK], tokens.slice(0, 4 * CHUNK))
    l0 = int(stats.fire_count.sum()) / (4 * CHUNK)
    print(f"\n[features] {DEVICE}: d_in {D_IN}, d_sae {D_SAE}, {N_TOKENS} tokens, chunk {CHUNK}, top-{TOP_K}, "
          f"L0 {l0:.0f}, {ROUNDS} interleaved rounds (medians)")
    print(f"{'path':<42}{'seconds':>10}{'x bare GEMM':>14}")
    print(f"{'bare encoder GEMM':<42}{statistics.median(times['bare']):>10.2f}{1.0:>14.2f}")
    print(f"{'peer: sae.encode + naive count/max/top-50':<42}{statistics.median(times['peer']):>10.2f}"
          f"{statistics.median(ratios['peer']):>14.2f}")
    print(f"{'interp_sot fused (all statistics, top-50)':<42}{statistics.median(times['fused']):>10.2f}"
          f"{statistics.median(ratios['fused']):>14.2f}")
    fused_ratio = statistics.median(ratios["fused"])
    print(f"target fused <= {TARGET:.2f}x bare: {'MET' if fused_ratio <= TARGET else 'NOT MET'} ({fused_ratio:.2f}x)")
    assert stats.n_tokens == 4 * CHUNK


def test_bench_peak_memory_independent_of_corpus_size() -> None:
    if CUDA:
        print("\n[features memory] GPU: see torch.cuda.max_memory_allocated in a GPU run (pending)")
        return
    small, large = _peak_rss(16384), _peak_rss(65536)
    print(f"\n[features memory] CPU, d_in 64 (cheap GEMM; state does not depend on d_in), d_sae {D_SAE}, "
          f"top-{TOP_K}, L0 {large['l0']:.0f}")
    for r in (small, large):
        print(f"peak RSS at {r['n']:>6} tokens: {r['peak_rss_mb']:.0f} MB "
              f"(after imports + SAE: {r['setup_mb']:.0f} MB; "
              f"collection adds {r['peak_rss_mb'] - r['setup_mb']:.0f} MB)")
    print(f"growth for 4x the corpus: {large['peak_rss_mb'] - small['peak_rss_mb']:+.0f} MB")
    assert large["peak_rss_mb"] > 0


def test_bench_sae_stage_vs_truncated_forward() -> None:
    """GPU target: the SAE stage adds <= 10% to the forward of an 8B-shaped Llama truncated at layer 15."""
    if not CUDA:
        print("\n[features vs forward] GPU only (8B-shaped Llama, bf16): pending on this CPU machine")
        return
    import transformers as tf

    from interp_sot.activations import forward_to_layer
    from interp_sot.features.encode import FusedEncoder, encode_stats
    from interp_sot.features.stats import FeatureStats

    cfg = tf.LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256)
    with torch.device("cuda"):
        model = tf.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    layer = model.model.layers[15]
    batch, length = 8, 1024
    ids = torch.randint(0, cfg.vocab_size, (batch, length), device="cuda")
    mask = torch.ones_like(ids)
    sae = _sae()
    enc = FusedEncoder(sae, CHUNK, COMPUTE)
    tokens = _tokens(batch * length, seq_len=length).to("cuda")

    def forward_only() -> None:
        forward_to_layer(model, layer, ids, mask)
        _sync()

    def forward_and_stats() -> None:
        h = forward_to_layer(model, layer, ids, mask)
        encode_stats(sae, h.reshape(-1, D_IN), tokens, FeatureStats(D_SAE, top_k=TOP_K, device="cuda"), encoder=enc)
        _sync()

    forward_and_stats()
    ratios = []
    for _ in range(max(ROUNDS, 3)):
        ratios.append(_timed(forward_and_stats) / _timed(forward_only))
    extra = statistics.median(ratios) - 1
    print(f"\n[features vs forward] 8B-shaped Llama to layer 15, {batch}x{length} tokens: SAE stage adds "
          f"{100 * extra:.1f}% (target <= 10%: {'MET' if extra <= 0.10 else 'NOT MET'})")
