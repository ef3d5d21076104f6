"""TinyZero's answer-extraction rule, and extraction that stays linear on degenerate megabyte completions.

The reference for the ``tinyzero`` rule is TinyZero's own ``extract_solution``
(verl/utils/reward_score/countdown.py), transcribed below for completions (prompt already split off) and run on
small inputs only: its non-greedy regex is quadratic on unclosed tags.
"""

from __future__ import annotations

import random
import re

import pytest

from interp_sot.tasks.countdown import CountdownProblem, extract_answer, find_answer, score_completion


def tinyzero_reference(completion: str) -> str | None:
    line = completion.split("\n")[-1]
    matches = list(re.finditer(r"<answer>(.*?)</answer>", line))
    return matches[-1].group(1).strip() if matches else None


CASES = [
    "<think>x</think>\n<answer> (1 + 2) / 3 </answer>",
    "<answer>1+2</answer> later <answer> 3*4 </answer>",
    "<answer> draft <answer> 1+2 </answer>",
    "<answer> 1 + 2 </answer>\nand then some more text",
    "<answer>1\n+2</answer>",
    "<answer></answer>",
    "no tags at all",
    "<answer> 1 + 2",
    "</answer><answer>5</answer>",
    "a\n\n",
    "<answer>a</answer><answer>b",
    "<answer><answer></answer></answer>",
]


@pytest.mark.parametrize("text", CASES)
def test_tinyzero_rule_matches_tinyzero(text: str) -> None:
    assert extract_answer(text, rule="tinyzero") == tinyzero_reference(text)


def test_tinyzero_rule_matches_tinyzero_on_random_strings() -> None:
    rng = random.Random(0)
    parts = ["<answer>", "</answer>", "\n", "1+2", " ", "<", ">", "answer", "/"]
    for _ in range(3000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
        assert extract_answer(text, rule="tinyzero") == tinyzero_reference(text), repr(text)


def test_rules_differ_where_tinyzero_is_stricter() -> None:
    p = CountdownProblem("p", (3, 5, 7), 15)
    text = "<answer> 3 + 5 * 7 </answer> no wait\n<answer> 7 + 5 + 3 </answer>"
    assert score_completion(text, p).correct
    assert score_completion(text, p, rule="tinyzero").correct
    multi = "<answer> 7 + 5 + 3 </answer>\nThat is my answer."
    assert score_completion(multi, p).correct
    s = score_completion(multi, p, rule="tinyzero")
    assert (s.correct, s.answer, s.reason) == (False, None, "no answer found")
    nested = "<answer> draft <answer> 7 + 5 + 3 </answer>"
    assert score_completion(nested, p).correct and not score_completion(nested, p, rule="tinyzero").correct
    boxed = "so the answer is \\boxed{7 + 5 + 3}\nDone."
    s = score_completion(boxed, p, rule="tinyzero", boxed_fallback=True)
    assert (s.correct, s.source) == (True, "boxed")
    with pytest.raises(ValueError, match="answer rule must be one of"):
        find_answer("x", rule="eval")  # type: ignore[arg-type]


def boxed_reference(text: str) -> str | None:
    """The previous (quadratic) rule: try the last ``\\boxed{``, then earlier ones while unclosed."""
    start = text.rfind("\\boxed{")
    while start >= 0:
        depth, i = 1, start + 7
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + 7 : i]
            i += 1
        start = text.rfind("\\boxed{", 0, start)
    return None


def test_boxed_fallback_matches_the_reference_rule() -> None:
    rng = random.Random(1)
    parts = ["\\boxed{", "{", "}", "1+2", "x", "\\frac{a}{b}"]
    for _ in range(3000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 10)))
        assert extract_answer(text, boxed_fallback=True) == boxed_reference(text), repr(text)


def test_extraction_on_megabyte_degenerate_inputs() -> None:
    """Big inputs, correctness only (no timing asserts): the algorithms are single passes (see answers.py)."""
    unclosed = "\\boxed{" * 8_000
    assert extract_answer(unclosed, boxed_fallback=True) is None
    assert extract_answer("\\boxed{7}" + unclosed, boxed_fallback=True) == "7"
    assert extract_answer(unclosed + "\\boxed{1 + 2}", boxed_fallback=True) == "1 + 2"
    assert extract_answer(unclosed + "}", boxed_fallback=True) == ""  # the innermost \boxed{ closes
    mb_boxed = "\\boxed{" * 150_000  # ~1 MB
    assert extract_answer(mb_boxed + "x" * 10, boxed_fallback=True) is None
    opens = "<answer>" * 130_000  # ~1 MB of unclosed tags on one line
    for rule in ("last_tag", "tinyzero"):
        assert extract_answer(opens, rule=rule) is None  # type: ignore[arg-type]
        assert extract_answer(opens + " 1+2 </answer>", rule=rule) == (  # type: ignore[arg-type]
            "1+2" if rule == "last_tag" else ("<answer>" * 129_999 + " 1+2").strip())
    closes = "</answer>" * 120_000
    assert extract_answer(closes, rule="tinyzero") is None and extract_answer(closes) is None
    pairs = "<answer>1</answer>" * 60_000 + "<answer>2</answer>"
    assert extract_answer(pairs, rule="tinyzero") == "2" and extract_answer(pairs) == "2"
    text = "x" * 1_000_000 + "\\boxed{\\frac{1}{2}}" + "{" * 100_000
    assert extract_answer(text, boxed_fallback=True) == "\\frac{1}{2}"
