"""The judge path against a real OpenAI-compatible server: ``transformers serve`` on SmolLM2-135M-Instruct.

SmolLM2 often answers the shipped prompts with prose instead of JSON: those replies must be validated, re-asked up
to the limit and left unjudged (missing, never a score of 0), the run must complete, and a rerun must send nothing
to the server. Every reply must be real text (non-empty, with completion tokens in the server's usage). With a
choice prompt file (``tests/data/judge_prompts``) and the server's token constraint (``generation_config``), the
model's verdicts validate, and each one is followed from the reply through the score store into the table.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from judge_servers import ChoiceConstraint, RecordingJudge, smollm2_server  # noqa: F401 - the session fixture
from screening_fakes import brute_force_stats

from interp_sot.behaviours.judge_coding import TraceToCode, code_traces, coding_columns, reply_tokens
from interp_sot.behaviours.prompts import COGNITIVE
from interp_sot.data import read_screening_corpus
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE, format_excerpts
from interp_sot.judging.prompts.files import load_prompt_files
from interp_sot.judging.spec import make_judge
from interp_sot.judging.structured import parse_json_reply
from interp_sot.screening.batch_scoring import default_reply_tokens
from interp_sot.screening.conversation_ratio import RatioConfig, parse_scores
from interp_sot.screening.judge_validation import judge_agreement
from interp_sot.screening.score_store import ScoreStore
from interp_sot.screening.screen import load_table, screen
from interp_sot.stages.screen import SCREEN_PROMPTS

pytestmark = pytest.mark.integration

FEATURES = [0, 1, 2]
CONFIG = RatioConfig(k=4, batch_size=4, retries=1)
WINDOW = 160
CHOICE_PROMPT = Path(__file__).parent / "data" / "judge_prompts" / "conversational_choice.txt"
"""A ``--prompt-file conversational_score=...`` that asks for one of two fixed replies."""
CHOICES = ['{"scores": [100]}', '{"scores": [0]}']


def assert_real_replies(recorder: RecordingJudge, sent: int) -> None:
    """Every request got text from the model: non-empty replies, and completion tokens counted by the server."""
    assert len(recorder.calls) == sent > 0
    assert all(reply.strip() for reply in recorder.replies), recorder.replies
    assert recorder.usage.completion_tokens >= sent  # at least one token per reply, as the server reports it


def screen_verdict(messages: list[dict[str, str]], reply: str) -> list[float] | None:
    """The scores the product's parser reads from ``reply`` to a screening request (None: not valid)."""
    n = len(re.findall(r"^### Excerpt \d+$", messages[1]["content"], flags=re.MULTILINE))
    try:
        return parse_json_reply(reply, lambda obj: parse_scores(obj, n))
    except ValueError:
        return None


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


def test_screen_through_transformers_serve_completes_and_reruns_free(smollm2_server, tmp_path,  # noqa: F811
                                                                      record_property) -> None:
    stats, render, labels = corpus_contexts()
    served = smollm2_server
    before = served.completions()
    live = RecordingJudge(make_judge(served.spec))
    judge = CachedJudge(live, tmp_path / "judge_cache.jsonl")
    table = screen(stats, judge=judge, render=render, features=FEATURES, work_dir=tmp_path, ratio_config=CONFIG)
    sent = served.completions() - before
    # every request reached the server exactly once (no re-sends), got a real reply, within its reply budget
    assert sent == judge.misses == live.usage.requests > 0 and live.usage.retries == 0
    assert_real_replies(live, sent)
    assert live.usage.completion_tokens <= sent * default_reply_tokens(CONFIG.batch_size)
    valid = sum(screen_verdict(messages, reply) is not None for messages, reply in live.calls)
    record_property("validated_replies", f"{valid}/{sent}")  # the shipped prompt: SmolLM2 mostly answers in prose
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


def test_behaviour_coding_through_transformers_serve(smollm2_server, tmp_path, record_property) -> None:  # noqa: F811
    served = smollm2_server
    items = [
        TraceToCode("a", "First get 50 from 25 * 2. Let me check: 25 * 2 = 50, yes. Then 50 + 4 = 54.", "reach 54"),
        TraceToCode("b", "Try 7 * 8 = 56. That doesn't work; go back and try 9 * 6 = 54 instead.", "reach 54"),
    ]
    before = served.completions()
    live = RecordingJudge(make_judge(served.spec))
    judge = CachedJudge(live, tmp_path / "cache.jsonl")
    codings = code_traces(judge, items, ["cognitive"], out_path=tmp_path / "behaviours.jsonl", retries=1)
    sent = served.completions() - before
    assert len(items) <= sent == judge.misses <= 2 * len(items)
    assert_real_replies(live, sent)
    assert live.usage.completion_tokens <= sent * reply_tokens(COGNITIVE)
    record_property("validated_codings", f"{sum(c.ok for c in codings)}/{len(codings)} ({sent} replies)")
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


def test_constrained_verdicts_from_the_server_land_in_the_ratio_table(smollm2_server, tmp_path,  # noqa: F811
                                                                       record_property) -> None:
    """A prompt file (``--prompt-file conversational_score=PATH``) plus the server's token constraint: the 135M
    model's replies validate, and each parsed verdict is the score the store keeps and the table counts."""
    stats, render, _ = corpus_contexts()
    served = smollm2_server
    features = FEATURES[:2]
    config = RatioConfig(k=CONFIG.k, batch_size=1, retries=1)
    template = load_prompt_files([f"conversational_score={CHOICE_PROMPT}"], SCREEN_PROMPTS)["conversational_score"]
    assert template.version.startswith("file-") and "{n}" in template.user
    before = served.completions()
    constraint = ChoiceConstraint(Path(served.model), CHOICES)
    live = RecordingJudge(make_judge(served.spec, extra_body=constraint.extra_body()))
    judge = CachedJudge(live, tmp_path / "judge_cache.jsonl")
    table = screen(stats, judge=judge, render=render, features=features, work_dir=tmp_path, ratio_config=config,
                   template=template)
    sent = served.completions() - before
    assert_real_replies(live, sent)
    verdicts = [screen_verdict(messages, reply) for messages, reply in live.calls]
    valid = [v for v in verdicts if v is not None]
    record_property("validated_replies", f"{len(valid)}/{len(verdicts)}")
    assert len(valid) >= max(1, len(verdicts) // 2), live.replies  # measured: every reply validates

    # each validated verdict is what the store holds for that excerpt (scoped to this prompt file's version)...
    store = ScoreStore(tmp_path / "conversation_scores.jsonl", judge.name, template.key)
    texts_of = {f: [render(int(s), int(p))
                    for s, p, v in zip(stats.topk_seq[f], stats.topk_pos[f], stats.topk_values[f], strict=True)
                    if s >= 0 and v > 0] for f in features}
    verdict_of: dict[str, float] = {}
    for (messages, _), verdict in zip(live.calls, verdicts, strict=True):
        (text,) = {t for ts in texts_of.values() for t in ts if format_excerpts([t]) + "\n\n" in messages[1]["content"]}
        if verdict is not None:
            verdict_of[text] = verdict[0]
    assert verdict_of and all(store.get(text) == score for text, score in verdict_of.items())
    # ...and the table's ratio is computed from exactly those verdicts, feature by feature
    for f in features:
        judged = [verdict_of[t] for t in texts_of[f] if t in verdict_of]
        assert table.loc[f, "n_contexts"] == len(judged) > 0
        assert table.loc[f, "conversation_ratio"] == pytest.approx(np.mean([s >= 50 for s in judged]))
    saved = load_table(tmp_path / "screen.parquet")  # the table the screen wrote is the one checked above
    np.testing.assert_array_equal(saved.loc[features, "conversation_ratio"], table.loc[features, "conversation_ratio"])
