"""Bounded-concurrency map used to keep several judge requests in flight.

Judges are I/O bound (an HTTP server does the work), so threads suffice. Results are handed to ``on_result``
as soon as each finishes, so a caller can persist them; when one item fails, the items already running are
allowed to finish (and reported) before the first error is raised, so nothing that succeeded is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from interp_sot.judging.base import Judge

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def judge_concurrency(judge: Judge) -> int:
    """How many requests ``judge`` wants in flight (its ``max_concurrency`` attribute, else 1)."""
    n = getattr(judge, "max_concurrency", 1)
    return max(1, int(n))


def map_bounded(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    max_workers: int,
    on_result: Callable[[int, R], None] | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``max_workers`` calls running at once; order preserved.

    ``on_result(i, result)`` runs in the calling thread as each item finishes. On the first failure no new
    items start; running ones finish and are reported; then the first exception is re-raised.
    """
    items = list(items)
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    results: list[Any] = [None] * len(items)
    if max_workers == 1:
        for i, x in enumerate(items):
            results[i] = fn(x)
            if on_result is not None:
                on_result(i, results[i])
        return results

    first_error: BaseException | None = None
    pending: dict[Future[R], int] = {}
    next_i = 0
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="judge") as pool:
        while next_i < len(items) or pending:
            while first_error is None and next_i < len(items) and len(pending) < max_workers:
                pending[pool.submit(fn, items[next_i])] = next_i
                next_i += 1
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                err = fut.exception()
                if err is not None:
                    if first_error is None:
                        first_error = err
                    else:
                        logger.warning("item %d also failed: %s", i, err)
                    continue
                results[i] = fut.result()
                if on_result is not None:
                    on_result(i, results[i])
            if first_error is not None and next_i < len(items):
                next_i = len(items)  # stop submitting; drain what is running
    if first_error is not None:
        raise first_error
    return results
