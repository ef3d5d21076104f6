"""Judge validation against document labels: accuracy and Cohen's kappa over judged contexts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from screening_fakes import brute_force_stats, random_corpus

from interp_sot.judging.heuristic import HeuristicJudge, conversational_score
from interp_sot.screening.conversation_ratio import RatioConfig, ratio_from_judge
from interp_sot.screening.judge_validation import agreement, cohen_kappa, judge_agreement
from interp_sot.screening.score_store import ScoreStore


def test_kappa_matches_hand_computed_values() -> None:
    # p_o = 6/8, both raters say yes half the time: p_e = 0.5, kappa = (0.75 - 0.5) / 0.5
    assert cohen_kappa([1, 1, 0, 0, 1, 0, 1, 0], [1, 0, 0, 0, 1, 1, 1, 0]) == pytest.approx(0.5)
    # p_o = 7/10; yes rates 0.5 and 0.4: p_e = 0.5*0.4 + 0.5*0.6 = 0.5, kappa = 0.2 / 0.5
    assert cohen_kappa([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]) == pytest.approx(0.4)
    assert cohen_kappa([1, 0, 1], [0, 1, 0]) == pytest.approx(-0.8)  # p_o 0, p_e 4/9: -4/9 / (5/9)
    assert math.isnan(cohen_kappa([1, 1], [1, 1])) and math.isnan(cohen_kappa([], []))
    out = agreement([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0, 0, 1])
    assert out.n == 10 and out.accuracy == pytest.approx(0.7)
    assert out.confusion.tolist() == [[4, 2], [1, 3]]  # rows label no/yes, columns judge no/yes
    with pytest.raises(ValueError, match="equal length"):
        cohen_kappa([1, 0], [1])


def test_judge_agreement_over_the_judged_contexts(tmp_path) -> None:
    acts, onset, conv = random_corpus(seed=5)
    stats = brute_force_stats(acts, onset, k=4)
    words = {True: "Oh, did you see that? I'm sure you did!", False: "The table lists 12 values [3]."}

    def render(seq: int, pos: int) -> str:
        # ~1 in 4 documents reads against its label, so the judge and the labels disagree on some contexts
        flip = (seq * 7 + pos) % 4 == 0
        return f"{words[bool(conv[seq]) != flip]} <<tok{pos}>> doc {seq}"

    store_path = tmp_path / "scores.jsonl"
    judge = HeuristicJudge()
    ratio_from_judge(stats, render, judge, store_path, features=[0, 1, 2, 3], config=RatioConfig(k=4, batch_size=3))
    store = ScoreStore(store_path, judge.name, "conversational_score@1")
    out = judge_agreement(stats, render, conv, store, features=[0, 1, 2, 3], k=4)
    # reference: every distinct (seq, pos) among these features' top-4 contexts, judged by rule directly
    pairs = {(int(stats.topk_seq[f, j]), int(stats.topk_pos[f, j])) for f in range(4) for j in range(4)
             if stats.topk_seq[f, j] >= 0 and stats.topk_values[f, j] > 0}
    calls = [conversational_score(render(s, p)) >= 50 for s, p in sorted(pairs)]
    labels = [bool(conv[s]) for s, _ in sorted(pairs)]
    assert out.n == len(pairs) and out.unjudged == 0
    assert out.accuracy == pytest.approx(np.mean(np.array(calls) == np.array(labels)))
    assert out.kappa == pytest.approx(cohen_kappa(calls, labels))
    assert 0 < out.accuracy < 1
    # contexts never judged (other features) count as unjudged, not as disagreements
    more = judge_agreement(stats, render, conv, store, features=None, k=4)
    assert more.n == out.n and more.unjudged > 0
