"""Sweep throughput: a steered Countdown sweep vs unsteered batched generation at the same total batch.

Run: ``HF_HUB_OFFLINE=1 pytest -q -s benchmarks/test_bench_sweep.py``. Prints tokens/s and the ratio (target
>= 0.9x); asserts only correctness. The sweep side is everything ``run_rows`` does per batch: prompt building,
one steering hook with per-row directions and strengths, ``generate``, decoding, scoring and the fsynced JSONL
append. The baseline is ``tokenizer`` + ``generate`` + ``batch_decode`` on the same prompts with the same
generation config, no hook. Both use greedy decoding with every row running to ``max_new_tokens`` (no row
stops early: EOS is masked until then) so both do the same work; runs alternate and medians are compared.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import interp_sot.experiments.sweep as sweep_mod
from interp_sot.experiments import GenerationSettings, SweepConfig, run_rows, sweep_rows
from interp_sot.experiments.sweep import _generation_config
from interp_sot.tasks.countdown import build_prompt, generate_problems

TARGET = 0.9
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _measure(
    model: Any,
    tok: Any,
    n_problems: int,
    strengths: list[float],
    max_new: int,
    layer: int,
    repeats: int,
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    prompt_style: str = "tinyzero",
) -> dict[str, float]:
    problems = generate_problems(n_problems, seed=0)
    d = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    dirs = {"f": d / d.norm()}
    rows = sweep_rows(problems, ["f"], strengths)
    gen = GenerationSettings(do_sample=False, max_new_tokens=max_new)
    cfg = SweepConfig(layer=layer, generation=gen, batch_size=len(rows), prompt_style=prompt_style)
    prompts = [build_prompt(r.problem, prompt_style, tok) for r in rows]  # type: ignore[arg-type]
    gen_cfg = _generation_config(model, tok, gen)
    # Equal work on both sides: EOS is masked until max_new_tokens, so no row (steered or not) ends early.
    gen_cfg.min_new_tokens = max_new
    monkeypatch.setattr(sweep_mod, "_generation_config", lambda *a: gen_cfg)

    def baseline() -> int:
        enc = tok(
            prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=prompt_style != "chat"
        )
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=gen_cfg, tokenizer=tok)
        new = out[:, enc["input_ids"].shape[1] :]
        tok.batch_decode(new, skip_special_tokens=True)
        return int(new.numel())

    def sweep(i: int) -> int:
        recs = run_rows(model, tok, rows, dirs, cfg, out_path=tmp / f"sweep{i}.jsonl", progress=False)
        return sum(r.n_new_tokens for r in recs)

    baseline()  # warm-up both paths
    sweep(-1)
    t_base, t_sweep, n_tok = [], [], 0
    for i in range(repeats):
        t0 = time.perf_counter()
        n_base = baseline()
        t_base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_tok = sweep(i)
        t_sweep.append(time.perf_counter() - t0)
        assert n_tok == n_base == len(rows) * max_new
    base_tps = n_tok / statistics.median(t_base)
    sweep_tps = n_tok / statistics.median(t_sweep)
    return {
        "rows": len(rows),
        "tokens": n_tok,
        "base_tps": base_tps,
        "sweep_tps": sweep_tps,
        "ratio": sweep_tps / base_tps,
    }


def _report(name: str, r: dict[str, float]) -> None:
    verdict = "MET" if r["ratio"] >= TARGET else "NOT MET"
    print(
        f"\n[sweep throughput] {name}: batch {r['rows']} rows, {r['tokens']} new tokens per run; "
        f"unsteered {r['base_tps']:.1f} tok/s, sweep {r['sweep_tps']:.1f} tok/s; "
        f"ratio {r['ratio']:.3f} (target >= {TARGET}: {verdict})"
    )


def test_bench_sweep_tiny_llama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from builders import _build  # the tests' tiny random models (no download)
    from test_sweep_e2e import char_tokenizer

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a busy machine
    try:
        r = _measure(
            _build("llama"),
            char_tokenizer(),
            n_problems=4,
            strengths=[-10, -5, 0, 5, 10],
            max_new=32,
            layer=1,
            repeats=7,
            tmp=tmp_path,
            monkeypatch=monkeypatch,
        )
    finally:
        torch.set_num_threads(before)
    _report("tiny random Llama (CPU, 1 thread)", r)


@pytest.mark.integration
def test_bench_sweep_smollm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interp_sot.models import SMOLLM2, load_model

    model, tok = load_model(SMOLLM2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on a busy 2-core machine run ~8x slower (OpenMP contention)
    try:
        r = _measure(
            model,
            tok,
            n_problems=2,
            strengths=[-10, -5, 0, 5, 10],
            max_new=24,
            layer=15,
            repeats=3,
            tmp=tmp_path,
            monkeypatch=monkeypatch,
            prompt_style="chat",
        )
    finally:
        torch.set_num_threads(before)
    _report("SmolLM2-135M-Instruct (CPU, 1 thread)", r)
