"""Multiple-comparison corrections for a family of contrasts: Holm's p and Benjamini–Hochberg's q.

Why: the analysis tests many contrasts (each outcome at each strength, diversity slopes, controls); at α = 0.05
about one in twenty is significant by chance alone. Every contrast table therefore carries

- ``p_holm``: Holm's step-down adjusted p-value, controlling the family-wise error rate (the chance of *any*
  false positive in the family) at α when ``p_holm < α``;
- ``q_bh``: the Benjamini–Hochberg q-value, controlling the false discovery rate (the expected share of false
  positives among those called significant) at α when ``q_bh < α``;
- ``family_size``: how many tests the correction counted for the row's family.

The family is named by the caller (one table, or one group of rows of it, e.g. per ``scale``) and is written in
each table's docstring. A missing (NaN) p-value — a contrast that could not be estimated — stays NaN and does not
count in the family size. The arithmetic is statsmodels' ``multipletests``; this module only does the bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from interp_sot.errors import InterpSotError, shorten

Correction = Literal["holm", "bh"]
_STATSMODELS_METHOD: dict[str, str] = {"holm": "holm", "bh": "fdr_bh"}
CORRECTED_COLUMNS = ("p_holm", "q_bh", "family_size")
"""Columns :func:`add_corrections` adds."""


def adjust_pvalues(p: Sequence[float] | np.ndarray, method: Correction) -> np.ndarray:
    """[N] adjusted p-values of the family ``p`` ([N]); NaN entries stay NaN and are not counted in the family.

    ``method``: ``"holm"`` (family-wise error) or ``"bh"`` (false discovery rate, the q-value)."""
    from statsmodels.stats.multitest import multipletests

    if method not in _STATSMODELS_METHOD:
        raise InterpSotError(f"correction method must be 'holm' or 'bh', got {shorten(method)!r}")
    values = np.asarray(p, dtype=np.float64).reshape(-1)
    finite = np.isfinite(values)
    bad = values[finite & ((values < 0) | (values > 1))]
    if bad.size or np.isinf(values).any():
        shown = bad[:5].tolist() if bad.size else values[np.isinf(values)][:5].tolist()
        raise InterpSotError(f"p-values must lie in [0, 1] (or be NaN), got {shorten(shown)}")
    out = np.full(values.shape, np.nan)
    if finite.any():
        out[finite] = multipletests(values[finite], method=_STATSMODELS_METHOD[method])[1]
    return out


def add_corrections(
    frame: pd.DataFrame,
    p_col: str = "p",
    family: str | Sequence[str] | None = None,
    *,
    rows: pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """A copy of ``frame`` with ``p_holm``, ``q_bh`` and ``family_size`` (see the module docstring).

    ``family``: column(s) whose values split the rows into separate families (e.g. ``"scale"``); None: all rows
    are one family. ``rows``: boolean mask [len(frame)] of the rows that are tested contrasts (e.g. the strength
    terms, not the log-length control of a regression); rows outside it, and rows with a NaN p, get NaN in all
    three columns and do not count.
    An empty frame gains the (empty) columns."""
    if p_col not in frame.columns:
        raise InterpSotError(f"table has no p-value column {p_col!r} (columns: {shorten(list(frame.columns))})")
    keys = [family] if isinstance(family, str) else list(family or [])
    absent = [k for k in keys if k not in frame.columns]
    if absent:
        raise InterpSotError(f"family column(s) {absent} not in the table (columns: {shorten(list(frame.columns))})")
    out = frame.copy()
    p = pd.to_numeric(out[p_col], errors="coerce").to_numpy(dtype=np.float64)
    tested = np.ones(len(out), dtype=bool) if rows is None else np.asarray(rows, dtype=bool).reshape(-1)
    if tested.shape[0] != len(out):
        raise InterpSotError(f"rows mask has {tested.shape[0]} entries for a table of {len(out)} rows")
    holm, bh, size = np.full(len(out), np.nan), np.full(len(out), np.nan), np.full(len(out), np.nan)
    groups = (out.groupby(keys, dropna=False, sort=False).indices.values() if keys
              else [np.arange(len(out))])
    for idx in groups:
        members = np.asarray(idx)[tested[np.asarray(idx)]]
        if members.size == 0:
            continue
        holm[members] = adjust_pvalues(p[members], "holm")
        bh[members] = adjust_pvalues(p[members], "bh")
        counted = members[np.isfinite(p[members])]
        size[counted] = float(counted.size)
    out["p_holm"], out["q_bh"], out["family_size"] = holm, bh, size
    return out


class SignificanceCount(NamedTuple):
    """How many contrasts of a family pass α before and after correction."""

    n_tests: int
    """contrasts with a finite p-value."""
    raw: int
    """p < α, no correction."""
    holm: int
    """p_holm < α (family-wise error rate α)."""
    bh: int
    """q_bh < α (false discovery rate α)."""
    alpha: float
    """the level."""

    @property
    def expected_by_chance(self) -> float:
        """Significant contrasts expected uncorrected if no effect were real (α x tests)."""
        return self.alpha * self.n_tests

    def sentence(self) -> str:
        """One line for a report's summary."""
        return (f"{self.raw} of {self.n_tests} contrasts are significant at α = {self.alpha:g} without correction "
                f"(about {self.expected_by_chance:.1f} expected by chance if no effect were real); "
                f"{self.holm} after Holm's correction (family-wise error rate α) and {self.bh} at "
                f"Benjamini–Hochberg q < {self.alpha:g} (false discovery rate α).")


def significance_summary(frame: pd.DataFrame, alpha: float = 0.05, p_col: str = "p") -> SignificanceCount:
    """Counts of significant contrasts in ``frame`` (which has ``p_holm`` / ``q_bh``: :func:`add_corrections`).

    Only rows with a finite ``p_holm`` count, i.e. the tested rows of the corrected families."""
    if not 0 < alpha < 1 or math.isnan(alpha):
        raise InterpSotError(f"alpha must be in (0, 1), got {alpha}")
    missing = [c for c in (p_col, "p_holm", "q_bh") if c not in frame.columns]
    if missing:
        raise InterpSotError(f"table lacks {missing}: run add_corrections on it first")
    tested = frame[np.isfinite(pd.to_numeric(frame["p_holm"], errors="coerce").to_numpy(dtype=np.float64))]
    return SignificanceCount(
        n_tests=len(tested),
        raw=int((pd.to_numeric(tested[p_col], errors="coerce") < alpha).sum()),
        holm=int((tested["p_holm"] < alpha).sum()),
        bh=int((tested["q_bh"] < alpha).sum()),
        alpha=alpha,
    )
