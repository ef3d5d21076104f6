"""Judged items (contexts, descriptions) by text, so a screen resumes after a kill and reuses items across runs.

Items are keyed by ``sha256(text)`` in the one judge store (:class:`interp_sot.judging.store.KeyedStore`) scoped to
the judge name and prompt key, so changing the judge or the prompt version re-judges everything. Batch composition
does not matter: a rerun over a different feature subset reuses every item already judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from interp_sot.judging.store import KeyedStore, sha256_hex

text_hash = sha256_hex
"""The key of an item: hex sha256 of its text."""


class ScoreStore:
    """``text -> value`` for one judge and one prompt version, persisted as JSONL (or in memory if no path)."""

    def __init__(self, path: str | Path | None, judge_name: str, prompt_key: str) -> None:
        self.judge_name = judge_name
        self.prompt_key = prompt_key
        self._store = KeyedStore(path, {"judge": judge_name, "prompt": prompt_key})

    @property
    def path(self) -> Path | None:
        return self._store.path

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, text: str) -> bool:
        return text_hash(text) in self._store

    def get(self, text: str) -> Any | None:
        return self._store.get(text_hash(text))

    def put_many(self, items: Iterable[tuple[str, object]]) -> None:
        """Store ``(text, value)`` pairs; written in one fsynced append."""
        self._store.put_many((text_hash(t), v) for t, v in items)
