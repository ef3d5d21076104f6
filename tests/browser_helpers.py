"""Small FeatureStats with contexts, screen tables and sweep records for the browser and Neuronpedia tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from features_helpers import char_tokenizer

from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats, TokenInfo

TEXTS = [
    "Oh! I see, said the king. Wait, what now?",
    "Import the module, then call run() twice.",
    "Hello there. Oh, you again? Yes, me again!",
    "The manual says: set the flag, then reboot.",
    "Well, I think so. Oh no, not again, she said.",
    "Install it with apt, then check the logs.",
]


def small_stats(d_sae: int = 12, top_k: int = 5, seed: int = 0, contexts: bool = True) -> tuple[FeatureStats, Any]:
    """Stats of random sparse activations over :data:`TEXTS` (char tokens), with their context store."""
    tok = char_tokenizer()
    g = torch.Generator().manual_seed(seed)
    stats = FeatureStats(d_sae, top_k=top_k, info={"model": "tiny", "layer": 3})
    if contexts:
        stats.contexts = ContextStore(tok)
    for s, text in enumerate(TEXTS):
        ids = tok(text)["input_ids"]
        n = len(ids) - 1  # BOS not counted
        acts = torch.rand(n, d_sae, generator=g) * 4
        acts[acts < 2.6] = 0
        acts[:, d_sae - 1] = 0  # one feature never fires
        info = TokenInfo(torch.full((n,), s), torch.arange(1, n + 1), torch.arange(n), torch.arange(n) % 7)
        stats.update(acts, info)
        if contexts:
            stats.contexts.add(s, ids, {"conversational": s % 2 == 0, "source": "plays" if s % 2 == 0 else "docs"})
    return stats, tok


def screen_table(stats: FeatureStats) -> Any:
    from interp_sot.screening.screen import screen

    labels = {0: "exclamation after Oh", 3: "commas in lists"}
    return screen(stats, doc_labels=stats.contexts.sequence_labels("conversational"), labels=labels)


def sweep_records(feature: int, strengths: tuple[float, ...] = (-5.0, 0.0, 5.0), n: int = 2) -> list[dict[str, Any]]:
    """Records with the fields of ``experiments.records.SweepRecord`` (completion text names its strength)."""
    out = []
    for s in strengths:
        for i in range(n):
            pid = f"p{i}"
            out.append({
                "key": f"{feature}|{s!r}|{pid}", "feature": feature, "group": None, "strength": s, "problem_id": pid,
                "nums": [1, 2, 3], "target": 6, "prompt": "Using 1 2 3 make 6",
                "completion": f"<think>strength {s} sample {i} <b>bold</b></think>", "finish_reason": "stop",
                "n_prompt_tokens": 8, "n_new_tokens": 12, "answer": "1+2+3", "answer_source": "answer",
                "correct": bool(i % 2 == 0 and s > 0), "reason": "ok", "direction_sha": "0" * 16, "settings": {},
                "batch_seed": 0, "batch_size": 4})
    return out


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
