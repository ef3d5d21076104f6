"""Seeded, order-free assignment of whole units to splits, and cutting held-out units into labelled passages.

A unit's split depends only on (seed, source, unit id), never on which other units exist, so adding a source
or a package version does not reshuffle the others, and nothing from a training unit leaks into a held-out one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence

from interp_sot.corpora.sources import Unit

SPLITS = ("train", "eval", "screening")


def hash_fraction(seed: int, key: str) -> float:
    """A stable number in [0, 1) for ``key``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(unit: Unit, seed: int, eval_fraction: float, screening_fraction: float) -> str:
    """``"screening"``, ``"eval"`` or ``"train"`` for this unit."""
    if not (0 <= eval_fraction and 0 <= screening_fraction and eval_fraction + screening_fraction < 1):
        raise ValueError(f"held-out fractions must be >= 0 and sum below 1, got eval={eval_fraction}, "
                         f"screening={screening_fraction}")
    u = hash_fraction(seed, f"{unit.source}/{unit.unit}")
    if u < screening_fraction:
        return "screening"
    if u < screening_fraction + eval_fraction:
        return "eval"
    return "train"


def passages(text: str, max_chars: int) -> list[str]:
    """Cut at line breaks into pieces of at most ``max_chars`` (a longer single line is cut at a space)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        while len(line) > max_chars:
            cut = line.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.extend(p for p in (current, line[:cut]) if p.strip())
            current, line = "", line[cut:].lstrip()
        if current and len(current) + 1 + len(line) > max_chars:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current.strip():
        out.append(current)
    return [p.strip() for p in out if p.strip()]


def interleave_sources(units: Iterable[Unit], seed: int) -> list[Unit]:
    """Round-robin over sources (each shuffled), so a token budget draws from every source, not the biggest."""
    by_source: dict[str, list[Unit]] = {}
    for unit in units:
        by_source.setdefault(unit.source, []).append(unit)
    rng = random.Random(seed)
    queues: list[list[Unit]] = []
    for source in sorted(by_source):
        items = by_source[source]
        rng.shuffle(items)
        queues.append(items)
    out: list[Unit] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop())
    return out


def take_tokens(units: Sequence[Unit], counts: Sequence[int], budget: int) -> list[Unit]:
    """Leading units whose token counts sum to at most ``budget`` (the first is always kept)."""
    taken: list[Unit] = []
    total = 0
    for unit, n in zip(units, counts, strict=True):
        if taken and total + n > budget:
            continue
        taken.append(unit)
        total += n
    return taken
