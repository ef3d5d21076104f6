"""Per-trace measures of a steering run kept next to its records, and their statistics.

The ``measure`` stage writes two sidecar files into a steer / controls run directory, one line per trace keyed
by the record key: ``coherence.jsonl`` (the unsteered model's mean log-prob of the generated tokens and the
degenerate-text flag, ``experiments.coherence``) and ``trace_features.jsonl`` (sparse per-feature SAE totals of
the generated tokens, ``experiments.trace_features``). This module reads them back, joins them to a run's
table, and computes what every report shows: coherence by strength, and coverage / entropy within feature sets
regressed on strength (problem fixed effects, log trace length, SEs clustered by problem; the paper's form),
each with the minimal detectable effect at α = 0.05 and 80% power (``analysis.power``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from interp_sot.analysis.fixed_effects import MissingPolicy
from interp_sot.analysis.power import mde_from_se
from interp_sot.analysis.regression import fe_ols
from interp_sot.analysis.steering_effects import SweepColumns
from interp_sot.experiments.trace_features import SparseTotals, diversity_frame
from interp_sot.io import read_jsonl

COHERENCE_FILE = "coherence.jsonl"
FEATURES_FILE = "trace_features.jsonl"
COHERENCE_COLUMNS = ("coherence_logprob", "degenerate")
"""Columns a run table gains from ``coherence.jsonl``: not behaviour outcomes, reported on their own."""
DIVERSITY_PREFIX = "diversity."


def read_coherence(run_dir: str | Path) -> pd.DataFrame | None:
    """``key, coherence_logprob, degenerate, repeat_share, symbol_share`` per trace; None without the sidecar."""
    path = Path(run_dir) / COHERENCE_FILE
    if not path.is_file():
        return None
    rows = read_jsonl(path)
    frame = pd.DataFrame(rows, columns=["key", "mean_logprob", "n_tokens", "repeat_share", "symbol_share",
                                        "degenerate"])
    frame = frame.rename(columns={"mean_logprob": "coherence_logprob"}).drop(columns=["n_tokens"])
    frame["coherence_logprob"] = pd.to_numeric(frame["coherence_logprob"], errors="coerce")
    frame["degenerate"] = frame["degenerate"].astype(bool)
    return frame.drop_duplicates("key", keep="last")


def read_trace_totals(run_dir: str | Path) -> tuple[list[str], list[SparseTotals]] | None:
    """Record keys and their sparse SAE totals; None without the sidecar."""
    path = Path(run_dir) / FEATURES_FILE
    if not path.is_file():
        return None
    rows = {d["key"]: d for d in read_jsonl(path)}
    return list(rows), [SparseTotals.from_dict(d) for d in rows.values()]


def join_coherence(frame: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """``frame`` (a run table with ``key``) with the coherence columns; unchanged without the sidecar or when it
    has them already (the per-trace table of a run carries them: ``analysis.traces.add_coherence``)."""
    if "coherence_logprob" in frame.columns:
        return frame
    coh = read_coherence(run_dir)
    if coh is None or "key" not in frame.columns:
        return frame
    return frame.merge(coh[["key", "coherence_logprob", "degenerate"]], on="key", how="left")


def join_diversity(frame: pd.DataFrame, run_dir: str | Path, sets: Mapping[str, Sequence[int] | np.ndarray]
                   ) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with ``diversity.<set>.coverage`` / ``.entropy`` per trace, and those column names."""
    totals = read_trace_totals(run_dir)
    if totals is None or not sets or "key" not in frame.columns:
        return frame, []
    keys, sparse = totals
    tidy = diversity_frame(sparse, sets, keys=keys)
    wide = tidy.pivot(index="key", columns="feature_set", values=["coverage", "entropy"])
    wide.columns = [f"{DIVERSITY_PREFIX}{s}.{m}" for m, s in wide.columns]
    wide = wide.reset_index()
    cols = sorted(c for c in wide.columns if c != "key")
    return frame.merge(wide, on="key", how="left"), cols


def coherence_by_strength(frame: pd.DataFrame, by: str = "strength", confidence: float = 0.95) -> pd.DataFrame:
    """Per strength (or other ``by`` column, e.g. a control ``group``): traces, mean unsteered log-prob with a t
    interval, its drop against s = 0 (strengths only), degenerate share."""
    from scipy import stats

    if "coherence_logprob" not in frame.columns:
        raise ValueError("the run table has no coherence columns (run the measure stage)")
    rows = []
    for s, g in frame.groupby(by):
        lp = g["coherence_logprob"].dropna().to_numpy(dtype=float)
        n = lp.size
        mean = float(lp.mean()) if n else math.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * lp.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        rows.append({by: s, "n": len(g), "mean_logprob": mean, "ci_low": mean - half,
                     "ci_high": mean + half, "degenerate_share": float(g["degenerate"].astype(float).mean()),
                     "n_degenerate": int(g["degenerate"].astype(bool).sum())})
    out = pd.DataFrame(rows)
    if len(out) and pd.api.types.is_numeric_dtype(out[by]) and 0.0 in set(out[by]):
        base = float(out.loc[out[by] == 0.0, "mean_logprob"].iloc[0])
        out["drop_vs_0"] = base - out["mean_logprob"]
    return out


def add_mde(table: pd.DataFrame, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Add ``mde``: the smallest effect each coefficient's test detects at ``alpha`` with ``power`` (its SE)."""
    out = table.copy()
    out["mde"] = [mde_from_se(float(se), alpha=alpha, power=power) if np.isfinite(se) else math.nan
                  for se in out["se"]]
    return out


def slope_regressions(
    frame: pd.DataFrame,
    outcomes: Sequence[str],
    *,
    cols: SweepColumns | None = None,
    length_control: bool = True,
    missing: MissingPolicy = "drop",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each outcome ~ strength (linear) [+ log trace length] | problem, SEs clustered, with its MDE.

    Returns the strength rows of every fit and ``{outcome: reason}`` for outcomes that could not be fitted
    (constant, or too few problems)."""
    cols = cols or SweepColumns()
    data = frame.copy()
    controls: list[str] = []
    if length_control:
        data["log_trace_len"] = np.log(pd.to_numeric(data[cols.trace_len], errors="coerce").clip(lower=1))
        controls.append("log_trace_len")
    tabs, skipped = [], {}
    for y in outcomes:
        values = pd.to_numeric(data[y], errors="coerce")
        if values.nunique(dropna=True) <= 1:
            skipped[y] = "constant over the sweep"
            continue
        data[y] = values
        try:
            tab = fe_ols(data, y, cols.strength, cols.problem, cols.cluster_col, controls=controls, missing=missing)
        except ValueError as err:
            skipped[y] = str(err)
            continue
        tab = tab[tab["term"] == cols.strength].copy()
        tab.insert(0, "outcome", y)
        tab["nobs"], tab["n_clusters"] = tab.attrs["nobs"], tab.attrs["n_clusters"]
        tabs.append(add_mde(tab))
    return (pd.concat(tabs, ignore_index=True) if tabs else pd.DataFrame()), skipped


def accuracy_mde(acc: pd.DataFrame, baseline: float = 0.0, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """``acc`` (accuracy by strength) with ``mde_vs_baseline``: the smallest accuracy gain over the baseline
    strength each strength's n detects (arcsine scale, ``power.mde_proportions``; rows as independent)."""
    from interp_sot.analysis.power import mde_proportions

    out = acc.copy()
    base = out[out["strength"] == baseline]
    if base.empty:
        out["mde_vs_baseline"] = math.nan
        return out
    n0, p0 = int(base["n"].iloc[0]), float(base["accuracy"].iloc[0])
    out["mde_vs_baseline"] = [math.nan if s == baseline else mde_proportions(int(n), n0, p0, alpha=alpha, power=power)
                              for s, n in zip(out["strength"], out["n"], strict=True)]
    return out
