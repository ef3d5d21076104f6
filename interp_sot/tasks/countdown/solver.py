"""Exhaustive Countdown solver: every value reachable from the numbers with + - * /, each with one expression.

Search combines two of the remaining values at a time (the classic Countdown recursion), so it covers every
binary expression tree over the numbers. Values are exact fractions; negative and fractional intermediate results
are allowed because :func:`~interp_sot.tasks.countdown.verify.verify` accepts them too. States already expanded
(the same multiset of values) are skipped, which keeps 4 numbers to a few thousand combinations.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

MAX_SOLVER_NUMBERS = 6
"""Exhaustive search grows super-exponentially; beyond 6 numbers it is refused rather than left to run for hours."""

_Item = tuple[Fraction, str, bool]  # value, expression, is_atomic (a bare number needs no parentheses)


def _wrap(item: _Item) -> str:
    return item[1] if item[2] else f"({item[1]})"


def _combine(a: _Item, b: _Item) -> list[_Item]:
    x, y = a[0], b[0]
    ea, eb = _wrap(a), _wrap(b)
    out = [(x + y, f"{ea} + {eb}", False), (x * y, f"{ea} * {eb}", False)]
    out.append((x - y, f"{ea} - {eb}", False))
    out.append((y - x, f"{eb} - {ea}", False))
    if y != 0:
        out.append((x / y, f"{ea} / {eb}", False))
    if x != 0:
        out.append((y / x, f"{eb} / {ea}", False))
    return out


def _validate(nums: Sequence[int]) -> list[int]:
    values = list(nums)
    if not values:
        raise ValueError("nums is empty")
    if len(values) > MAX_SOLVER_NUMBERS:
        raise ValueError(f"{len(values)} numbers: the exhaustive solver handles at most {MAX_SOLVER_NUMBERS}")
    for i, n in enumerate(values):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"nums[{i}] = {n!r}: Countdown numbers must be non-negative integers")
    return values


def reachable(nums: Sequence[int], *, use_all: bool = True) -> dict[Fraction, str]:
    """Every exact value reachable from ``nums`` -> one expression that reaches it.

    use_all: only expressions using every number exactly once; False also counts subsets (each number at most once).
    The first expression found for a value is kept, so the result is deterministic for a given ``nums`` order.
    """
    values = _validate(nums)
    start: list[_Item] = [(Fraction(n), str(n), True) for n in values]
    # Keys are (numerator, denominator) pairs: hashing Fractions dominates the run time otherwise.
    found: dict[tuple[int, int], str] = {}
    seen: set[tuple[tuple[int, int], ...]] = set()

    def record(item: _Item) -> None:
        key = (item[0].numerator, item[0].denominator)
        if key not in found:
            found[key] = item[1]

    def search(items: list[_Item]) -> None:
        if len(items) == 1:
            record(items[0])
            return
        state = tuple(sorted((v.numerator, v.denominator) for v, _, _ in items))
        if state in seen:
            return
        seen.add(state)
        if not use_all:
            for item in items:
                record(item)
        if len(items) == 2:  # last combination: format an expression only for values not seen yet
            a, b = items
            x, y = a[0], b[0]
            candidates = [(x + y, "+", a, b), (x * y, "*", a, b), (x - y, "-", a, b), (y - x, "-", b, a)]
            if y != 0:
                candidates.append((x / y, "/", a, b))
            if x != 0:
                candidates.append((y / x, "/", b, a))
            for value, op, left, right in candidates:
                key = (value.numerator, value.denominator)
                if key not in found:
                    found[key] = f"{_wrap(left)} {op} {_wrap(right)}"
            return
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                rest = [items[k] for k in range(len(items)) if k not in (i, j)]
                for new in _combine(items[i], items[j]):
                    search([*rest, new])

    search(start)
    return {Fraction(n, d): expr for (n, d), expr in found.items()}


def solve(nums: Sequence[int], target: int | Fraction, *, use_all: bool = True) -> str | None:
    """An expression reaching ``target`` exactly from ``nums`` (see :func:`reachable`), or None if none exists."""
    if isinstance(target, bool) or not isinstance(target, (int, Fraction)):
        raise ValueError(f"target must be an int or Fraction, got {type(target).__name__} {target!r}")
    return reachable(nums, use_all=use_all).get(Fraction(target))
