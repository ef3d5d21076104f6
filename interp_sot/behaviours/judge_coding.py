"""LLM-judge coding of reasoning traces: conversational behaviours, Bales IPA roles, cognitive behaviours.

Each (trace, scheme) is one judge call through :func:`interp_sot.judging.structured.ask_json`, whose reply must be
a JSON object of non-negative integer counts with every category of the scheme. A judge that keeps answering
with unusable output yields a coding with ``error`` set and no counts (reported as missing, never as zeros);
transport failures propagate. Wrap the judge in :class:`interp_sot.judging.cache.CachedJudge` to pay for each
request once; :func:`code_traces` additionally appends every coding to a JSONL log as it arrives, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interp_sot.behaviours.prompts import BALES_GROUPS, SCHEMES, CodingScheme
from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail
from interp_sot.judging.base import Judge
from interp_sot.judging.concurrency import judge_concurrency, map_bounded
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.judging.structured import JudgeOutputError, ask_json

logger = logging.getLogger(__name__)

MAX_COUNT = 10_000
"""Counts above this are treated as a malformed reply (a trace of 4,096 tokens cannot hold more acts)."""
MAX_TRACE_CHARS = 40_000
"""Traces longer than this are shown to the judge as head + tail with the omission marked."""


@dataclass(frozen=True)
class TraceToCode:
    """One trace to code."""

    key: str
    """Identifier of the trace (a sweep row key); codings are stored and resumed under it."""
    trace: str
    """The reasoning text (the model's completion)."""
    task: str = "Countdown arithmetic puzzle"
    """Short description of the problem the trace solves, shown to the judge."""


@dataclass(frozen=True)
class BehaviourCoding:
    """Counts one judge gave one trace under one scheme."""

    key: str
    scheme: str
    prompt: str
    """``name@version`` of the prompt template used."""
    judge: str
    counts: dict[str, int] | None
    """Category -> count; None when the judge's reply was unusable (see ``error``)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.counts is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_validator(categories: Sequence[str], max_count: int = MAX_COUNT) -> Callable[[object], dict[str, int]]:
    """A validator for ``ask_json``: a JSON object with an integer count 0..max_count for every category."""

    def validate(value: object) -> dict[str, int]:
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object with keys {list(categories)}, got {type(value).__name__}")
        missing = [c for c in categories if c not in value]
        if missing:
            raise KeyError(f"missing keys {missing}")
        out: dict[str, int] = {}
        for c in categories:
            v = value[c]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or int(v) != v:
                raise ValueError(f"{c!r} must be a whole number, got {v!r}")
            if not 0 <= v <= max_count:
                raise ValueError(f"{c!r} = {v} is outside 0..{max_count}")
            out[c] = int(v)
        return out

    return validate


def clip_trace(trace: str, max_chars: int = MAX_TRACE_CHARS) -> str:
    """The trace, cut to head + tail when too long, and unable to close the ``<trace>`` block early."""
    if len(trace) > max_chars:
        half = max_chars // 2
        omitted = len(trace) - 2 * half
        trace = f"{trace[:half]}\n[... {omitted} characters omitted ...]\n{trace[-half:]}"
    return trace.replace("</trace>", "</ trace>")


def resolve_scheme(scheme: CodingScheme | str, template: PromptTemplate | None = None) -> CodingScheme:
    """A scheme given by name (``"conversational"``, ``"bales"``, ``"cognitive"``) or as is, optionally with its
    prompt replaced by ``template`` (e.g. from a prompt file; same placeholders ``task`` and ``trace``)."""
    if isinstance(scheme, CodingScheme):
        resolved = scheme
    elif scheme not in SCHEMES:
        raise ValueError(f"unknown coding scheme {scheme!r}; known: {sorted(SCHEMES)}")
    else:
        resolved = SCHEMES[scheme]
    if template is None:
        return resolved
    if template.fields != resolved.template.fields:
        raise ValueError(
            f"the prompt for scheme {resolved.name!r} must have the placeholders {list(resolved.template.fields)}, "
            f"got {list(template.fields)}"
        )
    return dataclasses.replace(resolved, template=template)


def reply_tokens(scheme: CodingScheme) -> int:
    """Reply cap for one coding: a few tokens per category (``"subgoal_setting": 3,`` is ~8) plus framing."""
    return 32 + 12 * len(scheme.categories)


def code_trace(
    judge: Judge,
    item: TraceToCode,
    scheme: CodingScheme | str,
    *,
    retries: int = 2,
    max_trace_chars: int = MAX_TRACE_CHARS,
) -> BehaviourCoding:
    """Code one trace; an unusable reply after ``retries`` re-asks gives a coding with ``error`` set."""
    sch = resolve_scheme(scheme)
    messages = sch.template.render(task=item.task, trace=clip_trace(item.trace, max_trace_chars))
    try:
        counts = ask_json(judge, messages, count_validator(sch.categories), retries=retries,
                          max_tokens=reply_tokens(sch))
    except JudgeOutputError as err:
        logger.warning("trace %s, scheme %s: %s", item.key, sch.name, err)
        return BehaviourCoding(item.key, sch.name, sch.template.key, judge.name, None, str(err))
    return BehaviourCoding(item.key, sch.name, sch.template.key, judge.name, counts)


def _done_key(d: Mapping[str, object]) -> tuple[str, str, str, str]:
    return (str(d["key"]), str(d["scheme"]), str(d["prompt"]), str(d["judge"]))


def code_traces(
    judge: Judge,
    items: Sequence[TraceToCode],
    schemes: Sequence[CodingScheme | str] = ("conversational", "bales", "cognitive"),
    *,
    out_path: str | Path | None = None,
    retries: int = 2,
    max_workers: int | None = None,
    max_trace_chars: int = MAX_TRACE_CHARS,
    templates: Mapping[str, PromptTemplate] | None = None,
) -> list[BehaviourCoding]:
    """Code every trace under every scheme, ``max_workers`` judge calls at a time; resumable via ``out_path``.

    Codings already in ``out_path`` for the same (trace key, scheme, prompt version, judge) are reused, including
    failed ones (delete those lines to retry them; with a :class:`~interp_sot.judging.cache.CachedJudge` the retry
    costs nothing). ``templates`` replaces the prompt of a scheme by name (see :func:`resolve_scheme`). Returns
    codings in (item, scheme) order.
    """
    templates = templates or {}
    unknown = sorted(set(templates) - set(SCHEMES))
    if unknown:
        raise ValueError(f"prompt templates given for unknown schemes {unknown}; known: {sorted(SCHEMES)}")
    resolved = [resolve_scheme(s, templates.get(s if isinstance(s, str) else s.name)) for s in schemes]
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("trace keys are not unique")
    done: dict[tuple[str, str, str, str], BehaviourCoding] = {}
    if out_path is not None:
        truncate_torn_tail(out_path)
        for d in read_jsonl(out_path):
            done[_done_key(d)] = BehaviourCoding(**d)
    jobs = [(it, s) for it in items for s in resolved]
    todo = [(it, s) for it, s in jobs if (it.key, s.name, s.template.key, judge.name) not in done]
    logger.info("behaviour coding: %d of %d codings to do (%d reused)", len(todo), len(jobs), len(jobs) - len(todo))
    lock = threading.Lock()

    def on_result(_: int, coding: BehaviourCoding) -> None:
        with lock:
            done[_done_key(coding.to_dict())] = coding
            if out_path is not None:
                append_jsonl(out_path, [coding.to_dict()])

    workers = judge_concurrency(judge) if max_workers is None else max_workers
    map_bounded(
        lambda job: code_trace(judge, job[0], job[1], retries=retries, max_trace_chars=max_trace_chars),
        todo,
        workers,
        on_result,
    )
    return [done[(it.key, s.name, s.template.key, judge.name)] for it, s in jobs]


def coding_columns(codings: Sequence[BehaviourCoding]) -> dict[str, dict[str, float]]:
    """Trace key -> flat columns ``{scheme}.{category}`` plus Bales groups ``bales.group.{ask|give|...}``.

    Failed codings contribute NaN columns so that averages skip them instead of counting them as zeros.
    """
    out: dict[str, dict[str, float]] = {}
    for c in codings:
        row = out.setdefault(c.key, {})
        cats = SCHEMES[c.scheme].categories if c.scheme in SCHEMES else tuple((c.counts or {}).keys())
        for cat in cats:
            row[f"{c.scheme}.{cat}"] = float("nan") if c.counts is None else float(c.counts[cat])
        if c.scheme == "bales":
            for group, members in BALES_GROUPS.items():
                row[f"bales.group.{group}"] = (
                    float("nan") if c.counts is None else float(sum(c.counts[m] for m in members))
                )
    return out
