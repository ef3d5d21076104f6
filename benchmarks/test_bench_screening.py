"""Screening benchmarks: judge cost of a full screen, judged contexts/s over loopback HTTP, and the no-judge table.

Run: ``HF_HUB_OFFLINE=1 pytest -q -s benchmarks/test_bench_screening.py``. Prints numbers; asserts only correctness.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from interp_sot.judging.heuristic import HeuristicJudge
from interp_sot.judging.openai_compat import OpenAIConfig, OpenAIJudge
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE
from interp_sot.screening.controls import control_strength, sample_controls
from interp_sot.screening.conversation_ratio import (
    RatioConfig,
    conversational_messages,
    ratio_from_judge,
    ratio_from_labels,
)
from interp_sot.screening.screen import apply_filter, feature_table

D_SAE, K = 32_768, 50
FULL = D_SAE * K

TEXT = (
    "User: Oh, wait, did you already run the numbers? I thought we agreed to check them first.\n"
    "Assistant: Yes, I did. Hmm, actually, let me double-check the second step, because something looks off.\n"
    "The reaction mixture was stirred at room temperature for two hours and then filtered through celite. "
    "Table 2 reports the yields obtained under each condition, averaged over three independent runs. "
    "\"Well, that's a surprise,\" she said, laughing. \"I never expected you to show up here tonight.\" "
    "In 1848 the revolutions spread across Europe, and the constitutional question dominated debate. "
    "Q: How do I reverse a list in Python? A: Oh, that's easy: use slicing, like xs[::-1], or call reversed(xs). "
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0] else b.pop(0))\n"
)


def _tokenizer():
    from interp_sot.models import cache_root

    folder = cache_root() / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _contexts(tok, n: int, before: int = 32, after: int = 8) -> list[str]:
    """Windows of ``before`` + 1 + ``after`` tokens cut from TEXT, the centre token marked."""
    rng = np.random.default_rng(0)
    if tok is None:
        words = TEXT.split(" ")
        out = []
        for _ in range(n):
            c = int(rng.integers(before // 2, len(words) - after // 2))
            out.append(" ".join(words[c - before // 2:c]) + f" <<{words[c]}>> "
                       + " ".join(words[c + 1:c + 1 + after // 2]))
        return out
    ids = tok(TEXT * 2, add_special_tokens=False)["input_ids"]
    out = []
    for _ in range(n):
        c = int(rng.integers(before, len(ids) - after))
        out.append(tok.decode(ids[c - before:c]) + "<<" + tok.decode(ids[c:c + 1]) + ">>"
                   + tok.decode(ids[c + 1:c + 1 + after]))
    return out


def test_full_screen_judge_cost() -> None:
    tok = _tokenizer()
    count = ((lambda s: len(tok(s, add_special_tokens=False)["input_ids"])) if tok is not None
             else (lambda s: math.ceil(len(s) / 4)))
    unit = "SmolLM2 tokens" if tok is not None else "chars/4"
    contexts = _contexts(tok, 200)
    per_message_overhead = 4  # role + delimiters in a typical chat template
    print(f"\n[screening] judge cost of a full screen: {D_SAE} features x {K} contexts = {FULL:,} judgments ({unit}; "
          f"contexts of 32+1+8 tokens; prompt {CONVERSATIONAL_SCORE.key}; no dedupe)")
    print(f"{'batch':>6} {'calls':>11} {'prompt tok/call':>16} {'prompt tokens':>15} {'reply tok/call':>15} "
          f"{'vs batch 1':>11}")
    base = None
    for b in (1, 5, 10, 20, 50):
        sizes = []
        for start in range(0, 200 - b + 1, b):
            msgs = conversational_messages(contexts[start:start + b])
            sizes.append(sum(count(m["content"]) + per_message_overhead for m in msgs))
        per_call = statistics.mean(sizes)
        calls = math.ceil(FULL / b)
        total = per_call * calls
        reply = count('{"scores": [' + ", ".join(["75"] * b) + "]}")
        base = base or total
        print(f"{b:>6} {calls:>11,} {per_call:>16.0f} {total:>15,.0f} {reply:>15} {base / total:>10.2f}x")
    assert base is not None


def _stats(seed: int = 0, n_seq: int = 200_000):
    """A FeatureStats for 32,768 features x top-50 with random contents, plus per-sequence labels."""
    import torch

    from interp_sot.features.stats import FeatureStats

    rng = np.random.default_rng(seed)
    vals = -np.sort(-rng.exponential(1.0, (D_SAE, K)), axis=1).astype(np.float32)
    seq = rng.integers(0, n_seq, (D_SAE, K))
    pos = rng.integers(1, 128, (D_SAE, K))
    onset = rng.integers(0, 12, (D_SAE, K))
    dead = rng.random(D_SAE) < 0.02
    vals[dead], seq[dead], pos[dead], onset[dead] = 0.0, -1, -1, -1
    fire = np.where(dead, 0, rng.integers(1, 100_000, D_SAE))
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    tensors = {
        "fire_count": t(fire), "first_n_count": t((fire * rng.random(D_SAE) * 0.3).astype(np.int64)),
        "onset_count": t((fire * rng.random(D_SAE)).astype(np.int64)), "nonfinite_count": t(np.zeros(D_SAE, np.int64)),
        "act_sum": t(fire * rng.random(D_SAE) * 3), "act_sq_sum": t(fire * rng.random(D_SAE) * 9),
        "topk_values": t(vals), "topk_seq": t(seq), "topk_pos": t(pos), "topk_onset": t(onset),
    }
    meta = {"format_version": 1, "d_sae": D_SAE, "top_k": K, "first_n": 4, "onset_n": 4, "n_tokens": n_seq * 128}
    return FeatureStats.from_state(tensors, meta), rng.random(n_seq) < 0.3


def test_table_filter_sampling_32k_features() -> None:
    stats, doc_labels = _stats()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        ratio = ratio_from_labels(stats, doc_labels, k=K)
        table = apply_filter(feature_table(stats, ratio))
        conv = sample_controls(table, n=300, group="conversational", seed=0, exclude=[30939])
        non = sample_controls(table, n=300, group="non_conversational", seed=0, exclude=[30939])
        control_strength(table, non)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    assert len(table) == D_SAE and len(conv) == len(non) == 300
    print(f"\n[screening] label-mode ratio + table + filter + 2x300 controls over {D_SAE} features: "
          f"median {med * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, 7 runs); target < 1000 ms: {'MET' if med < 1.0 else 'NOT MET'}")


class _ServerProcess:
    """The loopback test server (tests/fault_server.py) in its own process, so client and server share no GIL."""

    def __init__(self, tmp_path, latency: float) -> None:
        port_file = tmp_path / f"port-{latency}"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parents[1] / "tests" / "fault_server.py"), "--port-file",
             str(port_file),
             "--latency", str(latency)],
        )
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("loopback server did not start")
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def __enter__(self) -> _ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_judged_contexts_per_second_over_loopback(tmp_path) -> None:
    """Heuristic answers over real HTTP on loopback (server in a subprocess), with and without a simulated
    50 ms model latency per call. Every context is distinct (no dedupe)."""
    n_feat, k = 60, 20
    n_ctx = n_feat * k
    stats = SimpleNamespace(
        topk_values=np.ones((n_feat, k)), topk_seq=np.arange(n_ctx).reshape(n_feat, k),
        topk_pos=np.zeros((n_feat, k), dtype=int), fire_count=np.ones(n_feat),
    )
    contexts = [f"[doc {i}] {c}" for i, c in enumerate(_contexts(None, n_ctx))]
    render = lambda s, p: contexts[s]  # noqa: E731
    rows = []
    for latency in (0.0, 0.05):
        with _ServerProcess(tmp_path, latency) as server:
            for batch, conc in ((1, 1), (1, 8), (10, 1), (10, 8)):
                if latency and batch == 1 and conc == 1:
                    continue  # 1,200 sequential 50 ms calls: a minute for an obvious number (20 contexts/s)
                rates = []
                for _ in range(3):
                    judge = OpenAIJudge(OpenAIConfig(model="m", base_url=server.base_url, max_concurrency=conc))
                    t0 = time.perf_counter()
                    out = ratio_from_judge(stats, render, judge, None, config=RatioConfig(k=k, batch_size=batch))
                    rates.append(n_ctx / (time.perf_counter() - t0))
                    assert out.calls == math.ceil(n_ctx / batch)
                direct = ratio_from_judge(stats, render, HeuristicJudge(), None,
                                          config=RatioConfig(k=k, batch_size=batch))
                np.testing.assert_array_equal(out.ratio, direct.ratio)
                rows.append((latency, batch, conc, statistics.median(rates)))
    print(f"\n[screening] judged contexts/s, OpenAI client -> loopback server process (heuristic answers), "
          f"{n_ctx} distinct contexts, median of 3")
    print(f"{'latency/call':>13} {'batch':>6} {'in flight':>10} {'contexts/s':>11} {'ideal':>7}")
    for latency, batch, conc, rate in rows:
        ideal = f"{batch * conc / latency:.0f}" if latency else "-"
        print(f"{latency * 1000:>10.0f} ms {batch:>6} {conc:>10} {rate:>11.0f} {ideal:>7}")
    rate = dict(((lat, b, c), r) for lat, b, c, r in rows)[(0.05, 10, 8)]
    print(f"  a full screen ({FULL:,} contexts) at that rate (50 ms/call, batch 10, 8 in flight): "
          f"{FULL / rate / 3600:.1f} h")
