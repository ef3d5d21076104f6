"""The screening table: one row per SAE feature, the paper's two-criterion filter, and a ranking.

The paper kept features whose conversation ratio is > 50% and whose "activation in the first four tokens" is > 50%.
The second criterion's exact definition is unpublished, so :class:`FilterConfig` names it explicitly:

- ``"onset"`` (default): share of the feature's firings that fall within the first n tokens of a sentence or turn
  (``onset_count / fire_count`` from the stats; n and the boundary rule are the stats' parameters). This is the
  reading under which conversational discourse markers (" Oh", " Wait") pass, as feature 30939 does.
- ``"first_n"``: share of firings within the first n tokens of a *sequence* (``first_n_count / fire_count``).
- ``"topk_onset"``: share of the feature's top-k contexts whose marked token is within the first n tokens of its
  sentence or turn (needs ``topk_onset`` distances; n = the stats' ``onset_n``, default 4).

Stats are read duck-typed: ``n_tokens``, ``fire_count``, ``act_sum``, ``max_act`` ``[d_sae]``, optional
``first_n_count``, ``onset_count`` ``[d_sae]`` and ``topk_values``/``topk_seq``/``topk_pos``/``topk_onset``
``[d_sae, k]`` (``interp_sot.features.FeatureStats`` has them all).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from interp_sot.features.stats import FeatureStats, feature_columns, topk_onset_share
from interp_sot.io import write_frame
from interp_sot.judging.base import Judge
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.screening.conversation_ratio import (
    ConversationRatio,
    RatioConfig,
    Renderer,
    as_numpy,
    ratio_from_judge,
    ratio_from_labels,
    ratio_interval,
    top_contexts,
)
from interp_sot.screening.settings import FilterConfig

logger = logging.getLogger(__name__)

SCORES_FILE = "conversation_scores.jsonl"
"""Every judged context of a screen's ``work_dir`` (resumable; scoped to the judge and prompt)."""

def _vector(stats: FeatureStats, name: str, d_sae: int) -> np.ndarray | None:
    value = getattr(stats, name, None)
    if value is None:
        return None
    arr = as_numpy(value).astype(np.float64).reshape(-1)
    if arr.size != d_sae:
        raise ValueError(f"stats.{name} has {arr.size} entries, expected d_sae={d_sae}")
    return arr


def feature_table(
    stats: FeatureStats,
    ratio: ConversationRatio | None = None,
    labels: Mapping[int, str] | pd.Series | None = None,
    confidence: float = RatioConfig.confidence,
) -> pd.DataFrame:
    """One row per feature (index = feature id) with every screening column; no filtering yet.

    ``conversation_ratio`` comes with ``ratio_lo`` / ``ratio_hi``, its Wilson interval at ``confidence`` over the
    ``n_contexts`` judged contexts (NaN where none was judged)."""
    for name in ("fire_count", "act_sum", "max_act", "n_tokens"):
        if getattr(stats, name, None) is None:
            raise ValueError(f"stats lack {name!r}; pass a FeatureStats from interp_sot.features")
    fire = as_numpy(stats.fire_count).astype(np.float64).reshape(-1)
    d_sae = fire.size
    n_tokens = float(as_numpy(stats.n_tokens).reshape(-1)[0])
    conv = np.full(d_sae, np.nan)
    n_ctx = np.zeros(d_sae, dtype=np.int64)
    if ratio is not None:
        if ratio.features.size and ratio.features.max() >= d_sae:
            raise ValueError(f"conversation ratios cover feature {int(ratio.features.max())} but d_sae={d_sae}")
        conv[ratio.features] = ratio.ratio
        n_ctx[ratio.features] = ratio.n_contexts
    cols = feature_columns(n_tokens, fire, *(_vector(stats, name, d_sae) for name in
                                             ("act_sum", "max_act", "first_n_count", "onset_count")))
    features = np.arange(d_sae)
    low, high = ratio_interval(conv, n_ctx, confidence)
    table = pd.DataFrame(
        {
            "feature": features,
            "conversation_ratio": conv,
            "ratio_lo": low,
            "ratio_hi": high,
            "n_contexts": n_ctx,
            "first_n_share": cols["first_n_share"],
            "onset_share": cols["onset_share"],
            "topk_onset_share": _topk_share(stats, d_sae, "topk_onset", int(getattr(stats, "onset_n", 4))),
            "frequency": cols["frequency"],
            "fire_count": fire.astype(np.int64),
            "max_act": cols["max_act"],
            "mean_act": cols["mean_act"],
        },
        index=pd.Index(features, name="feature_id"),
    )
    table.insert(5, "ratio_percentile", table["conversation_ratio"].rank(pct=True, method="average") * 100)
    table["label"] = pd.Series(labels, dtype=object).reindex(features).to_numpy() if labels is not None else None
    table.attrs["first_n"] = int(getattr(stats, "first_n", 4))
    table.attrs["onset_n"] = int(getattr(stats, "onset_n", 4))
    return table


def _topk_share(stats: FeatureStats, d_sae: int, name: str, n: int) -> np.ndarray:
    """Share of each feature's filled top-k slots whose ``stats.<name>`` (onset distance) is in ``[0, n)``."""
    if getattr(stats, "topk_values", None) is None or getattr(stats, name, None) is None:
        return np.full(d_sae, np.nan)
    _, _, valid = top_contexts(stats, np.arange(d_sae), k=as_numpy(stats.topk_values).shape[1])
    return topk_onset_share(valid, as_numpy(getattr(stats, name)), n)


def with_ratio_interval(table: pd.DataFrame, confidence: float = RatioConfig.confidence) -> pd.DataFrame:
    """``table`` with ``ratio_lo`` / ``ratio_hi`` (:func:`ratio_interval` over ``n_contexts``), computed only when
    absent (tables saved before the interval existed); the table itself when present."""
    if {"ratio_lo", "ratio_hi"} <= set(table.columns):
        return table
    for col in ("conversation_ratio", "n_contexts"):
        if col not in table.columns:
            raise ValueError(f"the screening table has no {col!r} column, so its ratio has no interval to rank by; "
                             "build it with screening.screen")
    low, high = ratio_interval(table["conversation_ratio"].to_numpy(dtype=float),
                               table["n_contexts"].to_numpy(dtype=float), confidence)
    return table.assign(ratio_lo=low, ratio_hi=high)


def rank_order(table: pd.DataFrame, position_column: str = "onset_share") -> pd.DataFrame:
    """``table`` best first: the lower bound of the conversation ratio's Wilson interval (``ratio_lo``), then the
    ratio itself, ``n_sources`` (if present), the position share, ``n_contexts`` and max activation, all
    descending, then feature id. The one ordering of the screen's ``rank``, the pick and the browser.

    Why the lower bound: a ratio of 1.0 over 2 judged contexts (lower bound 0.34) is weaker evidence than 0.9
    over 50 (0.79); ranking by the point estimate put the former first. With document labels the ratio saturates
    at 1.0; the later keys send ties to the more source-general and better-evidenced feature.
    """
    table = with_ratio_interval(table)
    keys = ["ratio_lo", "conversation_ratio", *(["n_sources"] if "n_sources" in table.columns else []),
            position_column, "n_contexts", "max_act", "feature"]
    return table.sort_values(keys, ascending=[k == "feature" for k in keys])


def apply_filter(table: pd.DataFrame, config: FilterConfig | None = None) -> pd.DataFrame:
    """Add ``passes_filter`` and ``rank`` (1 = best passing feature; NA for the rest) to a copy of ``table``.

    Ranking among passing features: :func:`rank_order` (the one ordering the pick uses too).
    """
    config = config or FilterConfig()
    col = config.position_column
    out = with_ratio_interval(table).copy()
    passes = (out["conversation_ratio"] > config.ratio_threshold) & (out[col] > config.position_threshold)
    out["passes_filter"] = passes.fillna(False).astype(bool)
    order = rank_order(out[out["passes_filter"]], col)
    rank = pd.Series(pd.NA, index=out.index, dtype="Int64")
    rank.loc[order.index] = np.arange(1, len(order) + 1)
    out["rank"] = rank
    out.attrs.update(table.attrs, filter=f"ratio>{config.ratio_threshold} & {col}>{config.position_threshold}")
    return out


def screen(
    stats: FeatureStats,
    *,
    judge: Judge | None = None,
    render: Renderer | None = None,
    doc_labels: Sequence[bool] | np.ndarray | None = None,
    labels: Mapping[int, str] | pd.Series | None = None,
    features: Sequence[int] | None = None,
    work_dir: str | Path | None = None,
    ratio_config: RatioConfig | None = None,
    filter_config: FilterConfig | None = None,
    template: PromptTemplate = CONVERSATIONAL_SCORE,
) -> pd.DataFrame:
    """Screen all features: conversation ratio (judge, or document labels if ``judge`` is None), table, filter.

    With ``work_dir`` every judged context is persisted there (``conversation_scores.jsonl``), so an interrupted
    screen resumes, and the table is saved as ``screen.parquet`` and ``screen.csv``.
    ``features`` restricts judging to a subset (other rows get NaN ratios). ``template``: the judge's prompt
    (see :func:`~interp_sot.screening.conversation_ratio.ratio_from_judge`).
    """
    ratio_config = ratio_config or RatioConfig()
    if judge is not None:
        if render is None:
            raise ValueError("judging contexts needs a renderer: pass render=ContextStore-based render(seq, pos)")
        store = Path(work_dir) / SCORES_FILE if work_dir is not None else None
        ratio = ratio_from_judge(stats, render, judge, store, features=features, config=ratio_config,
                                 template=template)
        if ratio.failed:
            logger.warning("%d contexts stayed unjudged (invalid judge replies); rerun to retry them", ratio.failed)
    elif doc_labels is not None:
        ratio = ratio_from_labels(stats, doc_labels, features=features, k=ratio_config.k)
    else:
        raise ValueError("screen needs a judge (with render) or per-document labels (doc_labels) for the ratio")
    table = apply_filter(feature_table(stats, ratio, labels, ratio_config.confidence), filter_config)
    if work_dir is not None:
        save_table(table, work_dir)
    return table


def save_table(table: pd.DataFrame, out_dir: str | Path, name: str = "screen") -> tuple[Path, Path]:
    """Write ``<name>.parquet`` and ``<name>.csv`` atomically (readers never see half a file)."""
    out_dir = Path(out_dir)
    return write_frame(table, out_dir / f"{name}.parquet"), write_frame(table, out_dir / f"{name}.csv")


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a saved screening table (parquet or CSV), indexed by feature id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no screening table at {path}")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "feature" not in table.columns:
        raise ValueError(f"{path} is not a screening table (no 'feature' column)")
    return table.set_index(pd.Index(table["feature"].to_numpy(), name="feature_id"))
