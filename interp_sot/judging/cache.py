"""Persistent reply cache for judges: a rerun costs nothing and an interrupted run resumes where it stopped.

Replies live in the one judge store (:class:`interp_sot.judging.store.KeyedStore`), keyed by
:func:`cache_key` ``(judge name, cache version, messages)`` and scoped to the judge name and version. Every reply is
stored the moment it arrives (one fsynced line), so a run killed at any point keeps everything it paid for.
The same key is the ``custom_id`` of a provider batch file (:mod:`interp_sot.judging.batch`), so replies computed
offline land where a live run looks for them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.store import KeyedStore, sha256_hex

logger = logging.getLogger(__name__)


def cache_key(judge_name: str, messages: Sequence[Message], version: str = "") -> str:
    """Hex sha256 identifying one request to one judge under one prompt/cache version."""
    payload = json.dumps(
        {"judge": judge_name, "version": version, "messages": [dict(m) for m in messages]},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return sha256_hex(payload)


class CachedJudge:
    """Wraps a judge so that each distinct request is sent once, ever, per cache file.

    ``version`` is mixed into every key: bump it to ignore older replies. The wrapper keeps the inner judge's
    ``name`` and ``max_concurrency``. ``misses`` counts the requests that reached the inner judge.
    """

    def __init__(self, judge: Judge, path: str | Path | None, version: str = "") -> None:
        self.inner = judge
        self.version = version
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._store = KeyedStore(path, {"judge": judge.name, "version": version})

    @property
    def path(self) -> Path | None:
        return self._store.path

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def max_concurrency(self) -> int:
        return int(getattr(self.inner, "max_concurrency", 1))

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: object) -> bool:
        """Whether a reply is stored under cache ``key``."""
        return key in self._store

    def key(self, messages: Sequence[Message]) -> str:
        """The cache key (and batch-file ``custom_id``) of ``messages``."""
        return cache_key(self.name, messages, self.version)

    def cached(self, messages: Sequence[Message]) -> str | None:
        """The stored reply to ``messages``, or None."""
        reply = self._store.get(self.key(messages))
        return reply if isinstance(reply, str) else None

    def store(self, replies: Iterable[tuple[str, str]]) -> None:
        """Store ``(key, reply)`` pairs obtained elsewhere (a provider's batch results)."""
        self._store.put_many(replies)

    def complete(self, messages: list[Message]) -> str:
        key = self.key(messages)
        reply = self._store.get(key)
        if isinstance(reply, str):
            with self._lock:
                self.hits += 1
            return reply
        reply = self.inner.complete(messages)
        if not isinstance(reply, str):
            raise TypeError(f"judge {self.name!r} returned {type(reply).__name__}, expected str")
        self._store.put_many([(key, reply)])
        with self._lock:
            self.misses += 1
        return reply
