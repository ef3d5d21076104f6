"""Minimal detectable effects against textbook values (Cohen 1988) and exact power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from interp_sot.analysis.power import (
    mde_from_se,
    mde_mean_difference,
    mde_multiplier,
    mde_proportions,
    mde_slope,
)


def test_multiplier_is_1_96_plus_0_84() -> None:
    assert mde_multiplier() == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert mde_from_se(0.1) == pytest.approx(0.28016, abs=1e-5)


def test_two_proportions_match_cohens_table() -> None:
    # Cohen (1988) Table 6.4.1: h = 0.20 needs n = 392 per group (two-sided alpha .05, power .80).
    p0 = 0.5
    d = mde_proportions(392, 392, p0)
    h = 2 * math.asin(math.sqrt(p0 + d)) - 2 * math.asin(math.sqrt(p0))
    assert h == pytest.approx(0.20, abs=0.001)
    # defined at a zero baseline (SmolLM2's accuracy): p1 = sin^2(h/2)
    assert mde_proportions(32, 32, 0.0) == pytest.approx(math.sin(2.8016 * math.sqrt(2 / 32) / 2) ** 2, abs=1e-4)
    assert mde_proportions(1, 1, 0.9) == pytest.approx(0.1)  # nothing short of 100% is detectable


def test_mean_difference_matches_cohens_table_and_exact_power() -> None:
    # Cohen (1988) Table 2.4.1: d = 0.50 needs n = 64 per group.
    mde = mde_mean_difference(64, 64, 1.0)
    assert mde == pytest.approx(0.50, abs=0.005)
    df, ncp = 126, mde / math.sqrt(2 / 64)
    crit = stats.t.ppf(0.975, df)
    exact_power = 1 - stats.nct.cdf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    assert exact_power == pytest.approx(0.80, abs=0.005)


def test_slope_uses_the_ols_standard_error() -> None:
    rng = np.random.default_rng(0)
    n = 50
    x = rng.normal(size=n)
    y = 0.3 * x + rng.normal(size=n)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    sd_resid = math.sqrt((resid**2).sum() / (n - 2))
    se = sd_resid / math.sqrt(((x - x.mean()) ** 2).sum())  # textbook OLS slope SE
    assert mde_slope(n, sd_resid, float(x.std())) == pytest.approx(mde_from_se(se, df=n - 2))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        mde_multiplier(alpha=0.0)
    with pytest.raises(ValueError, match="power"):
        mde_multiplier(power=1.0)
    with pytest.raises(ValueError, match="p0"):
        mde_proportions(10, 10, 1.5)
    with pytest.raises(ValueError, match="n_params"):
        mde_slope(2, 1.0, 1.0)
    with pytest.raises(ValueError, match="se"):
        mde_from_se(float("nan"))
