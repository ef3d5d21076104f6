"""Conversation ratio: label mode, judge mode, batching, dedupe, thresholds, resume (screening.conversation_ratio)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from fault_server import LoopbackServer
from screening_fakes import brute_force_stats, random_corpus, renderer

from interp_sot.judging.heuristic import HeuristicJudge
from interp_sot.judging.openai_compat import JudgeTransportError, OpenAIConfig, OpenAIJudge
from interp_sot.judging.prompts.conversational import split_excerpts
from interp_sot.screening.conversation_ratio import (
    RatioConfig,
    parse_scores,
    ratio_from_judge,
    ratio_from_labels,
    resolve_features,
    top_contexts,
)

K = 5


@pytest.fixture(scope="module")
def corpus():
    acts, onset, conv = random_corpus(seed=3)
    return brute_force_stats(acts, onset, k=K), acts, conv


def reference_label_ratio(acts: np.ndarray, conv: np.ndarray, f: int, k: int) -> float:
    entries = sorted((-acts[s, p, f], s, p) for s in range(acts.shape[0]) for p in range(acts.shape[1])
                     if acts[s, p, f] > 0)[:k]
    return float(np.mean([conv[s] for _, s, _ in entries])) if entries else math.nan


def test_label_ratio_matches_brute_force(corpus) -> None:
    stats, acts, conv = corpus
    for k in (1, 3, K):
        out = ratio_from_labels(stats, conv, k=k)
        ref = np.array([reference_label_ratio(acts, conv, f, k) for f in range(acts.shape[2])])
        np.testing.assert_allclose(out.ratio, ref, equal_nan=True)
        assert np.isnan(out.ratio[-1]) and out.n_contexts[-1] == 0  # the dead feature
    sub = ratio_from_labels(stats, conv, features=[4, 0], k=K)
    assert sub.features.tolist() == [4, 0]
    np.testing.assert_allclose(sub.ratio, [reference_label_ratio(acts, conv, f, K) for f in (4, 0)])


def test_judge_ratio_equals_label_ratio_when_the_judge_agrees(corpus, tmp_path) -> None:
    stats, _, conv = corpus
    by_labels = ratio_from_labels(stats, conv, k=K)
    by_judge = ratio_from_judge(stats, renderer(conv), HeuristicJudge(), tmp_path / "s.jsonl", config=RatioConfig(k=K))
    np.testing.assert_array_equal(by_judge.ratio, by_labels.ratio)
    np.testing.assert_array_equal(by_judge.n_contexts, by_labels.n_contexts)


class ScoreInTextJudge:
    """Scores each excerpt with the number written in it as 'score=N'; counts calls and excerpts."""

    name = "score-in-text"

    def __init__(self, fail_after: int | None = None, garbage_calls: tuple[int, ...] = ()) -> None:
        self.calls = 0
        self.excerpts = 0
        self.batch_sizes: list[int] = []
        self.fail_after = fail_after
        self.garbage_calls = garbage_calls

    def complete(self, messages):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise JudgeTransportError("server gone")
        self.calls += 1
        if self.calls in self.garbage_calls:
            return "I refuse."
        texts = split_excerpts(messages[-1]["content"])
        self.excerpts += len(texts)
        self.batch_sizes.append(len(texts))
        return json.dumps({"scores": [float(re.search(r"score=([\d.]+)", t).group(1)) for t in texts]})


def score_stats():
    """3 features x 4 contexts; scores chosen around the threshold; feature 2 shares contexts with feature 0."""
    seqs = np.array([[0, 1, 2, 3], [4, 5, 6, -1], [0, 1, 2, 3]])
    vals = np.where(seqs >= 0, 1.0, 0.0)
    pos = np.zeros_like(seqs)
    scores = {0: 50, 1: 49.9, 2: 100, 3: 0, 4: 75, 5: 10, 6: 51}

    class S:
        topk_values, topk_seq, topk_pos = vals, seqs, pos
        fire_count = np.array([4, 3, 4])

    return S(), (lambda s, p: f"ctx {s} score={scores[s]}")


def test_threshold_batching_and_dedupe(tmp_path) -> None:
    stats, render = score_stats()
    judge = ScoreInTextJudge()
    out = ratio_from_judge(stats, render, judge, config=RatioConfig(k=4, batch_size=3))
    # feature 0: scores 50, 49.9, 100, 0 -> 2 of 4 are >= 50; feature 1: 75, 10, 51 -> 2 of 3
    np.testing.assert_allclose(out.ratio, [0.5, 2 / 3, 0.5])
    assert out.n_contexts.tolist() == [4, 3, 4]
    assert judge.excerpts == 7 and judge.batch_sizes == [3, 3, 1] and out.calls == 3  # 11 slots, 7 distinct texts
    strict = ratio_from_judge(stats, render, ScoreInTextJudge(), config=RatioConfig(k=4, score_threshold=50.5))
    np.testing.assert_allclose(strict.ratio, [0.25, 2 / 3, 0.25])
    one = ScoreInTextJudge()
    ratio_from_judge(stats, render, one, config=RatioConfig(k=2, batch_size=1))
    assert one.calls == 4 and one.batch_sizes == [1, 1, 1, 1]  # k=2: contexts 0, 1, 4, 5


def test_resume_after_failure_sends_only_the_rest(tmp_path) -> None:
    stats, render = score_stats()
    store = tmp_path / "scores.jsonl"
    with pytest.raises(JudgeTransportError):
        ratio_from_judge(stats, render, ScoreInTextJudge(fail_after=2), store, config=RatioConfig(k=4, batch_size=2))
    assert len(store.read_text().splitlines()) == 4  # two batches of two were saved before the failure
    resumed = ScoreInTextJudge()
    out = ratio_from_judge(stats, render, resumed, store, config=RatioConfig(k=4, batch_size=2))
    assert resumed.excerpts == 3
    np.testing.assert_allclose(out.ratio, [0.5, 2 / 3, 0.5])
    again = ScoreInTextJudge()
    ratio_from_judge(stats, render, again, store, features=[1], config=RatioConfig(k=4, batch_size=2))
    assert again.calls == 0  # a subset rerun reuses everything


def test_invalid_batches_are_skipped_counted_and_retried_later(tmp_path) -> None:
    stats, render = score_stats()
    store = tmp_path / "scores.jsonl"
    bad = ScoreInTextJudge(garbage_calls=(1, 2))  # first batch: both attempts are garbage
    out = ratio_from_judge(stats, render, bad, store, config=RatioConfig(k=4, batch_size=3, retries=1))
    assert out.failed == 3
    assert out.n_contexts.tolist() == [1, 3, 1]  # contexts 0-2 unjudged
    with pytest.raises(Exception, match="no valid JSON"):
        ratio_from_judge(stats, render, ScoreInTextJudge(garbage_calls=(1, 2)), None,
                         config=RatioConfig(k=4, batch_size=3, retries=1, on_invalid="raise"))
    fixed = ratio_from_judge(stats, render, ScoreInTextJudge(), store, config=RatioConfig(k=4, batch_size=3))
    np.testing.assert_allclose(fixed.ratio, [0.5, 2 / 3, 0.5])
    assert fixed.calls == 1


def test_over_http_matches_direct_heuristic(corpus, tmp_path) -> None:
    stats, _, conv = corpus
    direct = ratio_from_judge(stats, renderer(conv), HeuristicJudge(), config=RatioConfig(k=K, batch_size=4))
    with LoopbackServer() as server:
        judge = OpenAIJudge(OpenAIConfig(model="m", base_url=server.base_url, max_concurrency=3))
        served = ratio_from_judge(stats, renderer(conv), judge, tmp_path / "s.jsonl",
                                  config=RatioConfig(k=K, batch_size=4))
        assert server.stats()["completions"] == served.calls
    np.testing.assert_array_equal(served.ratio, direct.ratio)


def test_parse_scores_and_bad_input(corpus) -> None:
    assert parse_scores({"scores": [0, 100, 49.5]}, 3) == [0.0, 100.0, 49.5]
    assert parse_scores([1, 2], 2) == [1.0, 2.0]
    for bad, msg in [({"scores": [1]}, "exactly 2"), ({"scores": [1, 101]}, "0 to 100"),
                     ({"scores": [1, True]}, "0 to 100"), ({"s": 1}, "list of numbers"),
                     ({"scores": [1, "7"]}, "0 to")]:
        with pytest.raises(ValueError, match=msg):
            parse_scores(bad, 2)
    stats, _, conv = corpus
    with pytest.raises(ValueError, match="feature index 16 out of range for an SAE with 16 features"):
        resolve_features(16, [3, 16])
    with pytest.raises(ValueError, match="no top-k contexts"):
        top_contexts(object(), np.arange(2), 5)

    class NoK:
        topk_values = topk_seq = topk_pos = np.zeros((4, 0))

    with pytest.raises(ValueError, match="collect with k > 0"):
        ratio_from_labels(NoK(), [True])
    with pytest.raises(ValueError, match="only 3 labels given"):
        ratio_from_labels(stats, conv[:3])
    with pytest.raises(ValueError, match="k must be >= 1"):
        RatioConfig(k=0)
