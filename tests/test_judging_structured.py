"""JSON extraction, validation and corrective retries (interp_sot.judging.structured)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from interp_sot.judging.concurrency import map_bounded
from interp_sot.judging.structured import JudgeOutputError, ask_json, ask_json_many, json_candidates, parse_json_reply


class ScriptedJudge:
    """Replies from a fixed script, recording every conversation it was sent."""

    name = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, str]]] = []

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.seen.append([dict(m) for m in messages])
        return self.replies.pop(0)


def scores_of_length(n: int):
    def validate(obj: Any) -> list[int]:
        scores = obj["scores"]
        if not isinstance(scores, list) or len(scores) != n:
            raise ValueError(f"need {n} scores")
        return [int(s) for s in scores]

    return validate


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"scores": [1, 2]}', [1, 2]),
        ('Sure!\n```json\n{"scores": [3, 4]}\n```\nHope this helps.', [3, 4]),
        ('```\n{"scores": [5, 6]}\n```', [5, 6]),
        ('<think>maybe {"scores": [0, 0]}?</think>The answer: {"scores": [7, 8]}', [7, 8]),
        # an example in the prose that does not validate, then the real answer
        ('Format is {"scores": [...]}. Here: {"scores": [9, 10]} done', [9, 10]),
        # last valid candidate wins when a reasoning model restates
        ('first {"scores": [1, 1]} then corrected {"scores": [2, 2]}', [2, 2]),
    ],
)
def test_parse_json_reply_finds_the_answer(reply: str, expected: list[int]) -> None:
    assert parse_json_reply(reply, scores_of_length(2)) == expected


def test_json_candidates_never_evaluates_python() -> None:
    # Python literals are not JSON: nothing is found, nothing is executed.
    assert json_candidates("{'a': __import__('os').getcwd()}") == []
    assert json_candidates("[1, 2,]") == []
    assert json_candidates('noise [1, {"a": [2]}] more {"b": null}') == [{"b": None}, [1, {"a": [2]}]]


def test_parse_json_reply_explains_failure() -> None:
    with pytest.raises(ValueError, match="contains no JSON"):
        parse_json_reply("I think 42.", scores_of_length(2))
    with pytest.raises(ValueError, match="need 2 scores"):
        parse_json_reply('{"scores": [1]}', scores_of_length(2))


def test_ask_json_retries_with_correction_then_succeeds() -> None:
    judge = ScriptedJudge(["no idea", '{"scores": [1]}', '{"scores": [4, 5]}'])
    base = [{"role": "user", "content": "rate 2"}]
    assert ask_json(judge, base, scores_of_length(2), retries=2) == [4, 5]
    assert len(judge.seen) == 3
    assert judge.seen[0] == base
    # each corrective turn quotes the bad reply and the reason, and is built on the original messages only
    assert judge.seen[1][:1] == base and judge.seen[1][1] == {"role": "assistant", "content": "no idea"}
    assert "contains no JSON" in judge.seen[1][2]["content"]
    assert judge.seen[2][1]["content"] == '{"scores": [1]}' and "need 2 scores" in judge.seen[2][2]["content"]
    assert len(judge.seen[2]) == 3


def test_ask_json_gives_up_with_clear_error() -> None:
    judge = ScriptedJudge(["x", "y"])
    with pytest.raises(JudgeOutputError, match=r"'scripted' gave no valid JSON after 2 attempts.*'y'"):
        ask_json(judge, [{"role": "user", "content": "q"}], scores_of_length(1), retries=1)
    with pytest.raises(ValueError, match="retries"):
        ask_json(judge, [], scores_of_length(1), retries=-1)


def test_map_bounded_keeps_finished_results_when_one_fails() -> None:
    seen: dict[int, int] = {}
    lock = threading.Lock()
    running = [0, 0]  # current, peak

    def fn(x: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        try:
            if x == 7:
                raise RuntimeError("boom at 7")
            return x * x
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(RuntimeError, match="boom at 7"):
        map_bounded(fn, range(20), max_workers=3, on_result=lambda i, r: seen.__setitem__(i, r))
    assert all(seen[i] == i * i for i in seen)
    assert 7 not in seen and set(range(7)) <= set(seen)  # everything before the failure was reported
    assert running[1] <= 3
    assert map_bounded(fn, range(6), max_workers=2) == [0, 1, 4, 9, 16, 25]
    assert map_bounded(fn, range(3), max_workers=1) == [0, 1, 4]


def test_ask_json_many_preserves_order() -> None:
    class Echo:
        name = "echo"
        max_concurrency = 4

        def complete(self, messages: list[dict[str, str]]) -> str:
            return json.dumps({"scores": [int(messages[-1]["content"])]})

    out = ask_json_many(Echo(), [[{"role": "user", "content": str(i)}] for i in range(10)], scores_of_length(1))
    assert out == [[i] for i in range(10)]


def test_hostile_nesting_and_duplicate_keys_are_not_json():
    from interp_sot.judging.structured import json_candidates

    assert json_candidates("[" * 100_000 + "]" * 100_000) == []  # no RecursionError, no quadratic scan
    assert json_candidates("{" * 100_000) == []
    assert json_candidates('{"a": "' + "[" * 100 + '"}')[0] == {"a": "[" * 100}  # brackets inside strings are text
    assert json_candidates('{"score": 10, "score": 90}') == []
    assert json_candidates('noise {"score": 10} more') == [{"score": 10}]
