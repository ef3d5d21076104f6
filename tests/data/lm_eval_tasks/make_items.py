"""Regenerate the two local lm-eval tasks' items (40 each, seeded): ``python make_items.py`` in this folder.

One-digit additions, which SmolLM2-135M-Instruct gets partly right: enough room for steering to move the score
either way. Multiple choice: the sum and three near misses in a seeded order; generation: the sum itself.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

N_ITEMS = 40


def items(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(N_ITEMS)]


def main() -> None:
    here = Path(__file__).resolve().parent
    rng = random.Random(23)
    mc = []
    for a, b in items(1):
        total = a + b
        choices = [total, total + 1, total - 1, total + 2]
        rng.shuffle(choices)
        mc.append({"a": a, "b": b, "choices": [str(c) for c in choices], "label": choices.index(total)})
    gen = [{"a": a, "b": b, "answer": str(a + b)} for a, b in items(2)]
    for name, rows in (("addition_mc.jsonl", mc), ("addition_gen.jsonl", gen)):
        (here / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
