"""The judge path against a real OpenAI-compatible server: ``transformers serve`` on SmolLM2-135M-Instruct.

SmolLM2 often answers with prose instead of JSON: those replies must be validated, re-asked up to the limit and
left unjudged (missing, never a score of 0), the run must complete, and a rerun must send nothing to the server.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from judge_servers import smollm2_server  # noqa: F401 - the session fixture
from screening_fakes import brute_force_stats

from interp_sot.behaviours.judge_coding import TraceToCode, code_traces, coding_columns, reply_tokens
from interp_sot.behaviours.prompts import COGNITIVE
from interp_sot.data import read_screening_corpus
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE
from interp_sot.judging.spec import make_judge
from interp_sot.screening.batch_scoring import default_reply_tokens
from interp_sot.screening.conversation_ratio import RatioConfig
from interp_sot.screening.judge_validation import judge_agreement
from interp_sot.screening.score_store import ScoreStore
from interp_sot.screening.screen import screen

pytestmark = pytest.mark.integration

FEATURES = [0, 1, 2]
CONFIG = RatioConfig(k=4, batch_size=4, retries=1)
WINDOW = 160


def corpus_contexts():
    """Stats whose top contexts are windows of real documents of the shipped corpus (3 conversational, 3 not)."""
    docs = list(read_screening_corpus())
    chosen = [d for d in docs if d["conversational"]][:3] + [d for d in docs if not d["conversational"]][:3]
    rng = np.random.default_rng(0)
    acts = rng.random((len(chosen), 3, len(FEATURES))) * (rng.random((len(chosen), 3, len(FEATURES))) < 0.6)
    stats = brute_force_stats(acts, np.zeros(acts.shape[:2], dtype=np.int64), k=CONFIG.k)
    labels = np.array([d["conversational"] for d in chosen])

    def render(seq: int, pos: int) -> str:
        text = " ".join(chosen[seq]["text"].split())
        start = pos * WINDOW
        window = text[start:start + WINDOW]
        head, _, rest = window.partition(" ")
        return f"<<{head}>> {rest}"

    return stats, render, labels


def test_screen_through_transformers_serve_completes_and_reruns_free(smollm2_server, tmp_path) -> None:  # noqa: F811
    stats, render, labels = corpus_contexts()
    served = smollm2_server
    before = served.completions()
    judge = CachedJudge(make_judge(served.spec), tmp_path / "judge_cache.jsonl")
    table = screen(stats, judge=judge, render=render, features=FEATURES, work_dir=tmp_path, ratio_config=CONFIG)
    sent = served.completions() - before
    live = judge.inner
    # every request reached the server exactly once (no re-sends), within its reply budget
    assert sent == judge.misses == live.usage.requests > 0 and live.usage.retries == 0
    assert live.usage.completion_tokens <= sent * default_reply_tokens(CONFIG.batch_size)
    # invalid replies leave contexts unjudged: the ratio counts only validated scores, never a 0 for a failure
    store = ScoreStore(tmp_path / "conversation_scores.jsonl", judge.name, CONVERSATIONAL_SCORE.key)
    for f in FEATURES:
        texts = [render(int(s), int(p)) for s, p, v in zip(stats.topk_seq[f], stats.topk_pos[f], stats.topk_values[f],
                                                             strict=True) if s >= 0 and v > 0]
        scores = [store.get(t) for t in texts]
        judged = [s for s in scores if s is not None]
        assert table.loc[f, "n_contexts"] == len(judged)
        if judged:
            assert table.loc[f, "conversation_ratio"] == pytest.approx(np.mean([s >= 50 for s in judged]))
        else:
            assert math.isnan(table.loc[f, "conversation_ratio"])
    n_batches = -(-len({render(int(s), int(p)) for f in FEATURES for s, p in
                        zip(stats.topk_seq[f], stats.topk_pos[f], strict=True) if s >= 0}) // CONFIG.batch_size)
    assert n_batches <= sent <= n_batches * (CONFIG.retries + 1)  # each batch: one call plus at most `retries`
    validation = judge_agreement(stats, render, labels, store, features=FEATURES, k=CONFIG.k)
    assert validation.n + validation.unjudged == len({(int(s), int(p)) for f in FEATURES for s, p, v in zip(
        stats.topk_seq[f], stats.topk_pos[f], stats.topk_values[f], strict=True) if s >= 0 and v > 0})

    # the rerun resumes from the stores: nothing reaches the server, and the table is the same
    after = served.completions()
    rerun = CachedJudge(make_judge(served.spec), tmp_path / "judge_cache.jsonl")
    again = screen(stats, judge=rerun, render=render, features=FEATURES, work_dir=tmp_path, ratio_config=CONFIG)
    assert served.completions() == after and rerun.misses == 0
    np.testing.assert_array_equal(again["n_contexts"].to_numpy(), table["n_contexts"].to_numpy())
    np.testing.assert_array_equal(again["conversation_ratio"].to_numpy(), table["conversation_ratio"].to_numpy())


def test_behaviour_coding_through_transformers_serve(smollm2_server, tmp_path) -> None:  # noqa: F811
    served = smollm2_server
    items = [
        TraceToCode("a", "First get 50 from 25 * 2. Let me check: 25 * 2 = 50, yes. Then 50 + 4 = 54.", "reach 54"),
        TraceToCode("b", "Try 7 * 8 = 56. That doesn't work; go back and try 9 * 6 = 54 instead.", "reach 54"),
    ]
    before = served.completions()
    judge = CachedJudge(make_judge(served.spec), tmp_path / "cache.jsonl")
    codings = code_traces(judge, items, ["cognitive"], out_path=tmp_path / "behaviours.jsonl", retries=1)
    sent = served.completions() - before
    assert len(items) <= sent == judge.misses <= 2 * len(items)
    assert judge.inner.usage.completion_tokens <= sent * reply_tokens(COGNITIVE)
    columns = coding_columns(codings)
    for coding in codings:
        if coding.ok:  # a validated reply: whole counts for every category
            assert set(coding.counts) == set(COGNITIVE.categories)
        else:  # an invalid one: recorded as invalid, with no counts, and missing (NaN) in the tables
            assert coding.counts is None and "no valid JSON after 2 attempts" in coding.error
            assert all(math.isnan(columns[coding.key][f"cognitive.{c}"]) for c in COGNITIVE.categories)
    # rerun from scratch (the codings log deleted): the reply cache answers everything
    (tmp_path / "behaviours.jsonl").unlink()
    after = served.completions()
    rerun = CachedJudge(make_judge(served.spec), tmp_path / "cache.jsonl")
    assert code_traces(rerun, items, ["cognitive"], out_path=tmp_path / "behaviours.jsonl", retries=1) == codings
    assert served.completions() == after and rerun.misses == 0
