"""Markdown summary of benchmarks/gpu/bench.py's results: the issue's five targets with met/missed, then details."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# (section, target text, how to read the figure from the section, passes?)
TARGETS: list[tuple[str, str, Callable[[dict[str, Any]], float], Callable[[float], bool], str]] = [
    ("hook", "hook <= 1% of a decode step at batch 32",
     lambda s: next(r["share"] for r in s["rows"]
                    if r["batch"] == max(b["batch"] for b in s["rows"] if b["batch"] <= 32)),
     lambda v: v <= 0.01, "pct"),
    ("sweep", "5-strength sweep in one batch <= 1.5x one strength (per-strength batch 1)",
     lambda s: s["rows"][0]["ratio"], lambda v: v <= 1.5, "x"),
    ("stats", "fused stats >= 70% of the bf16 GEMM rate (sync-free path, largest chunk)",
     lambda s: s["variants"][max(s["variants"], key=int)]["sync_free_share"], lambda v: v >= 0.70, "pct"),
    ("sae_share", "SAE stage <= 10% of the truncated forward (layers 0-15)",
     lambda s: s["share"], lambda v: v <= 0.10, "pct"),
    ("compile", "compiled steered decode >= 2x eager at batch 1 (static cache)",
     lambda s: s["speedup"], lambda v: v >= 2.0, "x"),
]


def _fmt(v: float, unit: str) -> str:
    return f"{100 * v:.2f}%" if unit == "pct" else f"{v:.2f}x"


def target_rows(results: dict[str, Any]) -> list[str]:
    smoke = results["mode"] != "gpu"
    out = ["| target | measured | verdict |", "|---|---|---|"]
    for name, text, read, ok, unit in TARGETS:
        if name in results["errors"]:
            out.append(f"| {text} | error: {results['errors'][name].splitlines()[-1][:80]} | failed to run |")
        elif name not in results["sections"]:
            out.append(f"| {text} | not run | - |")
        else:
            value = read(results["sections"][name])
            verdict = "smoke (CPU, not judged)" if smoke else ("met" if ok(value) else "missed")
            out.append(f"| {text} | {_fmt(value, unit)} | {verdict} |")
    return out


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    return ["", title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def detail_rows(results: dict[str, Any]) -> list[str]:
    s, out = results["sections"], []
    if "stats" in s:
        st = s["stats"]
        out += _table(f"Fused statistics, {st['tokens']:,} tokens, d_in {st['d_in']}, d_sae {st['d_sae']:,}, mean L0 "
                      f"{st['mean_l0']:.1f}, paths agree: {st['paths_agree']}, "
                      "host-device syncs in the sync-free path: "
                      f"{st['sync_free_syncs']} (tok/s, share of the GEMM rate):",
                      ["chunk", "bf16 GEMM tok/s (TFLOP/s)", "sync-free, compiled on CUDA (default there)",
                       "sync-free, eager", "sparse, one sync per chunk"],
                      [[chunk, f"{r['gemm_tok_s']:,.0f} ({r['gemm_tflops']:.0f})",
                        *(f"{r[f'{v}_tok_s']:,.0f} ({100 * r[f'{v}_share']:.1f}%)"
                          for v in ("sync_free", "sync_free_eager", "sparse"))]
                       for chunk, r in st["variants"].items()])
        kern = st.get("kernel", {})
        out += ["", f"Encoder GEMM + count/sum/max only: {kern['skipped']}" if "skipped" in kern else
                f"Encoder GEMM + count/sum/max only (first-pass statistics), share of the GEMM rate: Triton kernel "
                f"{100 * kern['triton_share']:.1f}%, same in torch {100 * kern['torch_share']:.1f}%; features whose "
                f"count differs (GEMM rounding at the gate): {kern['count_mismatches']}, max relative difference of "
                f"maxima {kern['max_rel_diff']:.1e}"]
    if "sae_share" in s:
        r = s["sae_share"]
        out += ["", f"SAE stage vs truncated forward: {r['tokens']:,} tokens, forward through {r['layers_run']} layers "
                    f"{1e3 * r['forward_s']:.1f} ms, SAE stage {1e3 * r['sae_s']:.1f} ms ({100 * r['share']:.1f}%), "
                    f"mean L0 {r['mean_l0']:.1f}"]
    if "hook" in s:
        out += _table(f"Hook per decode step ({s['hook']['layers']} layers, cache {s['hook']['prompt_len']} tokens):",
                      ["batch", "hook", "decode step", "share", "steered / plain step"],
                      [[str(r["batch"]), f"{r['hook_us']:.1f} us", f"{r['step_ms']:.2f} ms", f"{100 * r['share']:.3f}%",
                        f"{r['steered_over_plain']:.3f}"] for r in s["hook"]["rows"]])
    if "sweep" in s:
        out += _table(f"Strength sweep ({s['sweep']['new_tokens']} new tokens, greedy):",
                      ["per-strength batch", "one strength", "five strengths in one batch", "ratio"],
                      [[str(r["per_strength_batch"]), f"{r['one_s']:.3f} s", f"{r['five_s']:.3f} s",
                        f"{r['ratio']:.2f}x"] for r in s["sweep"]["rows"]])
    if "compile" in s:
        r = s["compile"]
        out += ["", f"Static cache + torch.compile, batch 1, {r['layers']} layers, {r['new_tokens']} new tokens: "
                    f"eager {r['eager_s']:.3f} s, compiled {r['compiled_s']:.3f} s ({r['speedup']:.2f}x), compile "
                    f"{r['compile_s']:.1f} s, graphs {r['unique_graphs']}, same tokens as eager: {r['same_tokens']}"]
    return out


def write_summary(results: dict[str, Any], path: Path) -> None:
    head = [f"# GPU check: {results['mode']} mode", "",
            f"{results['device']}; torch {results['torch']}; Python {results['python']}; {results['started']}", ""]
    if results["mode"] != "gpu":
        head += ["CPU smoke run with tiny shapes: it proves the script runs; its numbers are not GPU figures.", ""]
    section_s = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in results["sections"].items())
    text = "\n".join([*head, *target_rows(results), *detail_rows(results), "", f"Section wall times: {section_s}", ""])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
