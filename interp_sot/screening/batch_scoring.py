"""Judging many short texts several per call: dedupe, skip what is stored, batch, run concurrently, persist.

Shared by the conversation ratio (contexts) and category classification (feature descriptions). Each call's reply
is capped to what it asks for (``reply_tokens(n)`` tokens for ``n`` texts), so a model that rambles is cut short
and re-asked rather than generating a thousand tokens. A batch whose replies stay invalid after the retries is
counted in ``failed`` and its texts stay unjudged (missing, never a score); a batch whose request was deferred to a
provider batch file (:class:`interp_sot.judging.batch.DeferredJudge`) is counted in ``deferred``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from tqdm.auto import tqdm

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.batch import RequestDeferred
from interp_sot.judging.concurrency import judge_concurrency, map_bounded
from interp_sot.judging.structured import JudgeOutputError, ask_json
from interp_sot.screening.score_store import ScoreStore

logger = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(frozen=True)
class BatchScores(Generic[V]):
    """Values per distinct text, and what it cost."""

    values: dict[str, V]
    """Text -> value for every text that has one (judged now or earlier); unjudged texts are absent."""
    calls: int
    """Batches sent to the judge in this run (each may have needed corrective retries)."""
    failed: int
    """Texts whose batch kept failing validation (``on_invalid="skip"``); a rerun asks again (a reply cache,
    :class:`~interp_sot.judging.cache.CachedJudge`, answers those repeats without a server call)."""
    deferred: int = 0
    """Texts whose request went to a batch file instead of a server (no reply yet)."""


def default_reply_tokens(n: int) -> int:
    """Reply cap for a call judging ``n`` items: JSON framing plus a few tokens per item (a score is ~2 tokens, a
    pair of category scores ~14), with room for a short preamble."""
    return 32 + 16 * n


def score_in_batches(
    texts: Sequence[str],
    judge: Judge,
    store: ScoreStore,
    make_messages: Callable[[list[str]], list[Message]],
    parse: Callable[[object, int], list[V]],
    batch_size: int = 10,
    retries: int = 2,
    on_invalid: Literal["raise", "skip"] = "skip",
    desc: str = "judging",
    reply_tokens: Callable[[int], int] = default_reply_tokens,
) -> BatchScores[V]:
    """Judge each distinct text once, ``batch_size`` per call; stored texts are not sent again.

    ``parse(json, n)`` turns a reply's JSON into ``n`` values or raises ``ValueError`` (which triggers a corrective
    retry). Each finished batch is stored at once, so a killed run loses at most the batches in flight.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_invalid not in ("raise", "skip"):
        raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    unique = list(dict.fromkeys(texts))
    todo = [t for t in unique if t not in store]
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    logger.info("%s: %d distinct texts, %d stored, %d batches to send", desc, len(unique), len(unique) - len(todo),
                len(batches))
    failed = deferred = 0
    deferred_batches: set[int] = set()

    def run(batch: list[str]) -> list[V] | RequestDeferred | None:
        try:
            return ask_json(judge, make_messages(batch), lambda obj: parse(obj, len(batch)), retries,
                            max_tokens=reply_tokens(len(batch)))
        except RequestDeferred as deferral:
            return deferral
        except JudgeOutputError as err:
            if on_invalid == "raise":
                raise
            logger.warning("%s: a batch of %d gave no valid reply; left unjudged: %s", desc, len(batch), str(err)[:500])
            return None

    with tqdm(total=len(batches), desc=desc, unit="call", disable=not batches) as bar:

        def done(i: int, values: list[V] | RequestDeferred | None) -> None:
            nonlocal failed, deferred
            bar.update(1)
            if isinstance(values, RequestDeferred):
                deferred += len(batches[i])
                deferred_batches.add(i)
            elif values is None:
                failed += len(batches[i])
            else:
                store.put_many(zip(batches[i], values, strict=True))

        map_bounded(run, batches, judge_concurrency(judge), on_result=done)
    values = {t: v for t in unique if (v := store.get(t)) is not None}
    if deferred:
        logger.info("%s: %d texts in %d calls deferred to a batch file", desc, deferred, len(deferred_batches))
    return BatchScores(values=values, calls=len(batches) - len(deferred_batches), failed=failed, deferred=deferred)
