"""The judge protocol shared by screening, behaviour coding and perspective analysis.

A judge is anything that turns chat messages into text. Keeping the protocol this small lets every
backend (HTTP server, local transformers model, offline heuristic, a test double) plug in unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


_REPLY_BUDGET: ContextVar[int | None] = ContextVar("reply_budget", default=None)


@contextmanager
def reply_budget(max_tokens: int | None) -> Iterator[None]:
    """Cap the reply length of judge calls made in this thread inside the block (None: the backend's default).

    The caller knows what the prompt asks for (a few tokens per judged item), the backend does not; passing the
    cap this way keeps the one-method :class:`Judge` protocol. Backends read it with :func:`current_reply_budget`.
    """
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"a reply budget must be >= 1 token, got {max_tokens}")
    token = _REPLY_BUDGET.set(max_tokens)
    try:
        yield
    finally:
        _REPLY_BUDGET.reset(token)


def current_reply_budget() -> int | None:
    """The reply-token cap set by :func:`reply_budget` around the current call, or None."""
    return _REPLY_BUDGET.get()
