"""The per-trace table of a steering run: its records, one row per trace, with every registered outcome.

:func:`load_run_table` reads a run directory (its records and sidecar files) or any table into the analysis schema;
the columns a run's records gain come from the outcome registry (:mod:`interp_sot.analysis.outcomes`), whose
built-in adders live here: the graded task outcomes ``task.*``, the coherence guard, the heuristic marker rates
``markers.*`` (per 1,000 words) and the LLM judge's counts ``judge.*`` with the Bales reciprocities and the
perspective outcomes derived from them. The statistics over this table are :mod:`interp_sot.analysis.descriptive`
(per strength) and :mod:`interp_sot.analysis.steering_effects` (regressions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from interp_sot.analysis.sweep_table import (
    BEHAVIOURS_FILE,
    PERSPECTIVES_FILE,
    RECORD_FILES,
    TASK_PREFIX,
    SweepTable,
    read_table,
    resolve_run_path,
    to_analysis_schema,
)
from interp_sot.behaviours.judge_coding import BehaviourCoding, coding_columns
from interp_sot.behaviours.markers import MarkerCoder
from interp_sot.errors import InterpSotError
from interp_sot.experiments.records import SweepRecord
from interp_sot.io import read_jsonl

logger = logging.getLogger(__name__)

MARKER_PREFIX = "markers."
CONVERSATIONAL_TOTAL = "conversational"
"""``markers.conversational``: every marker per 1,000 words together; one pre-registrable summary (the demo's
mediator) instead of choosing a single marker after seeing which one moved."""
JUDGE_PREFIX = "judge."


def records_frame(records: Sequence[SweepRecord | Mapping[str, object]]) -> pd.DataFrame:
    """One row per trace (prompt and settings dropped; ``completion`` kept for coding), no outcome added yet."""
    dicts = [r.to_dict() if isinstance(r, SweepRecord) else dict(r) for r in records]
    if not dicts:
        raise InterpSotError("no sweep records to analyse")
    df = pd.DataFrame(dicts).drop(columns=["prompt", "settings"], errors="ignore")
    first = [f.name for f in fields(SweepRecord) if f.name in df.columns]  # the record's order, not the log's sorted
    df = df[first + [c for c in df.columns if c not in first]]
    needed = {"key", "feature", "strength", "problem_id", "correct", "completion", "n_new_tokens"}
    missing = needed - set(df.columns)
    if missing:
        raise InterpSotError(f"sweep records lack columns {sorted(missing)}")
    df["feature"] = df["feature"].astype(str)
    df["correct"] = df["correct"].astype(bool)
    return df


def run_traces(records: Sequence[SweepRecord | Mapping[str, object]], run: Path | None) -> pd.DataFrame:
    """The per-trace table: :func:`records_frame` with every registered outcome (``outcomes.add_outcomes``);
    ``run``: the folder of the records and their sidecar files (None: records in memory, no sidecars)."""
    from interp_sot.analysis.outcomes import add_outcomes

    return add_outcomes(records_frame(records), run)


def run_settings(path: str | Path) -> dict[str, Any] | None:
    """The settings every record of the run at ``path`` stores (its first record's), None for a plain table."""
    file = resolve_run_path(path)
    if file.name not in RECORD_FILES:
        return None
    with file.open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), None)
    if first is None:
        return None
    settings = json.loads(first).get("settings")
    return settings if isinstance(settings, dict) else None


def add_answer_found(df: pd.DataFrame, run: Path | None = None) -> pd.DataFrame:
    """``task.answer_found``: 0/1, the trace states an answer (records without an ``answer`` field: left out)."""
    return df.assign(**{TASK_PREFIX + "answer_found": df["answer"].notna().astype(float)}) if "answer" in df else df


def add_valid_expression(df: pd.DataFrame, run: Path | None = None) -> pd.DataFrame:
    """``task.valid_expression``: 0/1 from the records' scoring field (records from before it existed: left out)."""
    if "valid_expression" not in df:
        return df
    return df.assign(**{TASK_PREFIX + "valid_expression":
                        pd.to_numeric(df["valid_expression"], errors="coerce").astype(float)})


def add_abs_error(df: pd.DataFrame, run: Path | None = None) -> pd.DataFrame:
    """``task.abs_error``: |value - target| of a valid answer, NaN otherwise (records without the field: left out)."""
    if "abs_error" not in df:
        return df
    return df.assign(**{TASK_PREFIX + "abs_error": pd.to_numeric(df["abs_error"], errors="coerce").astype(float)})


def add_graded_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """``task.answer_found``, ``task.valid_expression`` and ``task.abs_error`` (the three adders above)."""
    return add_abs_error(add_valid_expression(add_answer_found(df)))


def add_coherence(df: pd.DataFrame, run: Path | None = None) -> pd.DataFrame:
    """``coherence_logprob`` and ``degenerate`` from the measure stage's ``coherence.jsonl`` in ``run`` (unchanged
    without it). The ``analyze`` stage refuses a measure pass that did not finish before it reads the run."""
    from interp_sot.analysis.measures import join_coherence

    return df if run is None else join_coherence(df, run)


def add_marker_rates(df: pd.DataFrame, run: Path | None = None, *, coder: MarkerCoder | None = None,
                     per: int = 1000) -> pd.DataFrame:
    """Add ``markers.<name>`` (occurrences per ``per`` words of the completion), their sum
    ``markers.conversational`` and ``n_words``."""
    coder = coder or MarkerCoder()
    codings = [coder.code(text) for text in df["completion"]]
    out = df.copy()
    out["n_words"] = [c.n_words for c in codings]
    for name in coder.names:
        out[MARKER_PREFIX + name] = [c.rates(per)[name] for c in codings]
    out[MARKER_PREFIX + CONVERSATIONAL_TOTAL] = [sum(c.rates(per).values()) for c in codings]
    return out


def add_judge_codings(df: pd.DataFrame, codings: Sequence[BehaviourCoding]) -> pd.DataFrame:
    """Add ``judge.<scheme>.<category>`` counts (NaN where the judge failed or the trace was not coded)."""
    cols = coding_columns(codings)
    if not cols:
        return df
    frame = pd.DataFrame.from_dict(cols, orient="index").add_prefix(JUDGE_PREFIX)
    frame.index.name = "key"
    return df.merge(frame, how="left", left_on="key", right_index=True)


def add_run_codings(df: pd.DataFrame, run: Path | None) -> pd.DataFrame:
    """:func:`add_judge_codings` from the run's ``behaviours.jsonl`` (unchanged without it)."""
    path = None if run is None else run / BEHAVIOURS_FILE
    if path is None or not path.is_file():
        return df
    return add_judge_codings(df, [BehaviourCoding(**d) for d in read_jsonl(path)])


def add_run_perspectives(df: pd.DataFrame, run: Path | None) -> pd.DataFrame:
    """:func:`add_perspective_outcomes` from the run's ``perspectives.jsonl`` (unchanged without it)."""
    path = None if run is None else run / PERSPECTIVES_FILE
    if path is None or not path.is_file():
        return df
    return add_perspective_outcomes(df, read_jsonl(path))


def load_run_table(path: str | Path) -> SweepTable:
    """A run directory, its records or any table, in the analysis schema.

    From a run's records (``sweep.jsonl`` / ``controls.jsonl``) every registered outcome is added
    (:func:`run_traces`: the markers, the run's judge codings and what derives from them, its coherence measures),
    so every outcome the run holds inputs for is there; the table before the schema mapping is ``traces``.
    """
    file = resolve_run_path(path)
    if file.name not in RECORD_FILES:
        return to_analysis_schema(read_table(file))
    traces = run_traces(read_jsonl(file), file.parent)
    return to_analysis_schema(traces)._replace(traces=traces)


def add_bales_reciprocity(df: pd.DataFrame, run: Path | None = None) -> pd.DataFrame:
    """Add ``judge.bales.reciprocity.<dimension>`` (Jaccard of ask/give and positive/negative acts per trace)
    when the traces carry the twelve Bales IPA counts (``judge.bales.<category>``)."""
    from interp_sot.analysis.bales import IPA_CATEGORIES, reciprocity

    cols = [f"{JUDGE_PREFIX}bales.{c}" for c in IPA_CATEGORIES]
    if not all(c in df.columns for c in cols):
        return df
    coded = df[cols].notna().all(axis=1)
    counts = df.loc[coded, cols].set_axis(list(IPA_CATEGORIES), axis=1)
    rec = reciprocity(counts, id_column=None)
    out = df.copy()
    for dim in rec.columns:
        if not dim.endswith("_union"):
            out[f"{JUDGE_PREFIX}bales.reciprocity.{dim}"] = float("nan")
            out.loc[coded, f"{JUDGE_PREFIX}bales.reciprocity.{dim}"] = rec[dim].to_numpy()
    return out


def add_perspective_outcomes(df: pd.DataFrame, records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """Add ``judge.perspectives.n`` and ``judge.perspectives.sd_<dimension>`` (BFI-10 spread across a trace's
    perspectives) from perspective-analysis records keyed by trace (``trace_id`` = the row key)."""
    from interp_sot.analysis.personality import bfi10_scores, personality_diversity
    from interp_sot.analysis.perspectives import tables_from_records

    tables = tables_from_records(records)
    if not len(tables.traces):
        return df
    ok = tables.traces[tables.traces["status"] == "ok"]
    per_trace = pd.DataFrame({"key": ok["trace_id"].astype(str),
                              f"{JUDGE_PREFIX}perspectives.n": ok["n_perspectives"].astype(float)})
    if len(tables.perspectives):
        spread = personality_diversity(bfi10_scores(tables.perspectives, missing="drop"))
        spread = spread.drop(columns=["n_perspectives"], errors="ignore")
        spread = spread.rename(columns={c: f"{JUDGE_PREFIX}perspectives.{c}" for c in spread.columns
                                        if c != "trace_id"})
        per_trace = per_trace.merge(spread.rename(columns={"trace_id": "key"}).astype({"key": str}), on="key",
                                    how="left")
    return df.merge(per_trace, on="key", how="left")
