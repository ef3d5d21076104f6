"""Persistent judge cache: hits, keys, resume after a torn write (interp_sot.judging.cache)."""

from __future__ import annotations

import json

import pytest

from interp_sot.io import truncate_torn_tail
from interp_sot.judging.cache import CachedJudge, cache_key
from interp_sot.judging.store import KeyedStore, sha256_hex
from interp_sot.screening.score_store import ScoreStore


class CountingJudge:
    def __init__(self, name: str = "counting") -> None:
        self.name = name
        self.calls = 0

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.calls += 1
        return "reply to " + messages[-1]["content"]


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "s"}, {"role": "user", "content": text}]


def test_second_run_costs_nothing(tmp_path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = CountingJudge()
    judge = CachedJudge(inner, path, version="p@1")
    assert [judge.complete(msgs(t)) for t in "abca"] == ["reply to a", "reply to b", "reply to c", "reply to a"]
    assert inner.calls == 3 and judge.hits == 1 and judge.misses == 3
    rerun_inner = CountingJudge()
    rerun = CachedJudge(rerun_inner, path, version="p@1")
    assert len(rerun) == 3
    assert [rerun.complete(msgs(t)) for t in "cab"] == ["reply to c", "reply to a", "reply to b"]
    assert rerun_inner.calls == 0
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["key"] for r in lines] == [cache_key("counting", msgs(t), "p@1") for t in "abc"]


def test_key_separates_judge_version_and_messages(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    CachedJudge(CountingJudge("A"), path, version="v1").complete(msgs("x"))
    other_judge, other_version = CountingJudge("B"), CountingJudge("A")
    CachedJudge(other_judge, path, version="v1").complete(msgs("x"))
    CachedJudge(other_version, path, version="v2").complete(msgs("x"))
    assert other_judge.calls == 1 and other_version.calls == 1
    keys = {cache_key("A", msgs("x"), "v1"), cache_key("B", msgs("x"), "v1"), cache_key("A", msgs("x"), "v2"),
            cache_key("A", msgs("y"), "v1"), cache_key("A", [{"role": "user", "content": "x"}], "v1")}
    assert len(keys) == 5


def test_torn_tail_is_dropped_and_the_log_stays_valid(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    first = CachedJudge(CountingJudge(), path)
    first.complete(msgs("a"))
    with open(path, "a") as fh:  # a write killed halfway
        fh.write('{"key": "abc", "judge": "counting", "rep')
    inner = CountingJudge()
    resumed = CachedJudge(inner, path)
    assert len(resumed) == 1
    resumed.complete(msgs("b"))
    assert inner.calls == 1
    assert [json.loads(x)["value"] for x in path.read_text().splitlines()] == ["reply to a", "reply to b"]
    assert truncate_torn_tail(path) is False


def test_truncate_torn_tail_edge_cases(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    assert truncate_torn_tail(p) is False  # missing
    p.write_text('{"a": 1')  # only a fragment
    assert truncate_torn_tail(p) is True and p.read_text() == ""
    big = "x" * 100_000
    p.write_text(json.dumps({"a": big}) + "\n" + '{"b": "' + big)
    assert truncate_torn_tail(p) is True and json.loads(p.read_text()) == {"a": big}


def test_rejects_non_text_replies(tmp_path) -> None:
    class Bad:
        name = "bad"

        def complete(self, messages):
            return None

    with pytest.raises(TypeError, match="returned NoneType"):
        CachedJudge(Bad(), tmp_path / "c.jsonl").complete(msgs("a"))
    assert not (tmp_path / "c.jsonl").exists()


def test_reply_cache_and_score_store_are_one_store(tmp_path) -> None:
    """Both keep sha256-keyed values in the one JSONL format, each seeing only its own scope."""
    path = tmp_path / "shared.jsonl"
    CachedJudge(CountingJudge("A"), path, version="v1").complete(msgs("x"))
    ScoreStore(path, "A", "p@1").put_many([("some text", 42.0)])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [
        {"key": cache_key("A", msgs("x"), "v1"), "judge": "A", "version": "v1", "value": "reply to x"},
        {"key": sha256_hex("some text"), "judge": "A", "prompt": "p@1", "value": 42.0},
    ]
    assert len(KeyedStore(path, {"judge": "A"})) == 2
    assert len(KeyedStore(path, {"judge": "A", "prompt": "p@1"})) == 1
    assert ScoreStore(path, "A", "p@1").get("some text") == 42.0
    assert ScoreStore(path, "A", "p@2").get("some text") is None
    assert len(CachedJudge(CountingJudge("A"), path, version="v1")) == 1
    with pytest.raises(ValueError, match="cannot be named"):
        KeyedStore(None, {"key": "x"})


def test_files_from_before_the_merge_are_still_read(tmp_path) -> None:
    path = tmp_path / "old.jsonl"
    old = [{"key": cache_key("A", msgs("x"), "v1"), "judge": "A", "version": "v1", "reply": "old reply"},
           {"h": sha256_hex("text"), "judge": "A", "prompt": "p@1", "value": 7.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    inner = CountingJudge("A")
    assert CachedJudge(inner, path, version="v1").complete(msgs("x")) == "old reply" and inner.calls == 0
    assert ScoreStore(path, "A", "p@1").get("text") == 7.0
