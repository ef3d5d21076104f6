"""A heuristic, judge-free coder of conversational surface markers in reasoning traces.

HEURISTIC: counts of words and punctuation that tend to accompany dialogue-like reasoning ("Wait", "Oh", "Hmm",
questions, "we", "but", "let me check" ...), as rates per 1,000 words. It is cheap, deterministic and needs no
judge, which makes it a useful sanity check on steering, but it is *not* the paper's LLM-judge coding of
behaviours (see :mod:`interp_sot.behaviours.judge_coding`) and every table it feeds is labelled ``heuristic``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

METHOD = "heuristic_markers"
"""Label attached to every marker-based result so it is never mistaken for judge coding."""

DEFAULT_MARKERS: dict[str, str] = {
    "question": r"\?",
    "wait": r"\bwait\b",
    "oh": r"\boh\b",
    "hmm": r"\bhm+\b",
    "ah": r"\bah+\b",
    "aha": r"\baha\b",
    "we": r"\bwe\b",
    "but": r"\bbut\b",
    "alternatively": r"\balternatively\b",
    "actually": r"\bactually\b",
    "let_me_check": r"\blet me (?:double[- ]?)?(?:check|verify|re-?check|confirm|see)\b",
    "maybe": r"\b(?:maybe|perhaps)\b",
    "no": r"\bno\b[,.!]",
}
"""Marker name -> case-insensitive regex. ``question`` counts question marks; ``no`` counts "No," / "no." as a
rejection interjection rather than every "no"."""

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


@dataclass(frozen=True)
class MarkerCoding:
    """Marker counts of one text."""

    counts: dict[str, int]
    """Marker name -> occurrences."""
    n_words: int
    """Words in the text (alphanumeric runs, apostrophe contractions kept whole)."""
    method: str = field(default=METHOD)
    """Always ``"heuristic_markers"``."""

    def rates(self, per: int = 1000) -> dict[str, float]:
        """Occurrences per ``per`` words (0.0 for an empty text, so rates average cleanly)."""
        if self.n_words == 0:
            return dict.fromkeys(self.counts, 0.0)
        return {k: v * per / self.n_words for k, v in self.counts.items()}


class MarkerCoder:
    """Compiles the marker patterns once; ``code(text)`` counts them."""

    def __init__(self, markers: Mapping[str, str] | None = None) -> None:
        patterns = dict(DEFAULT_MARKERS if markers is None else markers)
        if not patterns:
            raise ValueError("markers: at least one marker pattern is needed")
        self.compiled: dict[str, re.Pattern[str]] = {}
        for name, pattern in patterns.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"marker name {name!r} must be an identifier (it becomes a table column)")
            try:
                self.compiled[name] = re.compile(pattern, re.IGNORECASE)
            except re.error as err:
                raise ValueError(f"marker {name!r}: invalid regex {pattern!r} ({err})") from err

    @property
    def names(self) -> list[str]:
        return list(self.compiled)

    def code(self, text: str) -> MarkerCoding:
        if not isinstance(text, str):
            raise ValueError(f"expected a text, got {type(text).__name__}")
        text = text.translate(_APOSTROPHES)
        counts = {name: len(p.findall(text)) for name, p in self.compiled.items()}
        return MarkerCoding(counts, len(_WORD.findall(text)))


def code_markers(text: str, markers: Mapping[str, str] | None = None) -> MarkerCoding:
    """One-off convenience around :class:`MarkerCoder` (reuse a coder for many texts)."""
    return MarkerCoder(markers).code(text)
