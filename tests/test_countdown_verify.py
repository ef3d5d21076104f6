"""Countdown answer extraction and exact verification: edge cases and a brute-force cross-check."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from interp_sot.tasks.countdown import check, extract_answer, find_answer, reachable, score_completion, verify
from interp_sot.tasks.countdown.problems import CountdownProblem

NUMS = [3, 5, 7, 11]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("(3 + 5) * 7 - 11", True),  # 45
        ("((3 + 5)) * (7) - (11)", True),  # redundant parentheses
        ("(((3 + 5) * 7) - 11)", True),
        ("11 - 7 + 5 * 3", False),  # 19, wrong value
        ("3*5+7+11", False),  # 33
    ],
)
def test_value_and_parentheses(expr: str, expected: bool) -> None:
    assert verify(expr, NUMS, 45) is expected


def test_each_number_exactly_once() -> None:
    assert not verify("(3 + 3) * 7 + 3", [3, 7, 3], 45)  # 3 used three times, given twice
    assert verify("(3 + 3) * 7 + 3", [3, 7, 3, 3], 45)
    assert check("3 * 5 * 3", [3, 5, 7], 45).reason.startswith("number 3 used 2 times")
    # left out: 3 * 5 * 3 uses neither 7 nor 11
    assert not verify("3 * 5 * 3", [3, 5, 3, 11], 45)
    assert check("3 * 5 * 3", [3, 5, 3, 11], 45).reason == "numbers not used: [11]"


def test_subset_when_use_all_false() -> None:
    assert verify("3 * 5 * 3", [3, 5, 3, 11], 45, use_all=False)
    assert not verify("3 * 5 * 3", [3, 5, 11], 45, use_all=False)  # still at most as often as given
    assert not verify("9 * 5", [3, 5, 11], 45, use_all=False)  # 9 not given


@pytest.mark.parametrize(
    "expr",
    [
        "-3 + 5 * 7 + 13",  # unary minus
        "+3 * 5",
        "-(3 - 5) * 7 - 11",
        "3 ** 5 - 7 - 11",
        "9**9**9**9",  # huge exponent: rejected before any arithmetic
        "3 // 5 + 7 * 11",
        "3 % 5",
        "3 × 5 + 7 - 11",
        "3 ÷ 5",
        "3 − 5",
        "3.0 * 5 * 3",  # decimals
        "2.5 * 18",
        "1e1 + 35",
        "1_1 + 34",
        "03 * 15",  # non-canonical literal
        "abs(45)",
        "x",
        "",
        "   ",
        "(3 + 5",
        "3 + 5)",
        "3 5",
        "[3 + 5]",
        "3 + 5 = 8",
        "The answer is 3 * 5 * 3",  # text around
        "3 * 5 * 3 </answer>",
        "3*5*3\x00",
        "٣ * 5 * 3",  # Arabic-Indic digit
    ],
)
def test_rejected_forms_never_raise(expr: str) -> None:
    verdict = check(expr, [3, 5, 3, 7, 11, 1, 2, 18, 15, 35, 34, 45, 13, 0], 45, use_all=False)
    assert verdict.correct is False
    assert verdict.reason != "ok"


def test_division_by_zero_and_exact_fractions() -> None:
    assert not verify("1 / 0", [1, 0], 1)
    assert not verify("5 / (3 - 3)", [5, 3, 3], 1)
    assert check("5 / (3 - 3)", [5, 3, 3], 1).reason == "division by zero"
    assert verify("(1 + 2) / 3", [1, 2, 3], 1)
    assert verify("8 / (3 - 8 / 3)", [8, 3, 8, 3], 24)  # exact only in rational arithmetic
    assert not verify("1 / 3", [1, 3], Fraction(333333, 1000000))  # close but not equal: exact, unlike TinyZero
    assert verify("1 / 3", [1, 3], Fraction(1, 3))
    assert verify("7 - 9", [7, 9], -2)  # negative values are fine


def test_normalize_operators_option() -> None:
    assert not verify("3 × 5 × 3", [3, 5, 3], 45)
    assert verify("3 × 5 × 3", [3, 5, 3], 45, normalize=True)
    assert verify("(7 − 1) ÷ 2", [7, 1, 2], 3, normalize=True)
    assert verify("$3 \\times 5 \\cdot 3$", [3, 5, 3], 45, normalize=True)
    assert not verify("−3 + 5", [3, 5], 2, normalize=True)  # still a unary minus


def test_pathological_inputs_are_false() -> None:
    deep = "(" * 40 + "45" + ")" * 40
    assert verify("(" * 5 + "45" + ")" * 5, [45], 45)
    assert check(deep, [45], 45).reason == "parentheses nested deeper than 32"
    assert not verify("(" * 5000 + "45" + ")" * 5000, [45], 45)  # also over max_chars
    assert not verify("9" * 5000, [45], 45)
    assert not verify("+".join(["1"] * 300), [1] * 300, 300)  # 599 chars > 512
    assert verify("+".join(["1"] * 300), [1] * 300, 300, max_chars=1000)
    assert not verify(None, [1], 1)
    assert not verify(45, [45], 45)  # type: ignore[arg-type]


def test_bad_arguments_raise_clearly() -> None:
    with pytest.raises(ValueError, match="nums"):
        verify("1", [-1], 1)
    with pytest.raises(ValueError, match="nums"):
        verify("1", [], 1)
    with pytest.raises(ValueError, match="target"):
        verify("1", [1], "1")  # type: ignore[arg-type]


def _tree_values(nums: tuple[int, ...]) -> set[Fraction]:
    """Independent brute force: all values over every permutation, operator choice and bracketing."""

    def ops(a: Fraction, b: Fraction) -> list[Fraction]:
        out = [a + b, a - b, a * b]
        if b != 0:
            out.append(a / b)
        return out

    def split(seq: tuple[Fraction, ...]) -> set[Fraction]:
        if len(seq) == 1:
            return {seq[0]}
        vals: set[Fraction] = set()
        for i in range(1, len(seq)):
            for a in split(seq[:i]):
                for b in split(seq[i:]):
                    vals.update(ops(a, b))
        return vals

    out: set[Fraction] = set()
    for perm in set(itertools.permutations(Fraction(n) for n in nums)):
        out |= split(perm)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_solver_matches_brute_force_and_verify(seed: int) -> None:
    rng = random.Random(seed)
    nums = tuple(rng.randint(0 if seed == 0 else 1, 12) for _ in range(3 + seed % 2))
    found = reachable(nums)
    assert set(found) == _tree_values(nums)
    for value, expr in found.items():
        assert verify(expr, nums, value), (nums, value, expr)
        assert not verify(expr, nums, value + 1)


def test_extract_answer_rules() -> None:
    assert extract_answer("<think>x</think> <answer> (1 + 2) / 3 </answer>") == "(1 + 2) / 3"
    assert extract_answer("<answer>1+2</answer> later <answer> 3*4 </answer> end") == "3*4"  # several: last
    assert extract_answer("<answer> draft <answer> 1+2 </answer>") == "1+2"
    assert extract_answer("<answer> 1 + 2") is None  # truncated
    assert extract_answer("no tags \\boxed{1+2}") is None
    assert extract_answer("no tags \\boxed{1+2}", boxed_fallback=True) == "1+2"
    assert extract_answer("\\boxed{\\frac{a}{b}} then \\boxed{(3+4", boxed_fallback=True) == "\\frac{a}{b}"
    assert find_answer("<answer></answer>") == ("", "answer_tag")
    assert find_answer("<answer>5</answer> \\boxed{6}", boxed_fallback=True) == ("5", "answer_tag")
    assert extract_answer(None) is None


def test_score_completion_end_to_end() -> None:
    p = CountdownProblem("p", (3, 5, 7, 11), 45)
    s = score_completion("<think>hmm</think>\n<answer> (3 + 5) * 7 - 11 </answer>", p)
    assert s.correct and s.source == "answer_tag" and s.reason == "ok"
    s = score_completion("so \\boxed{(3 + 5) * 7 - 11}", p)
    assert not s.correct and s.answer is None
    s = score_completion("so \\boxed{(3 + 5) * 7 - 11}", p, boxed_fallback=True)
    assert s.correct and s.source == "boxed"
    assert score_completion("<answer> (3 + 5) * 7 - 11 = 45 </answer>", p).correct is False
