"""Scoring a completion end to end: find the answer, then verify it against the problem."""

from __future__ import annotations

from typing import NamedTuple

from interp_sot.tasks.countdown.answers import AnswerRule, AnswerSource, find_answer
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.verify import check


class Score(NamedTuple):
    """The verdict on one completion, with graded outcomes that show partial progress where accuracy is rare."""

    correct: bool
    answer: str | None
    """The extracted answer text (None: the completion holds none)."""
    source: AnswerSource | None
    """``"answer_tag"``, ``"boxed"`` (fallback) or None."""
    reason: str
    """``"ok"`` or why the answer is wrong (see ``verify.check``)."""
    valid: bool = False
    """The answer is an expression that uses each given number as the rules ask (``verify.Verdict.valid``)."""
    abs_error: float | None = None
    """|value - target| of a valid answer (None when the answer is missing or not valid: an expression that
    ignores the numbers, e.g. the bare target, must not count as close)."""

    @property
    def found(self) -> bool:
        """An answer was extracted (graded outcome "answer found")."""
        return self.answer is not None


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
    error = float(abs(verdict.value - problem.target)) if verdict.valid and verdict.value is not None else None
    return Score(verdict.correct, found.text, found.source, verdict.reason, verdict.valid, error)
