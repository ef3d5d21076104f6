"""Countdown problems: the record every stage passes around, and a seeded generator of solvable ones.

The generator draws the numbers first and then a target among the integers they can reach (per the exhaustive
solver), so every problem is solvable by construction and carries a solution. TinyZero's public data
(``Jiayi-Pan/Countdown-Tasks-3to4``) has 3-4 numbers and targets up to about 100; the defaults follow it. The
target is uniform over the *reachable* integers in ``target_range``, which is a documented choice: the TinyZero
set's exact target distribution is not specified.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from interp_sot.tasks.countdown.solver import reachable


@dataclass(frozen=True)
class CountdownProblem:
    """One Countdown task: reach ``target`` from ``nums`` with + - * /."""

    problem_id: str
    """Stable identifier; sweeps key their resumable results on it."""
    nums: tuple[int, ...]
    """The given numbers, in the order shown to the model."""
    target: int
    """The number to reach."""
    solution: str | None = field(default=None, compare=False)
    """A known solving expression (the generator always sets one; loaded problems may not)."""

    def __post_init__(self) -> None:
        if not isinstance(self.problem_id, str) or not self.problem_id:
            raise ValueError(f"problem_id must be a non-empty string, got {self.problem_id!r}")
        nums = tuple(self.nums)
        if not nums:
            raise ValueError(f"problem {self.problem_id}: nums is empty")
        for n in nums:
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"problem {self.problem_id}: nums must be non-negative integers, got {n!r}")
        if isinstance(self.target, bool) or not isinstance(self.target, int):
            raise ValueError(f"problem {self.problem_id}: target must be an integer, got {self.target!r}")
        object.__setattr__(self, "nums", nums)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "nums": list(self.nums),
            "target": self.target,
            "solution": self.solution,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> CountdownProblem:
        """The problem :meth:`to_dict` wrote (ValueError when a field is not what it writes)."""
        nums, target, solution = d["nums"], d["target"], d.get("solution")
        if not isinstance(nums, (list, tuple)) or isinstance(target, bool) or not isinstance(target, (int, float, str)):
            raise ValueError(f"not a Countdown problem record: nums={nums!r}, target={target!r}")
        return cls(str(d["problem_id"]), tuple(int(n) for n in nums), int(target),
                   solution if isinstance(solution, str) else None)


@dataclass(frozen=True)
class GeneratorConfig:
    """How :func:`generate_problems` draws problems."""

    n_numbers: tuple[int, ...] = (3, 4)
    """Allowed counts of given numbers; each problem picks one uniformly."""
    num_range: tuple[int, int] = (1, 99)
    """Inclusive range of the given numbers."""
    target_range: tuple[int, int] = (1, 100)
    """Inclusive range of targets; the target is uniform over the reachable integers in it."""
    use_all: bool = True
    """Targets must be reachable using every number once (TinyZero); False allows subsets."""
    max_tries: int = 1000
    """Redraws of the numbers allowed per problem before the ranges are declared impossible."""

    def __post_init__(self) -> None:
        if not self.n_numbers or any(k < 1 or k > 6 for k in self.n_numbers):
            raise ValueError(f"n_numbers must be counts between 1 and 6, got {self.n_numbers}")
        for name in ("num_range", "target_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} = {(lo, hi)}: low end above high end")
        if self.num_range[0] < 0:
            raise ValueError(f"num_range = {self.num_range}: Countdown numbers are non-negative")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")


def generate_problems(
    n: int, *, seed: int = 0, config: GeneratorConfig | None = None, id_prefix: str = "gen"
) -> list[CountdownProblem]:
    """``n`` solvable problems, identical for the same ``seed`` and config; ids are ``{id_prefix}-{seed}-{i}``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cfg = config or GeneratorConfig()
    rng = random.Random(seed)
    lo, hi = cfg.target_range
    out: list[CountdownProblem] = []
    for i in range(n):
        for _ in range(cfg.max_tries):
            k = rng.choice(cfg.n_numbers)
            nums = [rng.randint(*cfg.num_range) for _ in range(k)]
            values = reachable(nums, use_all=cfg.use_all)
            targets = sorted(int(v) for v in values if v.denominator == 1 and lo <= v <= hi)
            if targets:
                target = rng.choice(targets)
                out.append(CountdownProblem(f"{id_prefix}-{seed}-{i}", tuple(nums), target, values[Fraction(target)]))
                break
        else:
            raise ValueError(f"no reachable target in {cfg.target_range} after {cfg.max_tries} draws; widen the ranges")
    return out


def sample_problems(problems: Sequence[CountdownProblem], n: int, *, seed: int = 0) -> list[CountdownProblem]:
    """``n`` distinct problems drawn without replacement (seeded), e.g. the paper's 1,024 from a larger set."""
    if n > len(problems):
        raise ValueError(f"asked for {n} problems but only {len(problems)} are available")
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids are not unique; sweeps key their results on them")
    return random.Random(seed).sample(list(problems), n)
