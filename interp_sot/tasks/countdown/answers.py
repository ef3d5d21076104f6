"""Finding the final answer in a completion: the last ``<answer>...</answer>``, optionally the last ``\\boxed{}``.

TinyZero takes the last non-greedy ``<answer>(.*?)</answer>`` match. Here the closing tag is found first and the
nearest opening tag before it is paired with it, so ``<answer> draft <answer> 1+2 </answer>`` yields ``1+2``
(TinyZero would yield ``draft <answer> 1+2``, which then fails). A public reproduction of the paper found many
correct traces that never wrote the tags, so ``boxed_fallback=True`` falls back to the last ``\\boxed{...}``
(braces balanced) when no complete answer tag exists; the default stays TinyZero-strict.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

OPEN_TAG = "<answer>"
CLOSE_TAG = "</answer>"
_BOXED = "\\boxed{"

AnswerSource = Literal["answer_tag", "boxed"]


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


def _last_boxed(completion: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces close; None if there is none."""
    start = completion.rfind(_BOXED)
    while start >= 0:
        depth = 1
        i = start + len(_BOXED)
        while i < len(completion):
            ch = completion[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return completion[start + len(_BOXED) : i]
            i += 1
        start = completion.rfind(_BOXED, 0, start)  # unclosed (truncated): try an earlier one
    return None


def find_answer(completion: str | None, *, boxed_fallback: bool = False) -> ExtractedAnswer | None:
    """The final answer and where it came from; None when the completion holds none."""
    if not isinstance(completion, str):
        return None
    tagged = _last_tagged(completion)
    if tagged is not None:
        return ExtractedAnswer(tagged.strip(), "answer_tag")
    if boxed_fallback:
        boxed = _last_boxed(completion)
        if boxed is not None:
            return ExtractedAnswer(boxed.strip(), "boxed")
    return None


def extract_answer(completion: str | None, *, boxed_fallback: bool = False) -> str | None:
    """The text of the last complete ``<answer>...</answer>`` (stripped), else the last ``\\boxed{}`` if asked."""
    found = find_answer(completion, boxed_fallback=boxed_fallback)
    return None if found is None else found.text
