"""Scoring a completion end to end: find the answer, then verify it against the problem."""

from __future__ import annotations

from typing import NamedTuple

from interp_sot.tasks.countdown.answers import AnswerRule, AnswerSource, find_answer
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.verify import check


class Score(NamedTuple):
    correct: bool
    answer: str | None
    """The extracted answer text (None: the completion holds none)."""
    source: AnswerSource | None
    """``"answer_tag"``, ``"boxed"`` (fallback) or None."""
    reason: str
    """``"ok"`` or why the answer is wrong (see ``verify.check``)."""


def score_completion(
    completion: str | None,
    problem: CountdownProblem,
    *,
    boxed_fallback: bool = False,
    rule: AnswerRule = "last_tag",
    use_all: bool = True,
    normalize: bool = False,
) -> Score:
    """Whether ``completion`` solves ``problem``; never raises on the completion's content.

    ``rule`` picks the answer extraction (``"last_tag"`` or TinyZero's ``"tinyzero"``, see ``answers``); the
    found expression is always verified exactly (``verify.check``), never evaluated.
    """
    found = find_answer(completion, boxed_fallback=boxed_fallback, rule=rule)
    if found is None:
        return Score(False, None, None, "no answer found")
    verdict = check(found.text, problem.nums, problem.target, use_all=use_all, normalize=normalize)
    return Score(verdict.correct, found.text, found.source, verdict.reason)
