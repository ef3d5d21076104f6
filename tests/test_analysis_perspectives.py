"""Perspective analysis through a judge: parsing canned replies (valid, wrapped, malformed, hostile) into tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from interp_sot.analysis.expertise import expertise_diversity_table
from interp_sot.analysis.personality import ITEM_COLUMNS, bfi10_scores, personality_diversity
from interp_sot.analysis.perspectives import (
    PERSPECTIVES_PROMPT,
    PerspectiveConfig,
    analyze_perspectives,
    split_segments,
)

TRACE = "Let me try 25 * 4. That gives 100.\nWait, that uses 4 twice? No, it is fine.\nSo the answer is 100."


class FakeJudge:
    """Test double for the Judge protocol: replies come from a function of the call number and messages."""

    name = "fake-judge"

    def __init__(self, reply: Callable[[int, list], str] | list[str]) -> None:
        self._reply = reply
        self.calls: list[list] = []

    def complete(self, messages: list) -> str:
        self.calls.append(messages)
        if isinstance(self._reply, list):
            return self._reply[min(len(self.calls) - 1, len(self._reply) - 1)]
        return self._reply(len(self.calls) - 1, messages)


def good_reply(segments_1: list[int], segments_2: list[int]) -> dict:
    return {
        "perspectives": [
            {
                "id": 1,
                "expertise": "arithmetic solver",
                "bfi10": [2, 4, 2, 3, 1, 4, 2, 5, 3, 5],
                "segments": segments_1,
            },
            {"id": 2, "expertise": "skeptical  checker", "bfi10": [3] * 10, "segments": segments_2},
        ]
    }


def test_split_segments_spans_and_merging() -> None:
    spans = split_segments(TRACE)
    assert [TRACE[a:b] for a, b in spans] == [
        "Let me try 25 * 4.",
        "That gives 100.",
        "Wait, that uses 4 twice?",
        "No, it is fine.",
        "So the answer is 100.",
    ]
    merged = split_segments(TRACE, max_segments=2)
    assert [TRACE[a:b] for a, b in merged] == [TRACE[: TRACE.index("twice?") + 6], TRACE[TRACE.index("No,") :]]
    assert split_segments("   \n\n ") == []


def test_valid_reply_becomes_tidy_tables() -> None:
    judge = FakeJudge([json.dumps(good_reply([0, 1, 4], [2, 3]))])
    tabs = analyze_perspectives(judge, {"t1": TRACE})
    p = tabs.perspectives
    assert list(p.columns[:12]) == ["trace_id", "perspective_id", *ITEM_COLUMNS]
    assert p["perspective_id"].tolist() == [1, 2]
    assert p.loc[0, list(ITEM_COLUMNS)].tolist() == [2, 4, 2, 3, 1, 4, 2, 5, 3, 5]
    assert p["expertise"].tolist() == ["arithmetic solver", "skeptical checker"]  # whitespace normalised
    # Whitespace tokens: segments 0,1,4 = 6 + 3 + 5 = 14; segments 2,3 = 5 + 4 = 9; trace = 23.
    assert p["n_tokens"].tolist() == [14, 9]
    assert p["token_share"].tolist() == pytest.approx([14 / 23, 9 / 23])
    t = tabs.traces.iloc[0]
    assert (t["status"], t["n_perspectives"], t["n_segments"], t["n_tokens"]) == ("ok", 2, 5, 23)
    assert t["attributed_share"] == pytest.approx(1.0) and t["prompt"] == PERSPECTIVES_PROMPT.key
    # The prompt shows numbered segments and the BFI-10 items.
    user = judge.calls[0][1]["content"]
    assert "[2] Wait, that uses 4 twice?" in user and "has an active imagination" in judge.calls[0][0]["content"]
    # Downstream analyses take the table as is.
    div = personality_diversity(bfi10_scores(tabs.perspectives)).iloc[0]
    assert div["n_perspectives"] == 2 and div["sd_openness"] == pytest.approx(pd.Series([5.0, 3.0]).std())
    emb = expertise_diversity_table(tabs.perspectives, lambda texts: [[1.0, 0.0], [0.0, 1.0]][: len(texts)])
    assert emb.loc[0, "expertise_diversity"] == pytest.approx(1 - 2**-0.5)


def test_reply_wrapped_in_prose_fences_and_thinking() -> None:
    reply = (
        "<think>the first voice proposes {not json}</think>Here is my analysis:\n```json\n"
        + json.dumps(good_reply([0], [1]))
        + "\n```\nHope this helps!"
    )
    tabs = analyze_perspectives(FakeJudge([reply]), [("t", TRACE)])
    assert tabs.traces.loc[0, "status"] == "ok" and len(tabs.perspectives) == 2
    assert tabs.traces.loc[0, "attributed_share"] == pytest.approx(9 / 23)


def test_retry_after_malformed_reply_quotes_the_problem() -> None:
    bad = good_reply([0], [1])
    bad["perspectives"][0]["bfi10"] = [3] * 9
    judge = FakeJudge([json.dumps(bad), json.dumps(good_reply([0], [1]))])
    tabs = analyze_perspectives(judge, {"t": TRACE})
    assert tabs.traces.loc[0, "status"] == "ok" and len(judge.calls) == 2
    assert "bfi10 must be a list of 10 integers" in judge.calls[1][-1]["content"]


def _mutated(mutate: Callable[[dict], object]) -> str:
    reply = good_reply([0, 1], [2])
    out = mutate(reply)
    return out if isinstance(out, str) else json.dumps(reply)


HOSTILE = {
    "not_json": "I think there are two perspectives, both very nice.",
    "python_literal": "{'perspectives': __import__('pathlib').Path('PWNED').touch()}",
    "bool_rating": _mutated(lambda r: r["perspectives"][0]["bfi10"].__setitem__(0, True)),
    "rating_out_of_range": _mutated(lambda r: r["perspectives"][0]["bfi10"].__setitem__(3, 6)),
    "fractional_rating": _mutated(lambda r: r["perspectives"][0]["bfi10"].__setitem__(3, 3.5)),
    "string_rating": _mutated(lambda r: r["perspectives"][0]["bfi10"].__setitem__(3, "4")),
    "nan_rating": json.dumps(good_reply([0], [1])).replace("[3, 3, 3", "[NaN, 3, 3"),
    "segment_out_of_range": _mutated(lambda r: r["perspectives"][1]["segments"].append(99)),
    "negative_segment": _mutated(lambda r: r["perspectives"][1]["segments"].append(-1)),
    "segment_twice": _mutated(lambda r: r["perspectives"][1]["segments"].append(0)),
    "duplicate_ids": _mutated(lambda r: r["perspectives"][1].__setitem__("id", 1)),
    "missing_key": _mutated(lambda r: r["perspectives"][1].pop("expertise")),
    "empty_expertise": _mutated(lambda r: r["perspectives"][1].__setitem__("expertise", "   ")),
    "huge_expertise": _mutated(lambda r: r["perspectives"][1].__setitem__("expertise", "x" * 10_000)),
    "no_perspectives": json.dumps({"perspectives": []}),
    "too_many": json.dumps({"perspectives": [good_reply([], [])["perspectives"][1] | {"id": i} for i in range(1, 30)]}),
    "wrong_top_level": json.dumps([good_reply([0], [1])]),
    "deeply_nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_or_malformed_replies_are_reported_not_guessed(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    judge = FakeJudge([HOSTILE[kind]])
    tabs = analyze_perspectives(judge, {"t": TRACE}, config=PerspectiveConfig(retries=1))
    row = tabs.traces.iloc[0]
    assert row["status"] == "invalid" and isinstance(row["error"], str) and row["error"]
    assert pd.isna(row["n_perspectives"]) and pd.isna(row["attributed_share"])
    assert len(tabs.perspectives) == 0
    assert not (tmp_path / "PWNED").exists()


def test_resume_from_log_skips_done_traces(tmp_path: Path) -> None:
    log = tmp_path / "perspectives.jsonl"
    first = FakeJudge([json.dumps(good_reply([0], [1]))])
    analyze_perspectives(first, {"a": TRACE}, log_path=log)
    second = FakeJudge(lambda i, m: json.dumps(good_reply([1], [2])))
    tabs = analyze_perspectives(second, {"a": TRACE, "b": TRACE}, log_path=log)
    assert len(second.calls) == 1  # only "b" was asked
    got = tabs.perspectives.groupby("trace_id")["n_segments"].sum().to_dict()
    assert got == {"a": 2, "b": 2} and tabs.traces["trace_id"].tolist() == ["a", "b"]
    assert len(log.read_text().splitlines()) == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unique"):
        analyze_perspectives(FakeJudge(["{}"]), [("a", TRACE), ("a", TRACE)])
    with pytest.raises(ValueError, match="max_perspectives"):
        PerspectiveConfig(max_perspectives=0)
    tabs = analyze_perspectives(FakeJudge(["{}"]), {"empty": "  \n "})
    assert tabs.traces.loc[0, "status"] == "invalid" and "empty" in tabs.traces.loc[0, "error"]
