"""Stage ``screen``: conversation ratio, the screening table, the two-criterion filter, labels and categories.

Reads: a :class:`~interp_sot.features.stats.FeatureStats` with its top-k contexts (the ``stats`` stage's
directory) and, for judges, a tokenizer to render contexts. Writes into its directory: ``screen.parquet`` and
``screen.csv`` (one row per feature), ``conversation_scores.jsonl`` (every judged context; an interrupted screen
resumes from it), ``judge_cache.jsonl`` (every judge reply, keyed by the request: a rerun makes no judge call),
``category_scores.jsonl`` + ``categories.csv`` with ``categories``, and ``summary.json``.

With a provider batch file (``batch_out`` / ``batch_in``, see :mod:`interp_sot.judging.batch`) the judge answers
only from the reply cache: a results file is read into it first, and every request still unanswered is written
to the batch file instead of being sent, its items left unjudged (NaN) until the results come back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats
from interp_sot.io import atomic_write_json, atomic_write_text, write_frame
from interp_sot.judging.batch import DeferredJudge, read_batch_results, write_batch_file
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.screening.conversation_ratio import Renderer
from interp_sot.screening.pick import source_counts
from interp_sot.screening.score_store import ScoreStore
from interp_sot.screening.screen import SCORES_FILE, apply_filter, save_table, screen
from interp_sot.stages.rundir import begin_stage, finish_stage
from interp_sot.stages.screen_config import ScreenConfig, ValidateOn  # the settings: pure Python, for the CLI

if TYPE_CHECKING:
    import numpy as np

    from interp_sot.judging.base import Judge
    from interp_sot.protocols import Tokenizer

logger = logging.getLogger(__name__)

STAGE = "screen"
JUDGE_CACHE = "judge_cache.jsonl"
"""Every judge reply of the run, keyed by the request (also the ``custom_id`` of batch-file lines)."""
SCREEN_PROMPTS: dict[str, PromptTemplate] = {t.name: t for t in (CONVERSATIONAL_SCORE, FEATURE_CATEGORY)}
"""The prompt kinds the screen uses, by template name: what ``prompts=`` (``--prompt-file KIND=PATH``) replaces."""


class ScreenResult(NamedTuple):
    """The screening table and the run's summary."""

    table: pd.DataFrame
    out: Path
    summary: dict[str, Any]


def screen_stage(
    stats: FeatureStats,
    config: ScreenConfig,
    out: str | Path,
    *,
    contexts: ContextStore | None = None,
    tokenizer: Tokenizer | None = None,
    judge: Judge | None = None,
    labels: Mapping[int, str] | None = None,
    inputs: Mapping[str, object] | None = None,
    prompts: Mapping[str, PromptTemplate] | None = None,
    batch_out: str | Path | None = None,
    batch_in: str | Path | None = None,
    validate_on: ValidateOn | None = None,
) -> ScreenResult:
    """Screen every feature of ``stats`` into ``out``.

    ``contexts`` defaults to ``stats.contexts``; ``judge`` to ``make_judge(config.judge)`` (pass one to set
    backend options such as concurrency); it is wrapped in the run's reply cache (``judge_cache.jsonl``) unless it
    is a cache already. ``labels``: feature -> explanation text (Neuronpedia export). ``prompts``: replacement
    templates by kind (:data:`SCREEN_PROMPTS`; e.g. from ``judging.prompts.files.load_prompt_files``), whose keys
    (with the file hash) join the run's input identity. ``batch_in`` / ``batch_out``: the provider batch route (see
    the module doc; counts in ``summary["judge_batch"]``). ``validate_on="labels"``: the judge's calls on the
    judged contexts against the documents' ``label_field`` (accuracy, Cohen's kappa in
    ``summary["judge_validation"]``).
    """
    from interp_sot.judging.spec import make_judge

    out = Path(out)
    prompts = _check_prompts(prompts)
    template = prompts.get(CONVERSATIONAL_SCORE.name, CONVERSATIONAL_SCORE)
    store = contexts if contexts is not None else getattr(stats, "contexts", None)
    if store is None:
        raise ValueError("the statistics hold no contexts; collect with keep_contexts=True or pass contexts")
    if judge is None:
        judge = make_judge(config.judge)
    _check_judge_options(judge, batch_in, batch_out, validate_on)
    if config.categories and (judge is None or labels is None):
        raise ValueError("categories need a judge (not 'labels') and feature labels")
    doc_labels = store.sequence_labels(config.label_field) if judge is None or validate_on else None
    if prompts:
        inputs = {**(inputs or {}), "prompts": {kind: t.key for kind, t in sorted(prompts.items())}}
    begin_stage(out, STAGE, config, inputs)
    run_judge, batch_info = _run_judge(judge, out, batch_in, batch_out)
    render: Renderer | None = None
    if run_judge is not None:
        before, after = config.window

        def render_context(seq: int, pos: int) -> str:
            return store.render(seq, pos, before=before, after=after, tokenizer=tokenizer)

        render = render_context
    features = list(config.features) if config.features else None
    table = screen(stats, judge=run_judge, labels=labels, features=features,
                   work_dir=out if run_judge is not None else None, ratio_config=config.ratio,
                   filter_config=config.filter, template=template, render=render,
                   doc_labels=doc_labels if run_judge is None else None)
    if getattr(stats, "contexts", None) is store:
        try:
            table["n_sources"] = source_counts(stats, config.source_field, config.ratio.k)
            table = apply_filter(table, config.filter)  # re-rank: n_sources is a key of the one ranking order
        except KeyError:
            logger.info("the corpus has no %r field: the pick cannot prefer source-general features",
                        config.source_field)
    files = list(save_table(table, out))
    summary: dict[str, Any] = {
        "features": len(table),
        "with_ratio": int(table["conversation_ratio"].notna().sum()),
        "passing_filter": int(table["passes_filter"].sum()),
        "judge": config.judge if judge is None else judge.name,
        "filter": table.attrs.get("filter"),
    }
    if config.categories and run_judge is not None:  # categories need a judge (checked above)
        from interp_sot.screening.categories import classify_categories

        cats = classify_categories(labels, run_judge, out / "category_scores.jsonl",
                                   template=prompts.get(FEATURE_CATEGORY.name, FEATURE_CATEGORY))
        write_frame(cats, out / "categories.csv", index=True)
        files.append(out / "categories.csv")
        summary["categories"] = {k: int(v) for k, v in cats["category"].value_counts().items()}
    if run_judge is not None:
        cache = run_judge.cache if isinstance(run_judge, DeferredJudge) else run_judge
        summary["judge_calls"] = int(getattr(cache, "misses", 0))  # reached the judge in this run (rerun: 0)
    if prompts:
        summary["prompts"] = {kind: t.key for kind, t in sorted(prompts.items())}
    if batch_info is not None and isinstance(run_judge, DeferredJudge):
        summary["judge_batch"] = _finish_batch(run_judge, batch_info, batch_out)
    if validate_on == "labels" and run_judge is not None and render is not None and doc_labels is not None:
        summary["judge_validation"] = _validation(stats, render, doc_labels, run_judge, template, config, out)
    atomic_write_json(out / "summary.json", summary)
    finish_stage(out, STAGE, [*files, out / "summary.json"], summary)
    return ScreenResult(table, out, summary)


def _check_prompts(prompts: Mapping[str, PromptTemplate] | None) -> dict[str, PromptTemplate]:
    """Replacement templates by kind, checked against the shipped ones (kind known, same placeholders)."""
    out = dict(prompts or {})
    for kind, template in out.items():
        base = SCREEN_PROMPTS.get(kind)
        if base is None:
            raise ValueError(f"unknown screen prompt kind {kind!r}; known: {sorted(SCREEN_PROMPTS)}")
        if template.fields != base.fields:
            raise ValueError(f"the {kind!r} prompt must have the placeholders {list(base.fields)}, "
                             f"got {list(template.fields)}")
    return out


def _check_judge_options(judge: Judge | None, batch_in: str | Path | None, batch_out: str | Path | None,
                         validate_on: ValidateOn | None) -> None:
    """Fail before any work on options that cannot apply."""
    if judge is None and (batch_in is not None or batch_out is not None or validate_on is not None):
        raise ValueError("judge batch files and judge validation need an LLM judge; the 'labels' mode calls none")
    if validate_on not in (None, "labels"):
        raise ValueError(f"validate_on must be 'labels' or None, got {validate_on!r}")
    if batch_in is not None and not Path(batch_in).is_file():
        raise FileNotFoundError(f"judge batch results file {batch_in} does not exist")
    if batch_in is not None and batch_out is not None and Path(batch_in).resolve() == Path(batch_out).resolve():
        raise ValueError(f"the batch results file and the batch request file are the same file ({batch_in})")


def _run_judge(judge: Judge | None, out: Path, batch_in: str | Path | None,
               batch_out: str | Path | None) -> tuple[Judge | None, dict[str, object] | None]:
    """The judge the screen calls: the reply cache around ``judge`` (or, on the batch route, a
    :class:`DeferredJudge` over it after reading ``batch_in`` into it), and what the import did."""
    if judge is None or (isinstance(judge, DeferredJudge) and batch_in is None and batch_out is None):
        return judge, None
    if isinstance(judge, DeferredJudge):
        cache = judge.cache
    else:
        cache = judge if isinstance(judge, CachedJudge) else CachedJudge(judge, out / JUDGE_CACHE)
    if batch_in is None and batch_out is None:
        return cache, None
    info: dict[str, object] = {}
    if batch_in is not None:
        # the request file of the previous round (if it is still there) tells which requests got no line
        requests = Path(batch_out) if batch_out is not None and Path(batch_out).is_file() else None
        imported = read_batch_results(batch_in, cache, requests=requests)
        info["in"] = {"file": str(batch_in), "stored": imported.stored, "already_cached": imported.already,
                      "failed": len(imported.failed), "missing": len(imported.missing),
                      "unreadable_lines": len(imported.bad_lines)}
    return DeferredJudge(cache), info


def _finish_batch(judge: DeferredJudge, info: dict[str, object], batch_out: str | Path | None
                  ) -> dict[str, object]:
    """Write the requests the cache could not answer to ``batch_out``; the batch summary for ``summary.json``."""
    pending = judge.requests
    info["answered_from_cache"] = judge.hits
    info["pending_requests"] = len(pending)
    if batch_out is not None:
        written = write_batch_file(pending, batch_out)
        if not pending and Path(batch_out).is_file():
            atomic_write_text(batch_out, "")  # the previous round's requests are all answered: nothing to submit
        info["out"] = {"file": str(batch_out), "requests": written.requests, "prompt_tokens": written.prompt_tokens,
                       "max_reply_tokens": written.max_reply_tokens}
    elif pending:
        logger.warning("%d judge requests have no reply in the batch results; their items stay unjudged. Write them "
                       "to a new batch file with --judge-batch-out (batch_out=)", len(pending))
    return info


def _validation(stats: FeatureStats, render: Renderer, doc_labels: np.ndarray, judge: Judge,
                template: PromptTemplate, config: ScreenConfig, out: Path) -> dict[str, Any]:
    """Agreement of the judge's stored calls with the document labels, as JSON (NaN as null)."""
    from interp_sot.screening.judge_validation import judge_agreement

    scores = ScoreStore(out / SCORES_FILE, judge.name, template.key)
    found = judge_agreement(stats, render, doc_labels, scores, features=config.features, k=config.ratio.k,
                            score_threshold=config.ratio.score_threshold)
    return {"labels": config.label_field, "n": found.n, "unjudged": found.unjudged,
            "accuracy": None if math.isnan(found.accuracy) else found.accuracy,
            "kappa": None if math.isnan(found.kappa) else found.kappa,
            "confusion": found.confusion.tolist()}
