"""Brute-force feature statistics from a dense activation array, for screening tests (a reference, not a copy
of interp_sot.features)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FakeStats:
    n_tokens: int
    fire_count: np.ndarray
    act_sum: np.ndarray
    act_sq_sum: np.ndarray
    max_act: np.ndarray
    first_n_count: np.ndarray
    onset_count: np.ndarray
    topk_values: np.ndarray
    topk_seq: np.ndarray
    topk_pos: np.ndarray
    topk_onset: np.ndarray
    first_n: int = 4
    onset_n: int = 4


def brute_force_stats(acts: np.ndarray, onset_dist: np.ndarray, k: int, first_n: int = 4, onset_n: int = 4
                      ) -> FakeStats:
    """``acts``: [n_seq, seq_len, d_sae] (>= 0); ``onset_dist``: [n_seq, seq_len] distance from the sentence onset."""
    n_seq, seq_len, d = acts.shape
    fires = acts > 0
    first = np.zeros((n_seq, seq_len), dtype=bool)
    first[:, :first_n] = True
    tv = np.zeros((d, k))
    ts = np.full((d, k), -1, dtype=np.int64)
    tp = np.full((d, k), -1, dtype=np.int64)
    to = np.full((d, k), -1, dtype=np.int64)
    for f in range(d):
        entries = [(-acts[s, p, f], s, p) for s in range(n_seq) for p in range(seq_len) if acts[s, p, f] > 0]
        for j, (v, s, p) in enumerate(sorted(entries)[:k]):
            tv[f, j], ts[f, j], tp[f, j], to[f, j] = -v, s, p, onset_dist[s, p]
    return FakeStats(
        n_tokens=n_seq * seq_len,
        fire_count=fires.sum(axis=(0, 1)),
        act_sum=acts.sum(axis=(0, 1)),
        act_sq_sum=(acts**2).sum(axis=(0, 1)),
        max_act=acts.max(axis=(0, 1)),
        first_n_count=(fires & first[:, :, None]).sum(axis=(0, 1)),
        onset_count=(fires & (onset_dist < onset_n)[:, :, None]).sum(axis=(0, 1)),
        topk_values=tv,
        topk_seq=ts,
        topk_pos=tp,
        topk_onset=to,
        first_n=first_n,
        onset_n=onset_n,
    )


def random_corpus(seed: int = 0, n_seq: int = 12, seq_len: int = 10, d: int = 16, density: float = 0.25):
    """Random sparse activations, onset distances and per-sequence conversational labels."""
    rng = np.random.default_rng(seed)
    acts = rng.exponential(1.0, (n_seq, seq_len, d)) * (rng.random((n_seq, seq_len, d)) < density)
    acts[:, :, d - 1] = 0.0  # one dead feature
    onset = rng.integers(0, 9, (n_seq, seq_len))
    conversational = rng.random(n_seq) < 0.5
    return acts, onset, conversational


CONVERSATIONAL_TEXT = "User: Oh, did you see that? I'm amazed, thanks!"
FORMAL_TEXT = "Table {s} lists the measured values, as reported by Smith et al."


def renderer(conversational: np.ndarray):
    """render(seq, pos): a text the heuristic judge scores >= 50 iff the sequence is conversational."""

    def render(seq: int, pos: int) -> str:
        base = CONVERSATIONAL_TEXT if conversational[seq] else FORMAL_TEXT.format(s=seq)
        return f"[doc {seq}] {base} <<tok{pos}>>"

    return render
