"""Append-only store of judged items (contexts, descriptions), so a screen resumes after a kill.

Items are keyed by ``sha256(text)``; the file also records the judge name and prompt key, and only matching
records are loaded, so changing the judge or the prompt version re-judges everything. Batch composition does not
matter: a rerun over a different feature subset reuses every item already judged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail

logger = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ScoreStore:
    """``text -> value`` for one judge and one prompt version, persisted as JSONL (or in memory if no path)."""

    def __init__(self, path: str | Path | None, judge_name: str, prompt_key: str) -> None:
        self.path = Path(path) if path is not None else None
        self.judge_name = judge_name
        self.prompt_key = prompt_key
        self._values: dict[str, Any] = {}
        if self.path is not None:
            truncate_torn_tail(self.path)
            for rec in read_jsonl(self.path):
                if rec.get("judge") == judge_name and rec.get("prompt") == prompt_key:
                    self._values[rec["h"]] = rec["value"]
            logger.info("score store %s: %d items judged by %s", self.path, len(self._values), judge_name)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, text: str) -> bool:
        return text_hash(text) in self._values

    def get(self, text: str) -> Any | None:
        return self._values.get(text_hash(text))

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store ``(text, value)`` pairs; written in one fsynced append."""
        records = [
            {"h": text_hash(t), "judge": self.judge_name, "prompt": self.prompt_key, "value": v} for t, v in items
        ]
        if self.path is not None:
            append_jsonl(self.path, records)
        for rec in records:
            self._values[rec["h"]] = rec["value"]
