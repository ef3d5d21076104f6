"""Scoring a Countdown answer: exact rational arithmetic over a parsed expression, never ``eval``.

TinyZero's reference scorer filters characters with a regex and then calls ``eval``; it compares floats with a
1e-5 tolerance. Here the answer is parsed by :mod:`ast` and walked by hand, accepting only integer literals,
binary ``+ - * /`` and parentheses; every value is a :class:`fractions.Fraction`, so ``(1 + 2) / 3`` is exactly 1
and the comparison with the target is exact. Anything else is *wrong*, not an error: :func:`verify` never raises
on the expression (bad ``nums``/``target`` arguments are the caller's bug and raise ``ValueError``).

Choices where TinyZero's scorer is loose or silent (each a documented rule, tested):

- **Decimals** (``2.5``, ``3.0``): wrong. TinyZero's character filter allows ``.``, but its number check reads the
  digits on either side as two separate integers, so a decimal can only pass there by accident. A decimal literal
  is never one of the given integers, so it is rejected outright.
- **Unary minus/plus** (``-3 + 5``): wrong; the task allows binary operations on the given numbers only.
- ``**``, ``//``, ``%``, ``=``, names, calls, ``e``-notation, underscores: wrong (rejected before any arithmetic,
  so ``9**9**9`` costs nothing).
- **Non-ASCII operators** (``×``, ``÷``, ``−``, ``·``) and LaTeX (``\\times``, ``\\div``, ``\\cdot``): wrong by default
  (TinyZero's filter rejects them); ``normalize_operators=True`` maps them to ASCII first.
- **Non-canonical literals** (``03``, ``00``): wrong; a literal must be written as the given number is.
- **Pathological input**: longer than ``max_chars`` or nested deeper than ``max_depth`` parentheses: wrong.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

MAX_CHARS = 512
"""Default cap on the expression length; a 4-number answer needs < 40 characters."""
MAX_DEPTH = 32
"""Default cap on parenthesis nesting, checked before parsing (Python's parser has its own, lower-level limits)."""

_ALLOWED_CHARS = frozenset("0123456789+-*/() \t\n")
_UNICODE_OPERATORS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\left(", "("),
    ("\\right)", ")"),
    ("×", "*"),
    ("·", "*"),
    ("⋅", "*"),
    ("∗", "*"),
    ("÷", "/"),
    ("∕", "/"),
    ("−", "-"),
    ("–", "-"),
    ("\u00a0", " "),
)
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class Verdict(NamedTuple):
    """Why an answer is right or wrong (``verify`` returns ``verdict.correct``)."""

    correct: bool
    reason: str
    """``"ok"`` or a short explanation, e.g. ``"number 7 used 2 times, given 1 time(s)"``."""
    value: Fraction | None
    """The expression's exact value when it could be computed."""
    valid: bool = False
    """The expression parses and uses the given numbers as the rules ask (each exactly once with ``use_all``),
    whatever its value: the graded outcome "valid expression", partial progress where accuracy is rare."""


def normalize_operators(expression: str) -> str:
    """Map the non-ASCII / LaTeX operator spellings models use (``×``, ``÷``, ``−``, ``\\times`` ...) to ASCII."""
    for src, dst in _UNICODE_OPERATORS:
        expression = expression.replace(src, dst)
    return expression.replace("$", "")


def _paren_depth(expression: str) -> int:
    depth = best = 0
    for ch in expression:
        if ch == "(":
            depth += 1
            best = max(best, depth)
        elif ch == ")":
            depth -= 1
    return best


def _as_fraction(value: object, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and value != value:  # NaN
        raise ValueError(f"{what} is NaN")
    return Fraction(value)


def _check_nums(nums: Sequence[int]) -> list[int]:
    out = []
    for i, n in enumerate(nums):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"nums[{i}] = {n!r}: Countdown numbers must be non-negative integers")
        out.append(int(n))
    if not out:
        raise ValueError("nums is empty")
    return out


class _Rejected(Exception):
    """Internal: the expression is wrong for the stated reason."""


def _walk(node: ast.AST, source: str, literals: list[int]) -> Fraction:
    """Exact value of an accepted AST; records the integer literals met, left to right."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise _Rejected(f"literal {node.value!r} is not a non-negative integer")
        text = ast.get_source_segment(source, node)
        if text is None or text != str(node.value):
            raise _Rejected(f"literal {text!r} is not written canonically")
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        op = _OPS.get(type(node.op))
        if op is None:
            raise _Rejected(f"operator {type(node.op).__name__} is not one of + - * /")
        left = _walk(node.left, source, literals)
        right = _walk(node.right, source, literals)
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if right == 0:
            raise _Rejected("division by zero")
        return left / right
    if isinstance(node, ast.UnaryOp):
        raise _Rejected("unary operators are not allowed")
    raise _Rejected(f"{type(node).__name__} is not allowed")


def check(
    expression: str | None,
    nums: Sequence[int],
    target: int | float | Fraction,
    *,
    use_all: bool = True,
    normalize: bool = False,
    max_chars: int = MAX_CHARS,
    max_depth: int = MAX_DEPTH,
) -> Verdict:
    """Like :func:`verify` but says why; never raises on ``expression``."""
    numbers = _check_nums(nums)
    goal = _as_fraction(target, "target")
    if not isinstance(expression, str):
        return Verdict(False, "no expression", None)
    if len(expression) > max_chars:
        return Verdict(False, f"longer than {max_chars} characters", None)
    if normalize:
        expression = normalize_operators(expression)
    expression = expression.strip()
    if not expression:
        return Verdict(False, "empty expression", None)
    bad = sorted(set(expression) - _ALLOWED_CHARS)
    if bad:
        return Verdict(False, f"characters not allowed: {''.join(bad)!r}", None)
    if _paren_depth(expression) > max_depth:
        return Verdict(False, f"parentheses nested deeper than {max_depth}", None)
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return Verdict(False, f"not a valid expression ({type(err).__name__})", None)
    literals: list[int] = []
    try:
        value = _walk(tree.body, expression, literals)
    except _Rejected as err:
        return Verdict(False, str(err), None)
    except RecursionError:
        return Verdict(False, "expression too deep", None)
    used, given = Counter(literals), Counter(numbers)
    for n, k in sorted(used.items()):
        if k > given[n]:
            return Verdict(False, f"number {n} used {k} times, given {given[n]} time(s)", value)
    if use_all:
        missing = sorted((given - used).elements())
        if missing:
            return Verdict(False, f"numbers not used: {missing}", value)
    if value != goal:
        return Verdict(False, f"value {value} != target {goal}", value, True)
    return Verdict(True, "ok", value, True)


def verify(
    expression: str | None,
    nums: Sequence[int],
    target: int | float | Fraction,
    *,
    use_all: bool = True,
    normalize: bool = False,
    max_chars: int = MAX_CHARS,
    max_depth: int = MAX_DEPTH,
) -> bool:
    """Whether ``expression`` reaches ``target`` exactly using the given numbers (see the module doc for the rules).

    use_all: every given number exactly once (TinyZero); False allows a subset, each at most as often as given.
    normalize: accept ``×``/``÷``/``−``/LaTeX operators by mapping them to ASCII first.
    """
    return check(
        expression, nums, target, use_all=use_all, normalize=normalize, max_chars=max_chars, max_depth=max_depth
    ).correct
