"""Benchmarks of the statistics layer; they print timings and ratios and never assert on time.

Run: ``pytest benchmarks/test_bench_analysis.py -s``.

* ``fe_ols`` on the target design (16,524 rows, 8,262 fixed-effect groups, 60 clusters; target < 50 ms), timed
  interleaved with pyfixest's ``feols`` on the same data (after a warm-up that pays pyfixest's JIT compilation),
  medians over repeats; coefficients and SEs are checked to agree.
* ``mediate`` with a 2,000-replicate cluster bootstrap on the paper's mediation design (2,048 rows, 1,024
  problems, 4 mediators).
"""

from __future__ import annotations

import time
from statistics import median

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.mediation import MediationConfig, mediate
from interp_sot.analysis.regression import fe_ols

N_GROUPS, PER_GROUP, N_CLUSTERS = 8_262, 2, 60
TARGET_S = 0.050
REPEATS = 15


def design(nested: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    n = len(g)
    cl = g % N_CLUSTERS if nested else rng.integers(0, N_CLUSTERS, n)
    x = np.tile([0.0, 1.0], N_GROUPS)
    log_len = np.log(rng.integers(100, 4096, n))
    ease = rng.normal(size=N_GROUPS)[g]
    correct = (rng.random(n) < 1 / (1 + np.exp(-(-1 + ease + 0.8 * x)))).astype(float)
    return pd.DataFrame({"problem": g, "task": cl, "x": x, "log_len": log_len, "correct": correct})


@pytest.mark.parametrize("nested", [True, False], ids=["fe_nested_in_clusters", "fe_not_nested"])
def test_bench_fe_ols_vs_pyfixest(nested: bool) -> None:
    pf = pytest.importorskip("pyfixest")
    df = design(nested)
    assert len(df) == 16_524 and df["problem"].nunique() == N_GROUPS and df["task"].nunique() == N_CLUSTERS

    def ours() -> pd.DataFrame:
        return fe_ols(df, "correct", "x", "problem", "task", controls="log_len")

    def theirs() -> pd.DataFrame:
        return pf.feols("correct ~ x + log_len | problem", df, vcov={"CRV1": "task"}).tidy()

    a, b = ours(), theirs()  # warm-up (pyfixest compiles its numba kernels on first use)
    np.testing.assert_allclose(a["coef"], b["Estimate"], atol=1e-6)
    np.testing.assert_allclose(a["se"], b["Std. Error"], atol=1e-6)
    t_ours, t_theirs = [], []
    for _ in range(REPEATS):
        for fn, acc in ((ours, t_ours), (theirs, t_theirs)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    m_ours, m_theirs = median(t_ours), median(t_theirs)
    label = "nested" if nested else "not nested"
    print(
        f"\nfe_ols, {len(df):,} rows, {N_GROUPS:,} FE groups, {N_CLUSTERS} clusters, FE {label}: "
        f"numpy {m_ours * 1e3:.1f} ms, pyfixest {m_theirs * 1e3:.1f} ms (medians of {REPEATS}, interleaved); "
        f"pyfixest/numpy = {m_theirs / m_ours:.1f}x; target < {TARGET_S * 1e3:.0f} ms: "
        f"{'MET' if m_ours < TARGET_S else 'NOT MET'}"
    )


def test_bench_mediation_bootstrap() -> None:
    rng = np.random.default_rng(0)
    n_problems = 1_024
    g = np.repeat(np.arange(n_problems), 2)
    n = len(g)
    x = np.tile([0.0, 1.0], n_problems)
    ease = rng.normal(size=n_problems)[g]
    mediators = ["verification", "backtracking", "subgoal_setting", "backward_chaining"]
    cols = {m: rng.poisson(2 + 0.5 * x + 0.3 * np.abs(ease)).astype(float) for m in mediators}
    logit = -1 + ease + 0.8 * x + 0.1 * cols["verification"]
    df = pd.DataFrame({"problem": g, "x": x, "log_len": np.log(rng.integers(100, 4096, n)), **cols})
    df["correct"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    cfg = MediationConfig(n_boot=2_000, seed=0, scale="std_all")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        res = mediate(df, "x", "correct", mediators, fe="problem", cluster="problem", controls=["log_len"], config=cfg)
        times.append(time.perf_counter() - t0)
    assert res.n_boot_ok == 2_000
    print(
        f"\nmediate, {n:,} rows, {n_problems:,} problems, 4 mediators, B = 2,000 cluster bootstrap: "
        f"{median(times) * 1e3:.0f} ms (median of 5)"
    )
