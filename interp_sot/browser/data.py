"""What the feature browser shows, gathered from the run directories interp_sot writes.

Two sources of features: :class:`FeatureStats` (with its context store and the tokenizer to decode it), or a
Neuronpedia v1 export (:mod:`interp_sot.features.neuronpedia`), so a researcher can browse theirs and ours alike.
Either way a feature's contexts are Neuronpedia activation rows, built by one function
(:func:`~interp_sot.features.neuronpedia.feature_windows`). On top: the screen table (conversation ratio with the
lower bound of its Wilson interval, filter, labels), the judge's per-context scores when the screen was judged, and
steering samples from sweep records. The table opens in the pick's order (``pick_order``: the position of each
feature in :func:`interp_sot.screening.pick.pick_order`, the function the pick stage takes its first row of).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.features.neuronpedia import (
    NeuronpediaExport,
    context_tokenizer,
    feature_windows,
    qualifying_index,
    read_export,
    token_decoder,
)
from interp_sot.features.neuronpedia import Row as ActivationRow

if TYPE_CHECKING:
    import pandas as pd

    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import Tokenizer
    from interp_sot.stages.pick import PickConfig

logger = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("feature", "feature", "int"),
    ("frequency", "frequency", "pct"),
    ("fire_count", "firings", "int"),
    ("max_act", "max act", "num"),
    ("mean_act", "mean act", "num"),
    ("conversation_ratio", "conv. ratio", "pct"),
    ("ratio_lo", "ratio lower bound", "pct"),
    ("n_contexts", "judged contexts", "int"),
    ("onset_share", "onset share", "pct"),
    ("passes_filter", "filter", "bool"),
    ("rank", "rank", "int"),
    ("pick_order", "pick order", "int"),
    ("label", "label", "str"),
)
"""(column, header, display kind) of the feature table, in order; absent inputs leave a column empty."""
SCORES_FILE = "conversation_scores.jsonl"
"""The screen's per-context judge scores (``screening.score_store.ScoreStore``: sha256 of the rendered context ->
score)."""

Cell = int | float | str | bool | None
"""One JSON cell of the feature table."""
Table = dict[str, list[Cell]]
"""Column name -> one cell per feature."""
Page = dict[str, object]
"""One feature page's JSON record."""


@dataclass(frozen=True)
class SweepSample:
    """The fields of a sweep record (``experiments.records.SweepRecord``) that the feature pages show."""

    feature: int | str
    strength: float
    problem_id: str
    completion: str
    correct: bool
    finish_reason: str
    group: str | None = None


@dataclass(frozen=True)
class BrowserOptions:
    """How much of each feature the pages show."""

    contexts: int = 20
    """Top contexts shown per feature (the histogram uses all stored top-k values)."""
    before: int = 24
    """Tokens shown before the activating token."""
    after: int = 8
    """Tokens shown after it."""
    samples_per_strength: int = 3
    """Steering completions shown per (feature, strength)."""
    sample_chars: int = 1200
    """Completions are cut to this many characters."""
    judge_window: tuple[int, int] = (32, 8)
    """(before, after) tokens the screen rendered for its judge (``interp-sot screen --window``); used to find
    each context's judge score."""
    bins: int = 20
    """Bars of the activation histogram."""
    pick: PickConfig | None = None
    """The pick's settings (min judged contexts, position column) that the default ``pick_order`` follows; None:
    the pick stage's defaults. Pass the run's own when it picked with other settings."""

    def __post_init__(self) -> None:
        for name in ("contexts", "before", "after", "samples_per_strength", "sample_chars", "bins"):
            if getattr(self, name) < (1 if name in ("bins", "sample_chars") else 0):
                raise ValueError(f"BrowserOptions.{name} must be >= {1 if name in ('bins', 'sample_chars') else 0}")


@dataclass
class Sources:
    """Everything the browser reads, loaded."""

    stats: FeatureStats | None = None
    """FeatureStats (or None when browsing a Neuronpedia export)."""
    export: NeuronpediaExport | None = None
    tokenizer: Tokenizer | None = None
    screen: pd.DataFrame | None = None
    """The screening table (pandas, indexed by feature id) or None."""
    judge_scores: dict[str, object] = field(default_factory=dict)
    """sha256(rendered context) -> the judge's score."""
    judge_name: str | None = None
    sweeps: list[SweepSample] = field(default_factory=list)
    """Sweep records (the fields of ``experiments.records.SweepRecord`` the pages show)."""
    notes: list[str] = field(default_factory=list)
    """Shown on the table page (e.g. why there are no feature pages)."""

    @property
    def d_sae(self) -> int:
        return int(self.stats.d_sae) if self.stats is not None else self.neuronpedia.d_sae

    @property
    def neuronpedia(self) -> NeuronpediaExport:
        """The Neuronpedia export, when that is the feature source (loaded sources hold stats or an export)."""
        if self.export is None:
            raise ValueError("these sources hold neither FeatureStats nor a Neuronpedia export")
        return self.export

    @property
    def has_contexts(self) -> bool:
        if self.stats is not None:
            return self.stats.contexts is not None
        return bool(self.export is not None and self.export.activations)


def load_sources(stats: FeatureStats | str | Path | None = None, *, neuronpedia: str | Path | None = None,
                 screen: pd.DataFrame | str | Path | None = None,
                 sweep: str | Path | Sequence[str | Path] | None = None, tokenizer: Tokenizer | None = None
                 ) -> Sources:
    """Load the inputs: ``stats`` (a FeatureStats or its folder) or ``neuronpedia`` (an export folder), plus an
    optional screen run folder/table and steer/controls run folders."""
    if (stats is None) == (neuronpedia is None):
        raise ValueError("give exactly one feature source: stats (a FeatureStats or its folder) or a Neuronpedia "
                         "export")
    src = Sources()
    if stats is None:
        assert neuronpedia is not None
        src.export = read_export(neuronpedia)
    else:
        if isinstance(stats, (str, Path)):
            from interp_sot.features.stats import FeatureStats

            stats = FeatureStats.load(stats)
        src.stats = stats
        if stats.contexts is not None:
            src.tokenizer = context_tokenizer(stats, tokenizer)
    if not src.has_contexts:
        src.notes.append("These statistics carry no top-k contexts (collect with keep_contexts=True): "
                         "the browser shows the table only, without feature pages.")
    if screen is not None:
        _load_screen(src, screen)
    for folder in [sweep] if isinstance(sweep, (str, Path)) else list(sweep or []):
        src.sweeps += _sweep_records(Path(folder))
    return src


def _load_screen(src: Sources, screen: pd.DataFrame | str | Path) -> None:
    from interp_sot.io import read_jsonl
    from interp_sot.screening.screen import load_table

    if isinstance(screen, (str, Path)):
        folder = Path(screen)
        if folder.is_dir():
            found = [folder / n for n in ("screen.parquet", "screen.csv") if (folder / n).is_file()]
            if not found:
                raise FileNotFoundError(f"{folder} holds no screening table (screen.parquet or screen.csv)")
            table = load_table(found[0])
        else:
            table = load_table(folder)
        scores = (folder if folder.is_dir() else folder.parent) / SCORES_FILE
        for rec in read_jsonl(scores):  # score-store records: {"key" (older files: "h"), "judge", "prompt", "value"}
            key = rec.get("key", rec.get("h"))
            if key is not None and "value" in rec:
                src.judge_scores[key] = rec["value"]
                src.judge_name = rec.get("judge", src.judge_name)
    else:
        table = screen
    if len(table) != src.d_sae:
        raise ValueError(f"the screen table has {len(table)} features but the statistics have d_sae={src.d_sae}")
    src.screen = table


SWEEP_FILES = ("sweep.jsonl", "controls.jsonl")
"""Record logs of a steer / controls run folder."""
SWEEP_FIELDS = ("feature", "strength", "problem_id", "completion", "correct", "finish_reason")
"""Fields of a sweep record (``experiments.records.SweepRecord``) that the pages show."""


def _sweep_records(folder: Path) -> list[SweepSample]:
    from interp_sot.io import read_jsonl

    files = [folder] if folder.is_file() else [folder / n for n in SWEEP_FILES if (folder / n).is_file()]
    if not files:
        raise FileNotFoundError(f"no sweep records ({' or '.join(SWEEP_FILES)}) in {folder}")
    records = []
    for f in files:
        for i, rec in enumerate(read_jsonl(f), start=1):
            missing = [k for k in SWEEP_FIELDS if k not in rec]
            if missing:
                raise ValueError(f"{f}: record {i} lacks the sweep fields {missing}")
            records.append(SweepSample(
                feature=rec["feature"] if isinstance(rec["feature"], int) else str(rec["feature"]),
                strength=float(rec["strength"]), problem_id=str(rec["problem_id"]), completion=str(rec["completion"]),
                correct=bool(rec["correct"]), finish_reason=str(rec["finish_reason"]),
                group=None if rec.get("group") is None else str(rec["group"])))
    if not records:
        raise ValueError(f"{folder}: the sweep records are empty")
    return records


# -- the table -----------------------------------------------------------------------------------------------
def _clean(value: object) -> Cell:
    """JSON-able cell: NaN/NA -> None, numpy scalars -> Python, floats to 6 significant digits."""
    if type(value) is float:  # the common case, first
        return None if math.isnan(value) or math.isinf(value) else float(f"{value:.6g}")
    if value is None:
        return None
    item = getattr(value, "item", None)
    if callable(item):  # numpy and torch scalars
        value = item()
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else float(f"{value:.6g}")
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def pick_positions(screen: pd.DataFrame, pick: PickConfig | None = None) -> list[int | None]:
    """1-based position of each feature (table row order) in the pick's order, from the function the pick uses
    (:func:`interp_sot.screening.pick.pick_order`); all None when the table lacks the pick's columns."""
    from interp_sot.screening.pick import pick_order
    from interp_sot.stages.pick import PickConfig

    pick = pick or PickConfig()
    try:
        order = pick_order(screen, pick.min_contexts, pick.position_column)
    except ValueError as err:
        logger.info("no pick order in the browser: %s", err)
        return [None] * len(screen)
    position = {f: i for i, f in enumerate(order.index, start=1)}
    return [position[f] for f in screen.index]


def feature_table(src: Sources, opts: BrowserOptions | None = None) -> Table:
    """Column name -> one cell per feature (see :data:`TABLE_COLUMNS`)."""
    d = src.d_sae
    cols: Table = {name: [None] * d for name, _, _ in TABLE_COLUMNS}
    cols["feature"] = [*range(d)]
    if src.stats is not None:
        frame = src.stats.to_frame()
        for name in ("frequency", "fire_count", "max_act", "mean_act", "onset_share"):
            cols[name] = [_clean(v) for v in frame[name].to_numpy()]
    else:
        rows = src.neuronpedia.features
        cols["frequency"] = [_clean(float(r["frac_nonzero"])) for r in rows]
        cols["max_act"] = [_clean(float(r["maxActApprox"])) for r in rows]
        for i, text in src.neuronpedia.labels().items():
            cols["label"][i] = text
    if src.screen is not None:
        from interp_sot.screening.screen import with_ratio_interval

        screen = with_ratio_interval(src.screen) if "n_contexts" in src.screen.columns else src.screen
        for name in ("conversation_ratio", "ratio_lo", "n_contexts", "onset_share", "passes_filter", "rank", "label"):
            if name in screen.columns:
                values = [_clean(v) for v in screen[name].to_numpy()]
                if name != "label" or any(v is not None for v in values):
                    cols[name] = values
        cols["pick_order"] = [*pick_positions(screen, (opts or BrowserOptions()).pick)]
    return cols


# -- feature pages -------------------------------------------------------------------------------------------
def histogram(values: Iterable[float], bins: int) -> dict[str, list[Cell]]:
    """Equal-width histogram of the positive ``values`` over [min, max]: ``{"edges": [bins+1], "counts": [bins]}``."""
    vals = [v for v in values if v > 0]
    if not vals:
        return {"edges": [], "counts": []}
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return {"edges": [_clean(lo), _clean(hi)], "counts": [len(vals)]}
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    return {"edges": [_clean(lo + (hi - lo) * i / bins) for i in range(bins + 1)], "counts": [*counts]}


def _samples(records: Sequence[SweepSample], opts: BrowserOptions) -> dict[int, list[Page]]:
    """feature -> one entry per strength: accuracy and the first few completions."""
    by: dict[int, dict[float, list[SweepSample]]] = {}
    for r in records:
        if isinstance(r.feature, int):
            by.setdefault(r.feature, {}).setdefault(r.strength, []).append(r)
    out: dict[int, list[Page]] = {}
    for f, strengths in by.items():
        out[f] = [{
            "strength": s, "n": len(rows), "accuracy": sum(r.correct for r in rows) / len(rows),
            "group": rows[0].group,
            "items": [{"problem": r.problem_id, "correct": r.correct, "finish": r.finish_reason,
                       "text": r.completion[: opts.sample_chars], "cut": len(r.completion) > opts.sample_chars}
                      for r in rows[: opts.samples_per_strength]],
        } for s, rows in sorted(strengths.items())]
    return out


class PageBuilder:
    """Builds one feature's page record; decoding caches live here so that 32k features share them."""

    def __init__(self, src: Sources, table: Table, opts: BrowserOptions) -> None:
        self.src, self.table, self.opts = src, table, opts
        self.samples = _samples(src.sweeps, opts)
        self.decode = token_decoder(src.tokenizer) if src.tokenizer is not None else None
        self.activations = src.export.by_feature("activations") if src.export is not None else {}
        self.model_id = str((src.stats.info if src.stats is not None else {}).get("model", "model"))

    def page(self, f: int) -> Page:
        row = {name: cells[f] for name, cells in self.table.items()}
        page: Page = {"feature": f, "row": row, "samples": self.samples.get(f, [])}
        if self.src.stats is not None:
            page.update(self._from_stats(f))
        else:
            rows = self.activations.get(f, [])
            page["contexts"] = [self._context(r) for r in rows[: self.opts.contexts]]
            page["hist"] = histogram((float(r["maxValue"]) for r in rows), self.opts.bins)
            page["hist_of"] = f"the maxima of its {len(rows)} exported contexts"
            page["exact_values"] = True
        return page

    def _context(self, r: ActivationRow, meta: Mapping[str, object] | None = None, judge: object = None) -> Page:
        return {"tokens": r["tokens"], "values": [_clean(float(v)) if v else 0 for v in r["values"]],
                "mark": qualifying_index(r), "value": _clean(float(r["maxValue"])),
                "seq": r.get("dataIndex"), "meta": meta or {}, "judge": judge}

    def _from_stats(self, f: int) -> Page:
        stats = self.src.stats
        assert stats is not None, "pages from stats need FeatureStats"
        values = stats.topk_values[f].tolist()
        filled = sum(1 for s in stats.topk_seq[f].tolist() if s >= 0)
        out: Page = {
            "hist": histogram(values[:filled], self.opts.bins),
            "hist_of": f"its top {filled} activations (of {int(stats.fire_count[f])} firings)",
            "exact_values": False,
            # a token outside the top-k has activation <= the k-th value when the top-k is full, else 0
            "bound": _clean(values[-1]) if filled == stats.top_k else 0.0,
            "std_act": _clean(_std(stats, f)),
        }
        if stats.contexts is None or self.decode is None:
            out["contexts"] = []
            return out
        rows = feature_windows(stats, f, self.decode, self.model_id, "browser", self.opts.before, self.opts.after,
                               limit=self.opts.contexts)
        store = stats.contexts
        out["contexts"] = [self._context(r, store.metadata(int(r["dataIndex"])), self._judge(f, rank))
                           for rank, r in enumerate(rows)]
        return out

    def _judge(self, f: int, rank: int) -> object:
        stats = self.src.stats
        if not self.src.judge_scores or stats is None or stats.contexts is None:
            return None
        from interp_sot.screening.score_store import text_hash

        before, after = self.opts.judge_window
        text = stats.contexts.render(int(stats.topk_seq[f, rank]), int(stats.topk_pos[f, rank]), before=before,
                                     after=after, tokenizer=self.src.tokenizer)
        return self.src.judge_scores.get(text_hash(text))


def _std(stats: FeatureStats, f: int) -> float:
    n = int(stats.fire_count[f])
    if n == 0:
        return float("nan")
    mean = float(stats.act_sum[f]) / n
    return math.sqrt(max(float(stats.act_sq_sum[f]) / n - mean * mean, 0.0))


def pages(src: Sources, table: Table, opts: BrowserOptions, features: Iterable[int]) -> Iterator[Page]:
    builder = PageBuilder(src, table, opts)
    for f in features:
        yield builder.page(f)
