"""Asking a judge for JSON: extract it from free-form replies, validate it, and retry with a correction.

LLM replies wrap JSON in code fences, reasoning (``<think>...</think>``) or prose. Replies are parsed only with
``json`` (never ``eval``): every JSON object/array in the reply is a candidate, and the caller's validator picks
the first that fits, trying fenced blocks first, then the whole reply, then the candidates from last to first
(a model that reasons first states its answer last).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from interp_sot.errors import InterpSotError
from interp_sot.judging.base import Judge, Message, reply_budget
from interp_sot.judging.concurrency import judge_concurrency, map_bounded

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class JudgeOutputError(InterpSotError):
    """The judge kept answering with text that holds no valid JSON for the task."""


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A reply with a key twice is ambiguous (which score counts?), so it is rejected, not resolved silently."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
# Nesting so deep that the decoder recurses past Python's limit, or duplicate keys: the text is not usable JSON.
_NOT_JSON = (json.JSONDecodeError, _DuplicateKey, RecursionError)


MAX_REPLY_CHARS = 1_000_000
"""Longer replies are not parsed (a runaway generation, not an answer)."""
MAX_NESTING = 64
"""Replies nested deeper are not parsed: no judge schema needs it, and scanning them is quadratic."""


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside JSON strings, in one linear pass."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "}]":
            depth = max(0, depth - 1)
    return deepest


def json_candidates(text: str) -> list[Any]:
    """Every JSON object/array in ``text``, in the order a validator should try them (see module doc)."""
    text = _THINK.sub("", text)
    if len(text) > MAX_REPLY_CHARS or _nesting_depth(text) > MAX_NESTING:
        return []
    found: list[Any] = []
    for block in [*_FENCE.findall(text), text]:
        try:
            found.append(_DECODER.decode(block.strip()))
        except _NOT_JSON:
            pass
    scanned: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = _DECODER.raw_decode(text, i)
            except _NOT_JSON:
                i += 1
                continue
            scanned.append(value)
            i = end
        else:
            i += 1
    found.extend(reversed(scanned))
    return found


def parse_json_reply(reply: str, validate: Callable[[object], T]) -> T:
    """The first candidate in ``reply`` that ``validate`` accepts; ``ValueError`` explaining why none did."""
    candidates = json_candidates(reply)
    if not candidates:
        raise ValueError("the reply contains no JSON object or array")
    errors: list[str] = []
    for candidate in candidates:
        try:
            return validate(candidate)
        except (ValueError, TypeError, KeyError) as err:
            errors.append(str(err) or type(err).__name__)
    raise ValueError(f"the JSON in the reply does not fit the requested format: {errors[0]}")


def ask_json(
    judge: Judge,
    messages: Sequence[Message],
    validate: Callable[[object], T],
    retries: int = 2,
    max_tokens: int | None = None,
) -> T:
    """Ask ``judge`` and return ``validate(json)``; on malformed output, re-ask up to ``retries`` times.

    ``max_tokens`` caps each reply (see :func:`interp_sot.judging.base.reply_budget`): size it to what the prompt
    asks for, so that a model that rambles is cut short and re-asked instead of running on for a thousand tokens.

    ``validate`` receives a parsed JSON value and returns the typed result or raises ``ValueError``/``TypeError``/
    ``KeyError`` with a message the judge can act on: it is quoted back to the judge in the corrective turn.
    Transport errors from the judge propagate unchanged (backends retry those themselves).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    base = list(messages)
    conversation = base
    reply = ""
    problem = ""
    for attempt in range(retries + 1):
        with reply_budget(max_tokens):
            reply = judge.complete(conversation)
        try:
            return parse_json_reply(reply, validate)
        except ValueError as err:
            problem = str(err)
        logger.debug("judge %s attempt %d: %s", judge.name, attempt + 1, problem)
        conversation = [
            *base,
            {"role": "assistant", "content": reply},
            {
                "role": "user",
                "content": f"Your reply could not be used: {problem}. Reply again with JSON only, in exactly the "
                "format requested above, and nothing else.",
            },
        ]
    raise JudgeOutputError(
        f"judge {judge.name!r} gave no valid JSON after {retries + 1} attempts; last problem: {problem}; "
        f"last reply (first 300 chars): {reply[:300]!r}"
    )


def ask_json_many(
    judge: Judge,
    batch: Sequence[Sequence[Message]],
    validate: Callable[[object], T],
    retries: int = 2,
    max_workers: int | None = None,
    on_result: Callable[[int, T], None] | None = None,
) -> list[T]:
    """:func:`ask_json` over many conversations, ``max_workers`` (default: the judge's concurrency) at a time.

    ``on_result(i, value)`` runs as each finishes, so callers can persist progress; see ``map_bounded``.
    """
    workers = judge_concurrency(judge) if max_workers is None else max_workers
    return map_bounded(lambda m: ask_json(judge, m, validate, retries), batch, workers, on_result)
