"""The outcome registry: every per-trace outcome of a steering run is declared here, once.

An :class:`Outcome` names a column of a run's per-trace table (or a family of columns, by prefix), says how it is
computed from the run's records and sidecar files, and whether it is 0/1 (``binary``) or any number
(``continuous``). Whatever is registered flows through unchanged code: :func:`add_outcomes` builds it into the
per-trace table (``analysis.traces.load_run_table``), the ``analyze`` stage fits it on strength (and on the control
contrast), writes its mean per strength in ``behaviour_rates.csv`` when ``rates`` is set, and the ``report`` stage
shows all of that. The built-ins, in table order: ``correct``; the graded task outcomes ``task.*``; the coherence
guard (``coherence_logprob``, read beside the outcomes, never fitted); the heuristic markers ``markers.*``; the LLM
judge's codings ``judge.*`` with the Bales reciprocities and the perspective outcomes derived from them. The SAE
diversity outcome (``diversity.*``) is not per-run: it needs a screen's feature sets, and the ``analyze`` stage
fits it as slopes (``diversity_regression.csv``).

Adding one (docs/extending.md)::

    def long_trace(frame, run):  # run: the run directory (its sidecar files), unused here
        return frame.assign(**{"toy.long": (frame["completion"].str.len() > 60).astype(float)})

    register_outcome(Outcome("toy.long", "binary", "the completion is longer than 60 characters", add=long_trace))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from interp_sot.errors import InterpSotError

if TYPE_CHECKING:  # pandas is imported where used, so that the CLI's --help stays fast
    import pandas as pd

OutcomeKind = Literal["binary", "continuous"]
OutcomeRole = Literal["outcome", "guard"]
Adder = Callable[["pd.DataFrame", "Path | None"], "pd.DataFrame"]
"""``add(frame, run)``: ``frame`` (a run's per-trace table so far: its records, one row per trace, and the columns of
the outcomes registered before) with this outcome's column(s) added; ``run``: the run directory holding the records
and their sidecar files (``behaviours.jsonl``, ``coherence.jsonl``, ...), None for records given in memory."""


@dataclass(frozen=True)
class Outcome:
    """One per-trace outcome (or family of outcome columns) of a steering run."""

    name: str
    """The column, or a family of columns: a prefix ending in ``.`` (``markers.`` covers ``markers.wait``, ...)."""
    kind: OutcomeKind
    """``binary``: 0/1 per trace (fitted as a linear probability model; any other value is refused);
    ``continuous``: any real number (fitted by OLS). Both get problem fixed effects and SEs clustered by problem."""
    description: str
    """What it measures, in one sentence."""
    add: Adder | None = None
    """Adds the column(s) to a run's per-trace table; None: the records carry it."""
    method: str = "computed"
    """How it is measured: the ``method`` column of the behaviour-rate table (``heuristic``, ``llm_judge``, ...)."""
    unit: str = "per_trace"
    """Unit of one value: the ``unit`` column of the behaviour-rate table (``per_1k_words``, ``count``, ...)."""
    rates: bool = True
    """Shown per strength (mean with a problem-bootstrap interval) in the behaviour-rate table and the report."""
    subset: bool = False
    """Defined on a subset of traces by construction (the error of a *valid* answer): fitted on the traces that
    have it, whatever ``AnalyzeConfig.missing`` says."""
    lenient: bool = False
    """Added to every run without being asked for: a fit that fails is listed under ``skipped`` even with
    ``AnalyzeConfig.on_unfittable="error"`` (an outcome nobody asked for must not fail an analysis)."""
    role: OutcomeRole = "outcome"
    """``outcome``: regressed on strength; ``guard``: read beside the outcomes (coherence), never fitted."""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or self.name == ".":
            raise InterpSotError(f"an outcome needs a column name or a family prefix ending in '.', got {self.name!r}")
        if self.kind not in ("binary", "continuous"):
            raise InterpSotError(f"outcome {self.name!r}: kind must be 'binary' or 'continuous', got {self.kind!r}")
        if self.role not in ("outcome", "guard"):
            raise InterpSotError(f"outcome {self.name!r}: role must be 'outcome' or 'guard', got {self.role!r}")
        if not self.description.strip():
            raise InterpSotError(f"outcome {self.name!r} needs a description")
        if self.add is not None and not callable(self.add):
            raise InterpSotError(f"outcome {self.name!r}: add must be a function (frame, run) -> frame")

    @property
    def family(self) -> bool:
        """Whether ``name`` is a prefix naming several columns."""
        return self.name.endswith(".")

    def covers(self, column: str) -> bool:
        return column.startswith(self.name) if self.family else column == self.name


_REGISTRY: dict[str, Outcome] = {}


def register_outcome(outcome: Outcome, *, replace: bool = False) -> Outcome:
    """Declare ``outcome`` (appended: outcomes are added to a per-trace table in registration order, so an outcome
    derived from another registers after it). A name already taken is refused unless ``replace``."""
    if not isinstance(outcome, Outcome):
        raise InterpSotError(f"register_outcome takes an Outcome, got {type(outcome).__name__}")
    if outcome.name in _REGISTRY and not replace:
        raise InterpSotError(f"outcome {outcome.name!r} is already registered (pass replace=True to redefine it)")
    _REGISTRY[outcome.name] = outcome
    return outcome


def unregister_outcome(name: str) -> Outcome:
    """Remove the outcome registered as ``name`` and return it."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise InterpSotError(f"no outcome {name!r} is registered (registered: {', '.join(_REGISTRY)})") from None


def registered_outcomes() -> tuple[Outcome, ...]:
    """Every registered outcome, in registration order."""
    return tuple(_REGISTRY.values())


def outcome_of(column: str) -> Outcome | None:
    """The registration that covers ``column`` (an exact name before the longest matching family), or None."""
    exact = _REGISTRY.get(column)
    if exact is not None:
        return exact
    families = [o for o in _REGISTRY.values() if o.family and o.covers(column)]
    return max(families, key=lambda o: len(o.name)) if families else None


def outcome_columns(frame: pd.DataFrame, *, rates: bool = False, correct: bool = False) -> list[str]:
    """The registered outcome columns ``frame`` holds (numeric ones, in column order; guards never).

    ``rates``: only those shown in the behaviour-rate table; ``correct``: include ``correct`` itself (the
    analysis always fits it first, so by default it is left out of the list of further outcomes)."""
    import pandas as pd

    cols = []
    for c in frame.columns:
        o = outcome_of(str(c))
        if o is None or o.role != "outcome" or (rates and not o.rates) or (c == "correct" and not correct):
            continue
        if pd.api.types.is_numeric_dtype(frame[c]):
            cols.append(str(c))
    return cols


def add_outcomes(frame: pd.DataFrame, run: Path | None) -> pd.DataFrame:
    """``frame`` (records, one row per trace) with every registered outcome that has an adder, in order."""
    for outcome in registered_outcomes():
        if outcome.add is not None:
            frame = outcome.add(frame, run)
    return frame


def check_values(frame: pd.DataFrame, column: str) -> None:
    """Refuse a ``binary`` outcome whose values are not 0/1 (missing values pass: they are not coded)."""
    import pandas as pd

    o = outcome_of(column)
    if o is None or o.kind != "binary" or column not in frame.columns:
        return
    values = pd.to_numeric(frame[column], errors="coerce").dropna()
    bad = values[~values.isin([0, 1])]
    if len(bad):
        raise InterpSotError(f"outcome {column!r} is registered as binary but {len(bad)} trace(s) have other values "
                             f"(e.g. {bad.iloc[0]!r}); register it as continuous or code it 0/1")


def _builtins() -> None:
    from interp_sot.analysis import traces as t

    for outcome in (
        Outcome("correct", "binary", "the answer reaches the target under the task's rules", rates=False,
                method="task", unit="share"),
        Outcome("task.answer_found", "binary", "the trace states an answer", add=t.add_answer_found, rates=False,
                lenient=True, method="task", unit="share"),
        Outcome("task.valid_expression", "binary", "the answer uses each given number as the rules ask, whatever "
                "its value", add=t.add_valid_expression, rates=False, lenient=True, method="task", unit="share"),
        Outcome("task.abs_error", "continuous", "|value - target| of a valid answer (NaN without one)",
                add=t.add_abs_error, rates=False, lenient=True, subset=True, method="task", unit="absolute"),
        Outcome("coherence_logprob", "continuous", "the unsteered model's mean log-prob of the generated tokens "
                "(with the degenerate-text flag; the measure stage's coherence.jsonl)", add=t.add_coherence,
                rates=False, role="guard", method="measure", unit="nats_per_token"),
        Outcome(t.MARKER_PREFIX, "continuous", "heuristic marker occurrences per 1,000 words (markers.conversational: "
                "all of them together)", add=t.add_marker_rates, method="heuristic", unit="per_1k_words"),
        Outcome(t.JUDGE_PREFIX, "continuous", "LLM-judge counts per trace, judge.<scheme>.<category> "
                "(behaviours.jsonl)", add=t.add_run_codings, method="llm_judge", unit="count"),
        Outcome(t.JUDGE_PREFIX + "bales.reciprocity.", "continuous", "Jaccard reciprocity of ask/give and "
                "positive/negative Bales acts per trace", add=t.add_bales_reciprocity, method="llm_judge",
                unit="jaccard"),
        Outcome(t.JUDGE_PREFIX + "perspectives.", "continuous", "perspectives per trace and the SD of their BFI-10 "
                "scores (perspectives.jsonl)", add=t.add_run_perspectives, method="llm_judge", unit="count_or_sd"),
    ):
        register_outcome(outcome)


_builtins()
