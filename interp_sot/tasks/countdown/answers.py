"""Finding the final answer in a completion, by one of two rules, with an optional ``\\boxed{}`` fallback.

Rules (``AnswerRule``):

- ``"answer_line"`` (the few-shot presets, :mod:`interp_sot.tasks.countdown.presets`): the text after the last
  ``Answer:`` up to the end of its line, so ``Thoughts: ...\nAnswer: 3 * 8`` yields ``3 * 8``.

- ``"last_tag"`` (the project's default): the last ``</answer>`` paired with the nearest ``<answer>`` before it, so
  ``<answer> draft <answer> 1+2 </answer>`` yields ``1+2``.
- ``"tinyzero"``: TinyZero's own ``extract_solution`` (``verl/utils/reward_score/countdown.py``): only the *last
  line* of the text is searched, and of the non-overlapping non-greedy ``<answer>(.*?)</answer>`` matches on it the
  last one wins, so ``<answer> draft <answer> 1+2 </answer>`` yields ``draft <answer> 1+2`` (which then fails to
  verify) and an answer followed by a newline and more text is not found at all. TinyZero first drops everything
  before the first ``Assistant:`` of prompt + completion; the prompt always holds that marker, so on a completion
  alone the rule is "last line of the completion" (when the completion has no newline its last line continues the
  prompt's, which ends in ``<think>`` and holds no answer).

A public reproduction of the paper found many correct traces that never wrote the tags, so ``boxed_fallback=True``
falls back to the last ``\\boxed{...}`` whose braces close (the one that starts last) when the rule finds nothing.

Every extraction here is linear in the length of the completion, whatever it holds: a 4,096-token degenerate row
(thousands of unclosed ``\\boxed{`` or ``<answer>``) cannot stall scoring. ``re``'s ``<answer>(.*?)</answer>``
would rescan to the end of the line from every unclosed ``<answer>`` (quadratic), so the tinyzero rule is a
two-pointer scan with the same matches; the boxed fallback matches braces with one stack in one pass.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

OPEN_TAG = "<answer>"
CLOSE_TAG = "</answer>"
_BOXED = "\\boxed{"
_BRACE_TOKENS = re.compile(r"\\boxed\{|[{}]")

ANSWER_LINE = "Answer:"

AnswerSource = Literal["answer_tag", "answer_line", "boxed"]
AnswerRule = Literal["last_tag", "tinyzero", "answer_line"]
ANSWER_RULES: tuple[AnswerRule, ...] = ("last_tag", "tinyzero", "answer_line")


class ExtractedAnswer(NamedTuple):
    text: str
    """The answer with surrounding whitespace stripped (may be empty: ``<answer></answer>``)."""
    source: AnswerSource
    """Where it came from: the answer tags or the ``\\boxed{}`` fallback."""


def _last_tagged(completion: str) -> str | None:
    end = completion.rfind(CLOSE_TAG)
    if end < 0:
        return None
    start = completion.rfind(OPEN_TAG, 0, end)
    if start < 0:
        return None
    return completion[start + len(OPEN_TAG) : end]


def _tinyzero_tagged(completion: str) -> str | None:
    """Last of ``re.finditer(r"<answer>(.*?)</answer>", last_line)`` without re's quadratic worst case.

    finditer's matches are non-overlapping, leftmost first: from ``pos`` the next match opens at the first
    ``<answer>`` at or after ``pos`` and closes at the first ``</answer>`` after that opening. When no closing tag
    follows an opening, no later opening can be closed either, so the scan stops. ``pos`` only moves forward:
    linear time. (``.`` excludes only ``\\n``, and the last line holds none.)
    """
    line = completion[completion.rfind("\n") + 1 :]
    pos, last = 0, None
    while True:
        start = line.find(OPEN_TAG, pos)
        if start < 0:
            return last
        body = start + len(OPEN_TAG)
        end = line.find(CLOSE_TAG, body)
        if end < 0:
            return last
        last = line[body:end]
        pos = end + len(CLOSE_TAG)


def _answer_line(completion: str) -> str | None:
    """Text after the last ``Answer:`` to the end of its line (linear: one ``rfind`` and one ``find``)."""
    start = completion.rfind(ANSWER_LINE)
    if start < 0:
        return None
    body = start + len(ANSWER_LINE)
    end = completion.find("\n", body)
    return completion[body:] if end < 0 else completion[body:end]


def _last_boxed(completion: str) -> str | None:
    """Content of the complete ``\\boxed{...}`` (braces balanced) that starts last; None if there is none.

    One left-to-right pass over the braces: every ``{`` is pushed (marked when it opens a ``\\boxed{``), every
    ``}`` pops its match. Stack matching pairs each opening with the same closing brace as counting depth from
    that opening would, so this equals "try the last ``\\boxed{``, then earlier ones while unclosed" in O(n).
    """
    stack: list[int] = []  # start of the content for a \boxed{ opening, -1 for a plain {
    best_start, best_end = -1, -1
    for m in _BRACE_TOKENS.finditer(completion):
        token = m.group()
        if token == "}":
            if stack:
                start = stack.pop()
                if start > best_start:
                    best_start, best_end = start, m.start()
        else:
            stack.append(m.end() if token == _BOXED else -1)
    return completion[best_start:best_end] if best_start >= 0 else None


def find_answer(
    completion: str | None, *, boxed_fallback: bool = False, rule: AnswerRule = "last_tag"
) -> ExtractedAnswer | None:
    """The final answer and where it came from; None when the completion holds none (see the module doc)."""
    if rule not in ANSWER_RULES:
        raise ValueError(f"answer rule must be one of {ANSWER_RULES}, got {rule!r}")
    if not isinstance(completion, str):
        return None
    if rule == "answer_line":
        line = _answer_line(completion)
        if line is not None:
            return ExtractedAnswer(line.strip(), "answer_line")
    else:
        tagged = _tinyzero_tagged(completion) if rule == "tinyzero" else _last_tagged(completion)
        if tagged is not None:
            return ExtractedAnswer(tagged.strip(), "answer_tag")
    if boxed_fallback:
        boxed = _last_boxed(completion)
        if boxed is not None:
            return ExtractedAnswer(boxed.strip(), "boxed")
    return None


def extract_answer(
    completion: str | None, *, boxed_fallback: bool = False, rule: AnswerRule = "last_tag"
) -> str | None:
    """The text of the final answer (stripped) by ``rule``, else the last ``\\boxed{}`` if asked; None if none."""
    found = find_answer(completion, boxed_fallback=boxed_fallback, rule=rule)
    return None if found is None else found.text
