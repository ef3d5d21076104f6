"""Persistent reply cache for judges: a rerun costs nothing and an interrupted run resumes where it stopped.

Replies are appended to a JSONL file (one line per reply, fsynced), keyed by
``sha256(judge name, cache version, messages)``. Every reply is stored the moment it arrives, so a run killed
at any point keeps everything it paid for; a line torn by the kill is dropped when the cache is next opened.
One writing process per cache file (threads within it are fine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail
from interp_sot.judging.base import Judge, Message

logger = logging.getLogger(__name__)


def cache_key(judge_name: str, messages: Sequence[Message], version: str = "") -> str:
    """Hex sha256 identifying one request to one judge under one prompt/cache version."""
    payload = json.dumps(
        {"judge": judge_name, "version": version, "messages": [dict(m) for m in messages]},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedJudge:
    """Wraps a judge so that each distinct request is sent once, ever, per cache file.

    ``version`` (e.g. a prompt template's ``key``) is mixed into every key: bump it to ignore older replies.
    The wrapper keeps the inner judge's ``name`` and ``max_concurrency``.
    """

    def __init__(self, judge: Judge, path: str | Path, version: str = "") -> None:
        self.inner = judge
        self.path = Path(path)
        self.version = version
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        truncate_torn_tail(self.path)
        self._replies: dict[str, str] = {}
        for rec in read_jsonl(self.path):
            if rec.get("judge") == judge.name and isinstance(rec.get("reply"), str) and "key" in rec:
                self._replies[rec["key"]] = rec["reply"]
        logger.info("judge cache %s: %d replies for %s", self.path, len(self._replies), judge.name)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def max_concurrency(self) -> int:
        return int(getattr(self.inner, "max_concurrency", 1))

    def __len__(self) -> int:
        return len(self._replies)

    def cached(self, messages: Sequence[Message]) -> str | None:
        """The stored reply to ``messages``, or None."""
        with self._lock:
            return self._replies.get(cache_key(self.name, messages, self.version))

    def complete(self, messages: list[Message]) -> str:
        key = cache_key(self.name, messages, self.version)
        with self._lock:
            reply = self._replies.get(key)
            if reply is not None:
                self.hits += 1
                return reply
        reply = self.inner.complete(messages)
        if not isinstance(reply, str):
            raise TypeError(f"judge {self.name!r} returned {type(reply).__name__}, expected str")
        with self._lock:
            append_jsonl(self.path, [{"key": key, "judge": self.name, "version": self.version, "reply": reply}])
            self._replies[key] = reply
            self.misses += 1
        return reply
