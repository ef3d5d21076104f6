"""From a steering run's output to the analysis schema: steer -> analyze without hand-editing tables.

A steer / controls run's per-trace table (``traces``, written by the ``analyze`` stage) has one row per generated
trace: ``problem_id``, ``strength``, ``correct``, ``n_new_tokens``, ``group`` and the registered outcomes of
:mod:`interp_sot.analysis.outcomes` (marker rates ``markers.*``, judge counts ``judge.<scheme>.<category>``, ...).
The analysis expects ``trace_len``, a 0/1 ``conversational`` for control runs, and the four cognitive behaviours
under their plain names (the default mediators). Bookkeeping numbers such as ``n_prompt_tokens`` or ``target``
are not outcomes and must not be regressed on strength by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from interp_sot.screening.groups import CONTROL_GROUPS, CONVERSATIONAL_GROUP

if TYPE_CHECKING:  # pandas is imported where used, so that the CLI's --help stays fast
    import pandas as pd

COGNITIVE_BEHAVIOURS = ("verification", "backtracking", "subgoal_setting", "backward_chaining")
"""The cognitive behaviours (Gandhi et al. 2025) that mediate the steering effect in the paper."""
TASK_PREFIX = "task."
"""Graded task outcomes of every trace (``task.answer_found``, ``task.valid_expression``, ``task.abs_error``):
partial progress that stays visible where accuracy is rare."""
SWEEP_MARKERS = ("key", "n_new_tokens", "completion")
"""Columns that identify a table as a sweep traces table."""
TRACE_FILES = ("traces.parquet", "traces.csv", "sweep.jsonl", "controls.jsonl")
"""What a run directory is read from, in order of preference (the last two: the records of a steer/controls run)."""
RECORD_FILES = ("sweep.jsonl", "controls.jsonl")
BEHAVIOURS_FILE = "behaviours.jsonl"
"""LLM-judge codings a steer/controls run writes next to its records."""
PERSPECTIVES_FILE = "perspectives.jsonl"
"""LLM-judge perspective analyses (BFI-10 per perspective) a run writes with ``perspectives`` coding."""


class SweepTable(NamedTuple):
    """A table in the analysis schema and the outcome columns it carries."""

    frame: pd.DataFrame
    outcomes: list[str]
    """Outcome columns besides ``correct``: the registered ones it holds (``analysis.outcomes``); empty if the table
    says nothing about which columns are outcomes."""
    traces: pd.DataFrame | None = None
    """A run's per-trace table before the schema mapping (``analysis.traces.run_traces``); None for a plain table."""


def is_sweep_traces(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in SWEEP_MARKERS)


def resolve_run_path(path: str | Path) -> Path:
    """A table file, or the table inside a steer/controls run directory."""
    path = Path(path)
    if path.is_dir():
        for name in TRACE_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: a run directory needs one of {', '.join(TRACE_FILES)}")
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    return path


def to_analysis_schema(df: pd.DataFrame) -> SweepTable:
    """Map a sweep traces table onto the analysis columns; any other table passes through unchanged."""
    from interp_sot.analysis.outcomes import outcome_columns

    if not is_sweep_traces(df):
        return SweepTable(df, [])
    out = df.copy()
    if "trace_len" not in out.columns:
        out["trace_len"] = out["n_new_tokens"]
    out["correct"] = out["correct"].astype(int)
    if "conversational" not in out.columns and "group" in out.columns and out["group"].notna().any():
        groups = set(out["group"].dropna().unique())
        unknown = groups - set(CONTROL_GROUPS)
        if unknown:
            raise ValueError(f"control groups must be 'conversational' or 'non_conversational'; "
                             f"found {sorted(unknown)}")
        out["conversational"] = (out["group"] == CONVERSATIONAL_GROUP).astype(int)
    for name in COGNITIVE_BEHAVIOURS:
        source = f"judge.cognitive.{name}"
        if name not in out.columns and source in out.columns:
            out[name] = out[source]
    return SweepTable(out, outcome_columns(out))


def read_table(path: str | Path) -> pd.DataFrame:
    """A table from .csv / .parquet / .jsonl (by extension)."""
    import pandas as pd

    from interp_sot.io import read_jsonl

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        return pd.DataFrame(read_jsonl(path))
    raise ValueError(f"{path}: unsupported table format {suffix!r}; use .csv, .parquet or .jsonl")

