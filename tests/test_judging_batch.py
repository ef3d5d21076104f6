"""Provider batch files: write every uncached request, read a results file back, finish with no live call."""

from __future__ import annotations

import json

import numpy as np
import pytest
from screening_fakes import brute_force_stats, random_corpus, renderer

from interp_sot.judging.batch import (
    BATCH_ENDPOINT,
    DeferredJudge,
    estimate_tokens,
    read_batch_ids,
    read_batch_results,
    write_batch_file,
)
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.heuristic import HeuristicJudge
from interp_sot.judging.openai_compat import OpenAIConfig, OpenAIJudge
from interp_sot.screening.batch_scoring import default_reply_tokens
from interp_sot.screening.conversation_ratio import RatioConfig, ratio_from_judge

K = 5
CONFIG = RatioConfig(k=K, batch_size=4)


class MustNotCall:
    """A live judge with the batch judge's name that fails the test if anything reaches it."""

    name = "openai:judge-model"

    def complete(self, messages):
        raise AssertionError("a live call was made")


def results_line(key: str, body: dict) -> dict:
    """One line of an OpenAI Batch API results file, answered by the heuristic judge."""
    reply = HeuristicJudge().complete(body["messages"])
    return {"id": f"batch_req_{key[:8]}", "custom_id": key, "error": None,
            "response": {"status_code": 200, "request_id": "r", "body": {
                "id": "c", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}}


def write_lines(path, lines: list) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def test_batch_route_completes_the_screen_with_no_live_call(tmp_path) -> None:
    acts, onset, conv = random_corpus(seed=3)
    stats, render = brute_force_stats(acts, onset, k=K), renderer(conv)
    direct = ratio_from_judge(stats, render, HeuristicJudge(), None, config=CONFIG)
    # the judge the user named; it is never contacted (nothing listens on port 9)
    live = OpenAIJudge(OpenAIConfig(model="judge-model", base_url="http://127.0.0.1:9/v1"))
    cache_path, store = tmp_path / "judge_cache.jsonl", tmp_path / "scores.jsonl"

    # 1. a run that records instead of calling: every item stays unjudged (missing, not zero)
    deferred = DeferredJudge(CachedJudge(live, cache_path))
    first = ratio_from_judge(stats, render, deferred, store, config=CONFIG)
    assert first.calls == 0 and np.isnan(first.ratio).all() and (first.n_contexts == 0).all()
    filled = stats.topk_seq >= 0
    n_texts = len({render(s, p) for s, p in zip(stats.topk_seq[filled], stats.topk_pos[filled], strict=True)})
    n_calls = -(-n_texts // CONFIG.batch_size)
    assert len(deferred.requests) == n_calls

    summary = write_batch_file(deferred.requests, tmp_path / "batch.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "batch.jsonl").read_text().splitlines()]
    assert summary.requests == len(lines) == n_calls
    assert summary.prompt_tokens == sum(estimate_tokens(m["content"]) for x in lines for m in x["body"]["messages"])
    assert summary.max_reply_tokens == sum(x["body"]["max_tokens"] for x in lines)
    for x in lines:
        assert x["method"] == "POST" and x["url"] == BATCH_ENDPOINT
        assert x["custom_id"] == deferred.cache.key(x["body"]["messages"])  # custom_id = the reply-cache key
        assert x["body"]["model"] == "judge-model" and x["body"]["temperature"] == 0.0
        n_excerpts = x["body"]["messages"][1]["content"].count("### Excerpt ")
        assert x["body"]["max_tokens"] == default_reply_tokens(n_excerpts)  # sized to the prompt, not 1,024
    assert read_batch_ids(tmp_path / "batch.jsonl") == [x["custom_id"] for x in lines]

    # 2. the provider's results: one failed line, one HTTP 500, one line missing, one unreadable line
    answered = [results_line(x["custom_id"], x["body"]) for x in lines]
    failed_key, status_key, missing_key = (x["custom_id"] for x in lines[:3])
    answered[0] = {"id": "b0", "custom_id": failed_key, "response": None,
                   "error": {"code": "invalid_request", "message": "bad"}}
    answered[1]["response"]["status_code"] = 500
    del answered[2]
    write_lines(tmp_path / "results.jsonl", [*answered, '{"truncated": '])
    cache = CachedJudge(live, cache_path)
    imported = read_batch_results(tmp_path / "results.jsonl", cache, requests=tmp_path / "batch.jsonl")
    assert imported.stored == n_calls - 3 and imported.already == 0
    assert sorted(imported.failed) == sorted([failed_key, status_key])
    assert "invalid_request" in imported.failed[failed_key] and "HTTP 500" in imported.failed[status_key]
    assert imported.missing == [missing_key] and imported.bad_lines == [n_calls]  # the last line (1-based)
    again = read_batch_results(tmp_path / "results.jsonl", CachedJudge(live, cache_path))
    assert again.stored == 0 and again.already == n_calls - 3  # reading twice stores nothing twice

    # 3. rerun in batch mode: only the three unanswered requests are written again
    deferred = DeferredJudge(CachedJudge(live, cache_path))
    partial = ratio_from_judge(stats, render, deferred, store, config=CONFIG)
    assert sorted(deferred.requests) == sorted([failed_key, status_key, missing_key])
    assert 0 < int(partial.n_contexts.sum()) < int(direct.n_contexts.sum())
    write_batch_file(deferred.requests, tmp_path / "batch2.jsonl")
    retry = [json.loads(x) for x in (tmp_path / "batch2.jsonl").read_text().splitlines()]
    write_lines(tmp_path / "results2.jsonl", [results_line(x["custom_id"], x["body"]) for x in retry])
    assert read_batch_results(tmp_path / "results2.jsonl", CachedJudge(live, cache_path)).stored == 3

    # 4. the screen completes from the cache alone, equal to judging live
    final = ratio_from_judge(stats, render, CachedJudge(MustNotCall(), cache_path), store, config=CONFIG)
    np.testing.assert_array_equal(final.ratio, direct.ratio)
    np.testing.assert_array_equal(final.n_contexts, direct.n_contexts)
    assert DeferredJudge(CachedJudge(live, cache_path)).requests == {}


def test_batch_file_edge_cases(tmp_path) -> None:
    assert write_batch_file({}, tmp_path / "none.jsonl").requests == 0
    assert not (tmp_path / "none.jsonl").exists()
    (tmp_path / "bad.jsonl").write_text('{"custom_id": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not a batch request line"):
        read_batch_ids(tmp_path / "bad.jsonl")
    cache = CachedJudge(MustNotCall(), tmp_path / "c.jsonl")
    write_lines(tmp_path / "r.jsonl", [
        {"custom_id": "x", "error": None, "response": {"status_code": 200, "body": {"choices": []}}},
        {"custom_id": "y", "error": None, "response": {"status_code": 200, "body": {
            "choices": [{"message": {"content": None}}]}}},
    ])
    out = read_batch_results(tmp_path / "r.jsonl", cache, requests=["x", "y", "z"])
    assert out.stored == 0 and set(out.failed) == {"x", "y"} and out.missing == ["z"]
    assert "0 replies stored" in out.summary() and "1 missing" in out.summary()
