"""A prompt template: fixed system text plus a user message with named ``{fields}``."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from interp_sot.judging.base import Message


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned chat prompt; render it with :meth:`render`."""

    name: str
    """Stable identifier, e.g. ``"conversational_score"``; offline heuristics dispatch on it."""
    version: str
    """Bumped whenever the wording or the expected reply format changes; part of every cache key."""
    system: str
    """System message, used verbatim (no fields), so a judge can recognise the task from it; empty: none sent."""
    user: str
    """User message with ``str.format`` fields, e.g. ``{contexts}``."""
    fields: tuple[str, ...] = field(init=False)
    """Names of the fields in ``user`` (derived)."""

    def __post_init__(self) -> None:
        if not self.name or not self.version:
            raise ValueError("PromptTemplate needs a non-empty name and version")
        names = tuple(sorted({f for _, f, _, _ in string.Formatter().parse(self.user) if f}))
        object.__setattr__(self, "fields", names)

    @property
    def key(self) -> str:
        """``name@version``: what cache keys use to tell prompt generations apart."""
        return f"{self.name}@{self.version}"

    def render(self, **values: str) -> list[Message]:
        """The chat messages for one call; every field must be given, and no others."""
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if missing or extra:
            raise ValueError(
                f"prompt {self.key}: missing fields {sorted(missing)}, unexpected fields {sorted(extra)}"
            )
        user: Message = {"role": "user", "content": self.user.format(**values)}
        return [{"role": "system", "content": self.system}, user] if self.system else [user]
