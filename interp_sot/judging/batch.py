"""Full screens through a provider's batch endpoint: write every uncached request to a file, read the results back.

A full screen is ~1.6M judged contexts; a provider's Batch API answers such a file within a day at about half the
live price. The route, with the same code path as a live run:

1. run with :class:`DeferredJudge` (a reply cache that never calls out): cached requests are answered, every other
   request is recorded and its item left unjudged; :func:`write_batch_file` writes the recorded requests as an
   OpenAI Batch API JSONL file (one line per call, ``custom_id`` = the reply-cache key);
2. submit the file to the provider; download its results file;
3. :func:`read_batch_results` stores each reply in the reply cache under its ``custom_id`` and reports the lines
   that failed and the requests that have no line;
4. run again: every request now hits the cache, so the run completes with no live call. Replies that fail
   validation trigger corrective re-asks, which are new requests: repeat 1-3 until nothing is left to write.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_sot.errors import InterpSotError
from interp_sot.io import atomic_path
from interp_sot.judging.base import Message, current_reply_budget
from interp_sot.judging.cache import CachedJudge

logger = logging.getLogger(__name__)

BATCH_ENDPOINT = "/v1/chat/completions"
"""The ``url`` of every batch line."""


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token), used when no tokenizer is given."""
    return -(-len(text) // 4)


class RequestDeferred(Exception):
    """The request was recorded for a batch file instead of being sent; its item stays unjudged in this run."""


class DeferredJudge:
    """A judge that answers only from a reply cache and records every other request (see module doc).

    The recorded body is the inner judge's ``request_body(messages)`` when it has one (the OpenAI judge: model,
    temperature, the reply budget in force), else a generic chat-completions body.
    """

    def __init__(self, cache: CachedJudge) -> None:
        self.cache = cache
        self.hits = 0
        self.requests: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.cache.name

    @property
    def max_concurrency(self) -> int:
        return self.cache.max_concurrency

    def complete(self, messages: list[Message]) -> str:
        reply = self.cache.cached(messages)
        if reply is not None:
            with self._lock:
                self.hits += 1
            return reply
        key = self.cache.key(messages)
        with self._lock:
            self.requests.setdefault(key, self._body(messages))
        raise RequestDeferred(key)

    def _body(self, messages: list[Message]) -> dict[str, Any]:
        make = getattr(self.cache.inner, "request_body", None)
        if callable(make):
            return dict(make(messages))
        body: dict[str, Any] = {"model": self.name, "messages": [dict(m) for m in messages], "temperature": 0.0}
        if (budget := current_reply_budget()) is not None:
            body["max_tokens"] = budget
        return body


@dataclass(frozen=True)
class BatchFileSummary:
    """What a batch file holds."""

    path: Path
    requests: int
    """Lines (calls) written."""
    prompt_tokens: int
    """Prompt tokens over all lines (message texts, counted with the given counter; default an estimate)."""
    max_reply_tokens: int
    """Sum of the lines' ``max_tokens`` caps: the most the replies can cost."""


def write_batch_file(
    requests: Mapping[str, Mapping[str, object]],
    path: str | Path,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> BatchFileSummary:
    """Write ``custom_id -> body`` as an OpenAI Batch API input file (atomically; an empty mapping writes nothing
    and returns zero counts)."""
    path = Path(path)
    prompt_tokens = reply_tokens = 0
    lines: list[str] = []
    for key, body in requests.items():
        lines.append(json.dumps({"custom_id": key, "method": "POST", "url": BATCH_ENDPOINT, "body": body},
                                ensure_ascii=False, separators=(",", ":")))
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise InterpSotError(f"request {key}: its body's messages are not a list")
        prompt_tokens += sum(count_tokens(str(m.get("content", ""))) for m in messages)
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and not isinstance(max_tokens, int):
            raise InterpSotError(f"request {key}: its body's max_tokens is not an integer: {max_tokens!r}")
        reply_tokens += max_tokens or 0
    if lines:
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("batch file %s: %d requests, %d prompt tokens", path, len(lines), prompt_tokens)
    return BatchFileSummary(path, len(lines), prompt_tokens, reply_tokens)


def read_batch_ids(path: str | Path) -> list[str]:
    """The ``custom_id`` of every line of a batch input file (to find requests the results file lacks)."""
    ids: list[str] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                ids.append(str(json.loads(line)["custom_id"]))
            except (ValueError, KeyError, TypeError) as err:
                raise InterpSotError(f"{path}: line {lineno} is not a batch request line ({err})") from err
    return ids


@dataclass
class BatchImport:
    """What reading a provider's results file did."""

    stored: int = 0
    """Replies newly stored in the reply cache."""
    already: int = 0
    """Lines whose reply was already cached (a results file read twice)."""
    failed: dict[str, str] = field(default_factory=dict)
    """``custom_id`` -> why its line gave no reply (an error, a non-200 status, no text); rerun to write them again."""
    bad_lines: list[int] = field(default_factory=list)
    """Line numbers that are not JSON or carry no ``custom_id``."""
    missing: list[str] = field(default_factory=list)
    """Requests of the input file (when given) with no line in the results file."""

    def summary(self) -> str:
        return (f"{self.stored} replies stored, {self.already} already cached, {len(self.failed)} failed, "
                f"{len(self.missing)} missing, {len(self.bad_lines)} unreadable lines")


def _reply_of(record: Mapping[str, object]) -> tuple[str | None, str]:
    """``(reply text, "")`` or ``(None, why not)`` for one results line."""
    if record.get("error"):
        return None, f"error: {json.dumps(record['error'])[:300]}"
    response = record.get("response")
    if not isinstance(response, Mapping):
        return None, "no response"
    status = response.get("status_code")
    if status != 200:
        return None, f"HTTP {status}: {json.dumps(response.get('body'))[:300]}"
    try:
        content = response["body"]["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, "the response body has no choices[0].message.content"
    if not isinstance(content, str):
        return None, "the reply has no text content"
    return content, ""


def read_batch_results(
    path: str | Path, cache: CachedJudge, requests: str | Path | Sequence[str] | None = None
) -> BatchImport:
    """Store the replies of a provider's results file in ``cache`` (keyed by ``custom_id``).

    ``requests`` (the input file, or its ids) lets the import report requests the results file lacks. Replies are
    stored as text, unvalidated: the next run validates them exactly as live replies.
    """
    out = BatchImport()
    replies: list[tuple[str, str]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = str(record["custom_id"])
        except (ValueError, KeyError, TypeError):
            out.bad_lines.append(lineno)
            continue
        seen.add(key)
        reply, why = _reply_of(record)
        if reply is None:
            out.failed[key] = why
        elif key in cache:
            out.already += 1
        else:
            replies.append((key, reply))
    cache.store(replies)
    out.stored = len(replies)
    if requests is not None:
        ids: Iterable[str] = read_batch_ids(requests) if isinstance(requests, (str, Path)) else requests
        out.missing = [k for k in ids if k not in seen]
    if out.failed or out.missing or out.bad_lines:
        logger.warning("batch results %s: %s", path, out.summary())
    else:
        logger.info("batch results %s: %s", path, out.summary())
    return out
