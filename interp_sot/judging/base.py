"""The judge protocol shared by screening, behaviour coding and perspective analysis.

A judge is anything that turns chat messages into text. Keeping the protocol this small lets every
backend (HTTP server, local transformers model, offline heuristic, a test double) plug in unchanged.
"""

from __future__ import annotations

from typing import Protocol, TypedDict, runtime_checkable


class Message(TypedDict):
    """One chat message in the OpenAI convention."""

    role: str
    content: str


@runtime_checkable
class Judge(Protocol):
    """Turns a conversation into the judge's reply text."""

    @property
    def name(self) -> str:
        """Stable identifier of the backend + model; part of every cache key."""
        ...

    def complete(self, messages: list[Message]) -> str:
        """Return the judge's reply to ``messages``; raise on transport failure, never return None."""
        ...
