"""The GPU benchmarks of issue 16, as one script: every ratio is measured side by side in one process.

``--mode gpu``: an 8B-shaped Llama (DeepSeek-R1-Distill-Llama-8B's config: d_model 4096, 32 layers, GQA 32/8,
vocab 128,256) with random bf16 weights, and a JumpReLU SAE with d_sae 32,768 on layer 15.
``--mode cpu``: the same code with tiny shapes (a smoke run for CI: it proves the script runs, not the figures).

Sections (each writes into results.json as soon as it finishes; a failing section is recorded, the rest still run,
and the exit status is 1, as it is when a correctness check of :func:`failed_checks` fails):

* ``stats``: fused statistics throughput (tokens/s) as a share of the bare bf16 encoder GEMM's rate, for the
  sync-free dense path (the CUDA default) and the sparse path (one ``nonzero`` sync per chunk).
* ``sae_share``: the SAE stage (fused statistics) as a share of the truncated forward through layers 0-15.
* ``hook``: the steering hook's cost per decode step at batch 1/8/32/64, measured directly (the hook callable on a
  ``[batch, 1, d_model]`` activation) and end to end (steered / unsteered decode step).
* ``sweep``: a 5-strength sweep in one batch vs one strength at the same per-strength batch (greedy generation).
* ``compile``: steered decode at batch 1 with a static KV cache, ``torch.compile`` (transformers' default:
  inductor, CUDA graphs) vs eager. The model has 8 of the 32 layers here (compile time grows with depth; the
  per-step ratio is a per-layer property at batch 1, where each layer's kernels are launch-bound).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import write_summary


@dataclass(frozen=True)
class Shapes:
    """Sizes of one run (``GPU`` or the tiny ``CPU`` smoke)."""

    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    layers: int
    """Decoder layers of the model used for the hook, sweep and truncated-forward sections."""
    compile_layers: int
    sae_layer: int
    d_sae: int
    stats_tokens: int
    chunks: tuple[int, ...]
    decode_batches: tuple[int, ...]
    sweep_batches: tuple[int, ...]
    prompt_len: int
    new_tokens: int
    trunc_batch: int
    trunc_seq: int
    rounds: int


GPU = Shapes(hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, layers=32, compile_layers=8,
             sae_layer=15, d_sae=32768, stats_tokens=65536, chunks=(1024, 4096), decode_batches=(1, 8, 32, 64),
             sweep_batches=(1, 8), prompt_len=128, new_tokens=32, trunc_batch=8, trunc_seq=1024, rounds=5)
CPU = Shapes(hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=96, layers=4, compile_layers=2,
             sae_layer=1, d_sae=512, stats_tokens=1024, chunks=(256,), decode_batches=(1, 8), sweep_batches=(1,),
             prompt_len=8, new_tokens=6, trunc_batch=2, trunc_seq=64, rounds=2)
STRENGTHS = (-10.0, -5.0, 0.0, 5.0, 10.0)
VARIANTS = (("sync_free", True, True), ("sync_free_eager", True, False), ("sparse", False, False))
"""Fused statistics paths: (name, sync_free, dense block compiled). The first is the CUDA default."""


class Clock:
    """Wall-clock timing that waits for the device (the only sync points of a measurement)."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], Any], repeat: int = 1) -> float:
        """Seconds per call of ``fn`` over ``repeat`` back-to-back calls."""
        self.sync()
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        self.sync()
        return (time.perf_counter() - t0) / repeat

    def interleaved(self, fns: dict[str, Callable[[], Any]], rounds: int, repeat: int = 1) -> dict[str, float]:
        """Best time per variant, timed round by round in turn (noise only adds time)."""
        for fn in fns.values():  # warm-up
            fn()
        best = {name: math.inf for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                best[name] = min(best[name], self.time(fn, repeat))
        return best


def build_llama(sh: Shapes, layers: int, device: torch.device) -> Any:
    import transformers as tf

    cfg = tf.LlamaConfig(vocab_size=sh.vocab, hidden_size=sh.hidden, intermediate_size=sh.intermediate,
                         num_hidden_layers=layers, num_attention_heads=sh.heads, num_key_value_heads=sh.kv_heads,
                         max_position_embeddings=4096, rope_theta=500000.0, rms_norm_eps=1e-5, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = tf.LlamaForCausalLM(cfg).to(torch.bfloat16)
    return model.eval()


def build_sae(sh: Shapes, device: torch.device, scale: float = 1.0) -> Any:
    """JumpReLU SAE (fp32 weights, like a loaded Llama Scope SAE) firing on ~0.2% of features per token
    (L0 ~ 65 at d_sae 32,768) for inputs with per-coordinate std ``scale``."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=sh.hidden, d_sae=sh.d_sae, apply_b_dec_to_input=False))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(sh.hidden, sh.d_sae, generator=g) / (scale * sh.hidden**0.5))
        sae.W_dec.copy_(torch.randn(sh.d_sae, sh.hidden, generator=g) / sh.hidden**0.5)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.threshold.copy_(2.88 + 0.05 * torch.rand(sh.d_sae, generator=g))
    return sae.to(device).eval()


# -- sections ---------------------------------------------------------------------------------------------------
def bench_stats(sh: Shapes, clock: Clock) -> dict[str, Any]:
    from interp_sot.features.encode import FusedEncoder, encode_stats
    from interp_sot.features.stats import FeatureStats, TokenInfo

    dev = clock.device
    sae = build_sae(sh, dev)
    n = sh.stats_tokens
    x = torch.randn(n, sh.hidden, device=dev, dtype=torch.bfloat16)
    seq = torch.arange(n, device=dev) // 512
    pos = torch.arange(n, device=dev) % 512 + 1
    tokens = TokenInfo(seq, pos, pos - 1, pos % 9)
    w = sae.W_enc.detach().to(torch.bfloat16)
    out: dict[str, Any] = {"tokens": n, "d_in": sh.hidden, "d_sae": sh.d_sae, "variants": {}}
    for chunk in sh.chunks:
        a = x[:chunk]
        fns: dict[str, Callable[[], Any]] = {"gemm": lambda a=a: torch.mm(a, w)}
        for name, sync_free, compiled in VARIANTS:
            enc = FusedEncoder(sae, chunk, compute_dtype=torch.bfloat16, sync_free=sync_free)  # built once

            def run(enc: FusedEncoder = enc, compiled: bool = compiled) -> FeatureStats:
                os.environ["INTERP_SOT_COMPILE_STATS"] = "1" if compiled else "0"
                try:
                    stats = FeatureStats(sh.d_sae, top_k=50, device=dev)
                    encode_stats(sae, x, tokens, stats, encoder=enc)
                finally:
                    os.environ.pop("INTERP_SOT_COMPILE_STATS")
                return stats
            fns[name] = run
        best = clock.interleaved(fns, rounds=max(2, sh.rounds - 2))
        gemm_tok_s = chunk / best["gemm"]
        row = {"gemm_tok_s": gemm_tok_s, "gemm_tflops": 2 * chunk * sh.hidden * sh.d_sae / best["gemm"] / 1e12}
        for name, _, _ in VARIANTS:
            row[f"{name}_tok_s"] = n / best[name]
            row[f"{name}_share"] = (n / best[name]) / gemm_tok_s
        out["variants"][str(chunk)] = row
    out["kernel"] = bench_counts_kernel(sh, clock, sae, x)
    out["sync_free_syncs"] = count_syncs(fns["sync_free"]) if dev.type == "cuda" else "not checked on CPU"
    check = fns["sync_free"](), fns["sparse"]()
    out["paths_agree"] = bool(torch.equal(check[0].fire_count, check[1].fire_count)
                              and torch.equal(check[0].topk_values, check[1].topk_values))
    out["mean_l0"] = float(check[0].fire_count.sum()) / n
    return out


def count_syncs(fn: Callable[[], Any]) -> str:
    """'none' if ``fn`` (already warmed up) runs without a host-device sync, else the first one CUDA reports."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        return "none"
    except RuntimeError as err:
        return str(err).splitlines()[0][:160]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def bench_counts_kernel(sh: Shapes, clock: Clock, sae: Any, x: torch.Tensor) -> dict[str, Any]:
    """The Triton encoder GEMM + count/sum/max epilogue vs the same computed with torch, both as shares of the
    bare GEMM's rate (on CPU only under TRITON_INTERPRET=1, with fp32 inputs: a smoke check of the launch)."""
    try:
        from interp_sot.kernels.triton_encode import EncodeCounts, encode_counts
    except ImportError:
        return {"skipped": "triton is not installed"}
    gpu = clock.device.type == "cuda"
    if not gpu and os.environ.get("TRITON_INTERPRET") != "1":
        return {"skipped": "no CUDA and TRITON_INTERPRET is not set"}
    xs = x if gpu else x.float()
    w = sae.W_enc.detach().to(xs.dtype)
    b, gate = sae.b_enc.detach().float(), sae.threshold.detach().clamp_min(0).float()
    n, chunk = xs.shape[0], sh.chunks[-1]

    def gemm() -> None:
        for s in range(0, n, chunk):
            torch.mm(xs[s:s + chunk], w)

    def with_torch() -> EncodeCounts:
        z = torch.zeros(sh.d_sae, device=clock.device)
        out = EncodeCounts(z.to(torch.int32), z.clone(), z.clone())
        for s in range(0, n, chunk):
            pre = torch.mm(xs[s:s + chunk], w).float() + b
            fire = (pre > gate) & (pre < float("inf"))
            vals = torch.where(fire, pre, 0.0)
            out.fire_count.add_(fire.sum(0, dtype=torch.int32))
            out.act_sum.add_(vals.sum(0))
            torch.maximum(out.act_max, vals.amax(0), out=out.act_max)
        return out

    def with_triton() -> EncodeCounts:
        return encode_counts(xs, w, b, gate, block=(128, 128, 64) if gpu else (64, 64, 32), num_warps=8 if gpu else 4)

    best = clock.interleaved({"gemm": gemm, "torch": with_torch, "triton": with_triton}, rounds=max(2, sh.rounds - 2))
    a, c = with_torch(), with_triton()
    return {"tokens": n, "gemm_tok_s": n / best["gemm"], "torch_share": best["gemm"] / best["torch"],
            "triton_share": best["gemm"] / best["triton"],
            "count_mismatches": int((a.fire_count != c.fire_count).sum()),
            "max_rel_diff": float(((a.act_max - c.act_max).abs() / a.act_max.clamp_min(1e-6)).max())}


def bench_sae_share(sh: Shapes, clock: Clock, model: Any) -> dict[str, Any]:
    from interp_sot.activations import forward_to_layer
    from interp_sot.features.encode import FusedEncoder, encode_stats
    from interp_sot.features.stats import FeatureStats, TokenInfo

    dev = clock.device
    layer = model.model.layers[sh.sae_layer]
    ids = torch.randint(3, sh.vocab, (sh.trunc_batch, sh.trunc_seq), device=dev)
    mask = torch.ones_like(ids)
    hidden = forward_to_layer(model, layer, ids, mask)
    sae = build_sae(sh, dev, scale=float(hidden.float().std()))
    n = ids.numel()
    pos = torch.arange(sh.trunc_seq, device=dev).repeat(sh.trunc_batch)
    tokens = TokenInfo(torch.arange(sh.trunc_batch, device=dev).repeat_interleave(sh.trunc_seq), pos, pos, pos % 9)
    enc = FusedEncoder(sae, sh.chunks[-1], compute_dtype=torch.bfloat16)  # the CUDA default: sync-free

    def sae_stage() -> FeatureStats:
        stats = FeatureStats(sh.d_sae, top_k=50, device=dev)
        encode_stats(sae, hidden.reshape(n, -1), tokens, stats, encoder=enc)
        return stats

    best = clock.interleaved({"forward": lambda: forward_to_layer(model, layer, ids, mask), "sae": sae_stage},
                             rounds=sh.rounds)
    return {"tokens": n, "layers_run": sh.sae_layer + 1, "forward_s": best["forward"], "sae_s": best["sae"],
            "share": best["sae"] / best["forward"], "mean_l0": float(sae_stage().fire_count.sum()) / n}


def _decode_state(model: Any, batch: int, sh: Shapes) -> tuple[torch.Tensor, Any]:
    from transformers import DynamicCache

    dev = next(model.parameters()).device
    ids = torch.randint(3, sh.vocab, (batch, sh.prompt_len), device=dev)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    return out.logits[:, -1:].argmax(-1), cache


def bench_hook(sh: Shapes, clock: Clock, model: Any) -> dict[str, Any]:
    from interp_sot.steering import steer

    d = torch.randn(sh.hidden)
    d /= d.norm()
    rows = []
    for batch in sh.decode_batches:
        nxt, cache = _decode_state(model, batch, sh)
        length = cache.get_seq_length()

        def step(nxt: torch.Tensor = nxt, cache: Any = cache, length: int = length) -> None:
            extra = cache.get_seq_length() - length
            if extra:
                cache.crop(-extra)  # every step decodes at the same cache length
            with torch.no_grad():
                model(input_ids=nxt, past_key_values=cache, use_cache=True)

        strengths = torch.linspace(-10, 10, batch)
        h = torch.randn(batch, 1, sh.hidden, device=clock.device, dtype=torch.bfloat16)
        calls = 2000 if clock.device.type == "cuda" else 200
        step()
        plain, steered, hook_s = math.inf, math.inf, math.inf
        for _ in range(sh.rounds):  # interleaved; the hook stays attached while steered steps are timed
            plain = min(plain, clock.time(step, 10))
            handle = steer(model, sh.sae_layer, d, strengths)
            try:
                steered = min(steered, clock.time(step, 10))
                hook_s = min(hook_s, clock.time(lambda h=h, handle=handle: handle._add(h, 0, inplace=True), calls))
            finally:
                handle.remove()
        rows.append({"batch": batch, "hook_us": hook_s * 1e6, "step_ms": plain * 1e3, "share": hook_s / plain,
                     "steered_over_plain": steered / plain})
        del cache
    return {"layers": sh.layers, "prompt_len": sh.prompt_len, "rows": rows}


def bench_sweep(sh: Shapes, clock: Clock, model: Any) -> dict[str, Any]:
    from interp_sot.steering import steer

    d = torch.randn(sh.hidden)
    d /= d.norm()
    rows = []
    kw: dict[str, Any] = dict(max_new_tokens=sh.new_tokens, min_new_tokens=sh.new_tokens, do_sample=False,
                              pad_token_id=0)
    for per in sh.sweep_batches:
        ids = torch.randint(3, sh.vocab, (per, sh.prompt_len), device=clock.device)

        def one(ids: torch.Tensor = ids) -> None:
            with torch.no_grad(), steer(model, sh.sae_layer, d, 10.0):
                model.generate(ids, **kw)

        def five(ids: torch.Tensor = ids, per: int = per) -> None:
            s = torch.tensor(STRENGTHS).repeat_interleave(per)
            with torch.no_grad(), steer(model, sh.sae_layer, d, s):
                model.generate(ids.repeat(len(STRENGTHS), 1), **kw)

        best = clock.interleaved({"one": one, "five": five}, rounds=max(2, sh.rounds - 2))
        rows.append({"per_strength_batch": per, "one_s": best["one"], "five_s": best["five"],
                     "ratio": best["five"] / best["one"]})
    return {"new_tokens": sh.new_tokens, "rows": rows}


def bench_compile(sh: Shapes, clock: Clock) -> dict[str, Any]:
    from transformers import CompileConfig

    from interp_sot.steering import steer

    torch._dynamo.utils.counters.clear()  # count only this section's graphs
    model = build_llama(sh, sh.compile_layers, clock.device)
    d = torch.randn(sh.hidden)
    d /= d.norm()
    ids = torch.randint(3, sh.vocab, (1, sh.prompt_len), device=clock.device)
    kw: dict[str, Any] = dict(max_new_tokens=sh.new_tokens, min_new_tokens=sh.new_tokens, do_sample=False,
                              pad_token_id=0, cache_implementation="static")
    if clock.device.type == "cuda":
        config = CompileConfig()  # transformers' default for static caches: inductor + CUDA graphs
    else:  # the smoke run traces the graph (Dynamo, fullgraph) without building C++ kernels
        config = CompileConfig(fullgraph=True, backend="eager", mode=None)
        config._compile_all_devices = True

    def gen(compiled: bool) -> torch.Tensor:
        extra = {"compile_config": config} if compiled else {"disable_compile": True}
        with torch.no_grad():
            return model.generate(ids, **kw, **extra)

    with steer(model, min(sh.sae_layer, sh.compile_layers - 1), d, 8.0):
        t0 = time.perf_counter()
        first = gen(True)  # compiles
        compile_s = time.perf_counter() - t0
        best = clock.interleaved({"eager": lambda: gen(False), "compiled": lambda: gen(True)}, rounds=sh.rounds)
        same = bool(torch.equal(first, gen(False)))
    return {"layers": sh.compile_layers, "new_tokens": sh.new_tokens, "compile_s": compile_s,
            "eager_s": best["eager"], "compiled_s": best["compiled"], "speedup": best["eager"] / best["compiled"],
            "same_tokens": same, "unique_graphs": int(torch._dynamo.utils.counters["stats"]["unique_graphs"])}


# -- runner -----------------------------------------------------------------------------------------------------
KERNEL_MAX_MISMATCH_SHARE = 1e-3
"""Share of the SAE's features whose firing count may differ between the Triton kernel and the torch reference
(bf16 GEMM rounding flips a pre-activation that sits exactly at the gate); more is a kernel bug."""
KERNEL_MAX_REL_DIFF = 2e-2
"""Largest relative difference of a feature's max activation between the kernel and the reference (bf16 rounding)."""


def failed_checks(results: dict[str, Any]) -> list[str]:
    """The correctness checks a finished run failed: the sync-free and sparse statistics paths must agree exactly,
    and the Triton kernel must match the torch reference within bf16 rounding. Each failure fails the exit status:
    a figure that cannot fail the run is not a check."""
    failed: list[str] = []
    stats = results["sections"].get("stats")
    if stats is None:
        return failed
    if stats.get("paths_agree") is not True:
        failed.append("stats: the sync-free and sparse paths disagree (fire counts or top-k values)")
    kern = stats.get("kernel") or {}
    d_sae = int(results["shapes"].get("d_sae", 0) or 0)
    allowed = KERNEL_MAX_MISMATCH_SHARE * d_sae
    if kern.get("count_mismatches", 0) > allowed:
        failed.append(f"kernel: {kern['count_mismatches']} feature counts differ from the torch reference "
                      f"(allowed {allowed:g})")
    if not kern.get("max_rel_diff", 0.0) <= KERNEL_MAX_REL_DIFF:  # NaN fails too
        failed.append(f"kernel: max activations differ by {kern.get('max_rel_diff')} relative (allowed "
                      f"{KERNEL_MAX_REL_DIFF})")
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    args = p.parse_args(argv)
    if args.mode == "gpu" and not torch.cuda.is_available():
        print("error: --mode gpu needs CUDA (use --cpu for the smoke run)", file=sys.stderr)
        return 2
    sh = GPU if args.mode == "gpu" else CPU
    device = torch.device("cuda" if args.mode == "gpu" else "cpu")
    clock = Clock(device)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "mode": args.mode, "shapes": asdict(sh), "torch": torch.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sections": {}, "errors": {},
    }
    only = {s for s in args.only.split(",") if s}
    model: Any = None

    def shared_model() -> Any:
        nonlocal model
        if model is None:
            model = build_llama(sh, sh.layers, device)
        return model

    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "stats": lambda: bench_stats(sh, clock),
        "sae_share": lambda: bench_sae_share(sh, clock, shared_model()),
        "hook": lambda: bench_hook(sh, clock, shared_model()),
        "sweep": lambda: bench_sweep(sh, clock, shared_model()),
        "compile": lambda: bench_compile(sh, clock),
    }
    for name, run in sections.items():
        if only and name not in only:
            continue
        if name == "compile":
            model = None  # free the 32-layer model before building the compiled one
            if device.type == "cuda":
                torch.cuda.empty_cache()
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        try:
            results["sections"][name] = {**run(), "wall_s": time.perf_counter() - t0}
        except Exception as err:  # recorded, reported, and turned into a failing exit status below
            results["errors"][name] = "".join(traceback.format_exception_only(type(err), err)).strip()
            traceback.print_exc()
        print(f"[{time.strftime('%H:%M:%S')}] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_summary(results, args.out / "summary.md")
    results["failed_checks"] = failed_checks(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for line in results["failed_checks"]:
        print(f"check failed: {line}", file=sys.stderr)
    return 1 if results["errors"] or results["failed_checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
