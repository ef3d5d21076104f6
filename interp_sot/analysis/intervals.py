"""Confidence intervals for sweep results: Wilson for a proportion, and a cluster bootstrap over problems.

The bootstrap resamples whole problems (all rows of a drawn problem enter with the draw's multiplicity), the same
draws for every condition, so differences between conditions (s = +10 vs 0) are paired by problem, as the paper's
problem fixed effects and task-clustered errors are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials; (nan, nan) when ``n == 0``.

    statsmodels' ``proportion_confint(method="wilson")`` (the screening ratio's interval is the same call)."""
    from statsmodels.stats.proportion import proportion_confint

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if k < 0 or n < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return (max(0.0, float(lo)), min(1.0, float(hi)))


@dataclass(frozen=True)
class BootstrapDraws:
    """Bootstrap replicates of per-condition means."""

    conditions: list[object]
    """Condition labels, in column order of ``draws``."""
    estimate: np.ndarray
    """[C] the means on the original sample."""
    draws: np.ndarray
    """[n_boot, C] the means on each resample (NaN where a resample holds no row of the condition)."""

    def interval(self, column: int, confidence: float = 0.95) -> tuple[float, float]:
        return _percentile(self.draws[:, column], confidence)

    def difference(self, column: int, reference: int, confidence: float = 0.95) -> tuple[float, float, float]:
        """(estimate, low, high) of mean[column] - mean[reference], paired by resampled problems."""
        diff = self.draws[:, column] - self.draws[:, reference]
        lo, hi = _percentile(diff, confidence)
        return (float(self.estimate[column] - self.estimate[reference]), lo, hi)


def _percentile(x: np.ndarray, confidence: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(x, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def resample_counts(rng: np.random.Generator, n_units: int, n_draws: int) -> np.ndarray:
    """[n_draws, n_units]: how often each unit (problem) enters each bootstrap resample of ``n_units`` draws.

    The one cluster-resampling rule of the package: the sweep report's intervals and the mediation bootstrap
    both weight whole problems by these counts.
    """
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_draws)


def cluster_bootstrap(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[object],
    conditions: Sequence[object],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> BootstrapDraws:
    """Means of ``values`` per condition, bootstrapped by resampling ``clusters`` (problems) with replacement.

    values: [N] (e.g. 0/1 correctness, or a behaviour rate); clusters, conditions: [N] labels.
    Rows with a non-finite value are left out (a failed judge coding is missing, not zero).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y = np.asarray(values, dtype=np.float64)
    if not (len(y) == len(clusters) == len(conditions)):
        raise ValueError(
            f"values, clusters and conditions differ in length: {len(y)}, {len(clusters)}, {len(conditions)}"
        )
    keep = np.isfinite(y)
    cl_labels = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    co_labels = list(dict.fromkeys(conditions))
    co_index = {c: i for i, c in enumerate(co_labels)}
    cl = np.array([cl_labels[c] for c in clusters], dtype=np.int64)[keep]
    co = np.array([co_index[c] for c in conditions], dtype=np.int64)[keep]
    y = y[keep]
    n_cl, n_co = len(cl_labels), len(co_labels)
    sums = np.zeros((n_co, n_cl))
    counts = np.zeros((n_co, n_cl))
    np.add.at(sums, (co, cl), y)
    np.add.at(counts, (co, cl), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = sums.sum(axis=1) / counts.sum(axis=1)
    weights = resample_counts(np.random.default_rng(seed), n_cl, n_boot).astype(np.float64)  # [B, P]
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (weights @ sums.T) / (weights @ counts.T)
    return BootstrapDraws(co_labels, estimate, draws)
