"""The one persistent store of judge results: sha256-keyed values in an append-only JSONL file.

Both the reply cache (:class:`interp_sot.judging.cache.CachedJudge`, keyed by the request) and the per-item score
store (:class:`interp_sot.screening.score_store.ScoreStore`, keyed by the judged text) are this store with a
different key and scope. Every ``put`` is one fsynced append, so a run killed at any point keeps everything it
paid for; a line torn by the kill is dropped when the store is next opened. Only records whose scope fields
(e.g. judge name, prompt version) match are loaded, so changing the judge or the prompt never reuses old values.
One writing process per file (threads within it are fine).

Record format: ``{"key": <hex sha256>, **scope, "value": <JSON value>}`` (older files' ``h`` / ``reply`` fields
are read as ``key`` / ``value``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail

logger = logging.getLogger(__name__)


def sha256_hex(text: str) -> str:
    """Hex sha256 of a UTF-8 string: the key format of every store."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class KeyedStore:
    """``key -> JSON value`` for one scope, persisted as JSONL (in memory only when ``path`` is None)."""

    def __init__(self, path: str | Path | None, scope: Mapping[str, str]) -> None:
        if "key" in scope or "value" in scope:
            raise ValueError("scope fields cannot be named 'key' or 'value'")
        self.path = Path(path) if path is not None else None
        self.scope = dict(scope)
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        if self.path is not None:
            truncate_torn_tail(self.path)
            for rec in read_jsonl(self.path):
                # Files written before the two stores became one used "h" (items) and "reply" (replies).
                key, value = rec.get("key", rec.get("h")), rec.get("value", rec.get("reply"))
                if key is not None and value is not None and all(rec.get(k) == v for k, v in self.scope.items()):
                    self._values[key] = value
            logger.info("store %s: %d values for %s", self.path, len(self._values), self.scope)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str) -> Any | None:
        """The stored value, or None."""
        with self._lock:
            return self._values.get(key)

    def put_many(self, items: Iterable[tuple[str, object]]) -> None:
        """Store ``(key, value)`` pairs in one fsynced append (a later value for a key wins)."""
        pairs = list(items)
        records = [{"key": k, **self.scope, "value": v} for k, v in pairs]
        with self._lock:
            if self.path is not None:
                append_jsonl(self.path, records)
            self._values.update(pairs)
