"""Minimal detectable effects: the smallest true effect a design finds with the given power at level alpha.

A non-significant result means little unless the report also says what the run could have detected. For a
two-sided test at level α with power 1 − β, an estimator with standard error SE detects effects of at least

    MDE = (q_{1−α/2} + q_{1−β}) · SE                                                     (Bloom 1995)

(q: standard normal quantiles, or Student t with ``df`` degrees of freedom when given). At α = 0.05 and 80%
power the multiplier is 1.960 + 0.842 = 2.802. The functions below plug in the SE of each design:

- regression slope / any coefficient: the regression's own SE (clustered if the fit was clustered), or for a
  simple slope SE = σ_resid / (sd_x · √n);
- difference of two means: SE = σ · √(1/n₁ + 1/n₂) with a common SD σ;
- difference of two proportions (accuracy): on Cohen's arcsine scale h = 2·asin√p₁ − 2·asin√p₀, whose SE is
  √(1/n₁ + 1/n₂) whatever p, so MDE_h = 2.802·√(1/n₁ + 1/n₂) and the detectable p₁ = sin²(asin√p₀ + MDE_h/2).
  It stays defined at a baseline accuracy of 0 (SmolLM2 on Countdown), where a Wald SE would be 0.
"""

from __future__ import annotations

import math

from scipy import stats


def _check_level(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must lie in (0, 1), got {power}")


def mde_multiplier(alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """q_{1−α/2} + q_{power}: normal quantiles, or Student t with ``df`` degrees of freedom (two-sided test)."""
    _check_level(alpha, power)
    if df is None:
        return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))


def mde_from_se(se: float, *, alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """Minimal detectable effect of an estimator with standard error ``se`` (e.g. a clustered regression SE)."""
    if not (math.isfinite(se) and se >= 0):
        raise ValueError(f"se must be finite and >= 0, got {se}")
    return mde_multiplier(alpha, power, df) * se


def mde_slope(n: int, sd_resid: float, sd_x: float, *, alpha: float = 0.05, power: float = 0.8,
              n_params: int = 2) -> float:
    """Smallest detectable OLS slope with ``n`` observations, residual SD ``sd_resid`` and regressor SD ``sd_x``.

    SE = sd_resid / (sd_x · √n) with t quantiles on n − n_params degrees of freedom. Ignores clustering: with
    problem clusters pass the fitted clustered SE to :func:`mde_from_se` instead.
    """
    if n <= n_params:
        raise ValueError(f"need n > n_params ({n_params}) observations, got {n}")
    if not (sd_resid >= 0 and sd_x > 0):
        raise ValueError(f"need sd_resid >= 0 and sd_x > 0, got {sd_resid}, {sd_x}")
    return mde_from_se(sd_resid / (sd_x * math.sqrt(n)), alpha=alpha, power=power, df=n - n_params)


def mde_mean_difference(n1: int, n2: int, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest detectable difference of two means (two-sample t test, common SD ``sd``, n1 + n2 − 2 df)."""
    if n1 < 2 or n2 < 2:
        raise ValueError(f"each group needs >= 2 observations, got {n1} and {n2}")
    if not sd >= 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    return mde_from_se(sd * math.sqrt(1 / n1 + 1 / n2), alpha=alpha, power=power, df=n1 + n2 - 2)


def mde_proportions(n1: int, n2: int, p0: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest detectable increase of a proportion (accuracy) above the baseline ``p0`` (arcsine scale).

    Returns p₁ − p₀ (in proportion units); ``1 − p0`` if even p₁ = 1 is not detectable.
    """
    if n1 < 1 or n2 < 1:
        raise ValueError(f"each group needs >= 1 observation, got {n1} and {n2}")
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must lie in [0, 1], got {p0}")
    h = mde_multiplier(alpha, power) * math.sqrt(1 / n1 + 1 / n2)
    angle = math.asin(math.sqrt(p0)) + h / 2
    p1 = 1.0 if angle >= math.pi / 2 else math.sin(angle) ** 2
    return p1 - p0
