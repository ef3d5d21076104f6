"""Parallel-mediator decomposition of a treatment effect by the product of coefficients.

Three OLS equations on one sample, all with the same controls and (optional) absorbed fixed effect:

    total:    Y   = c  X + controls (+ FE)
    mediator: M_i = a_i X + controls (+ FE)          for each mediator i
    outcome:  Y   = c' X + Σ b_i M_i + controls (+ FE)

indirect_i = a_i b_i, indirect = Σ a_i b_i, and under OLS the identity c = c' + Σ a_i b_i holds exactly
(Frisch–Waugh–Lovell). The paper's steering decomposition (direct 0.228, indirect 0.066 via four cognitive
behaviours) is this model with X = 1[s = +10] vs s = 0; its numbers do not add to the raw gain, which suggests
standardised coefficients, so ``scale`` offers ``"std_all"`` (X, M, Y in SD units, lavaan's std.all) and
``"std_nox"`` (M and Y in SD units, X raw: the natural choice for a binary treatment). SDs are sample SDs
(ddof=1) of the raw variables over the estimation sample.

Uncertainty: delta-method SEs from the joint cluster-robust covariance of all equations (stacked per-cluster
influence functions, each equation scaled by its own CR1 factor, so single coefficients match ``fe_ols``), and
percentile CIs from a cluster bootstrap that resamples whole units (problems by default), seeded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from interp_sot.analysis.fixed_effects import (
    MissingPolicy,
    Sample,
    SingletonPolicy,
    demean,
    group_sums,
    is_nested,
    prepare_sample,
)
from interp_sot.analysis.intervals import resample_counts
from interp_sot.analysis.regression import fit_sample

logger = logging.getLogger(__name__)

Scale = Literal["raw", "std_all", "std_nox"]
_BLOCK = 256  # bootstrap replicates per vectorised block (bounds the [block, units] count matrix)


@dataclass(frozen=True)
class MediationConfig:
    """How to estimate uncertainty and on which scale to report."""

    n_boot: int = 2000
    """cluster-bootstrap replicates B (0 skips the bootstrap; the reference recommends B ≥ 2000)."""
    seed: int = 0
    """seed of the bootstrap's resampling (numpy default_rng)."""
    alpha: float = 0.05
    """1 − confidence level of delta-method and bootstrap intervals."""
    scale: Scale = "raw"
    """``"raw"`` coefficients, ``"std_all"`` (X, M, Y standardised) or ``"std_nox"`` (M, Y standardised)."""

    def __post_init__(self) -> None:
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {self.n_boot}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.scale not in ("raw", "std_all", "std_nox"):
            raise ValueError(f"scale must be 'raw', 'std_all' or 'std_nox', got {self.scale!r}")


@dataclass(frozen=True)
class MediationResult:
    """Point estimates (on ``scale``) plus the tidy table of all effects."""

    a: np.ndarray
    """[k] effect of X on each mediator."""
    b: np.ndarray
    """[k] effect of each mediator on Y given X."""
    direct: float
    """c': effect of X on Y given the mediators."""
    total: float
    """c: effect of X on Y without the mediators; equals direct + indirect_total."""
    table: pd.DataFrame
    """effect, mediator, estimate, se, t, p, ci_low, ci_high (delta method), boot_se, boot_ci_low, boot_ci_high."""
    nobs: int
    n_clusters: int
    n_boot_ok: int
    """bootstrap replicates that were estimable (a replicate without variation in X is not)."""
    scale: Scale

    @property
    def indirect(self) -> np.ndarray:
        return self.a * self.b

    @property
    def indirect_total(self) -> float:
        return float(self.indirect.sum())


def _effects(theta: np.ndarray, k: int) -> np.ndarray:
    """theta [..., 2k+2] = (a, b, c', c) -> effects [..., 3k+3] = (a, b, a·b, Σa·b, c', c)."""
    a, b = theta[..., :k], theta[..., k : 2 * k]
    ind = a * b
    return np.concatenate([a, b, ind, ind.sum(-1, keepdims=True), theta[..., 2 * k :]], axis=-1)


def _effect_jacobian(theta: np.ndarray, k: int) -> np.ndarray:
    """d effects / d theta: [3k+3, 2k+2]."""
    a, b = theta[:k], theta[k : 2 * k]
    jac = np.zeros((3 * k + 3, 2 * k + 2))
    jac[: 2 * k, : 2 * k] = np.eye(2 * k)
    for i in range(k):
        jac[2 * k + i, i] = b[i]
        jac[2 * k + i, k + i] = a[i]
    jac[3 * k, :k] = b
    jac[3 * k, k : 2 * k] = a
    jac[3 * k + 1, 2 * k] = 1.0
    jac[3 * k + 2, 2 * k + 1] = 1.0
    return jac


def _scale_factors(sd_x: np.ndarray, sd_m: np.ndarray, sd_y: np.ndarray, scale: Scale) -> np.ndarray:
    """Multipliers for theta = (a, b, c', c); broadcasts over leading replicate axes."""
    if scale == "raw":
        return np.ones((*sd_m.shape[:-1], 2 * sd_m.shape[-1] + 2))
    sx = sd_x if scale == "std_all" else np.ones_like(sd_x)
    return np.concatenate([sx / sd_m, sd_m / sd_y, sx / sd_y, sx / sd_y], axis=-1)


def mediate(
    df: pd.DataFrame,
    x: str,
    y: str,
    mediators: Sequence[str],
    *,
    fe: str | None = None,
    cluster: str | None = None,
    controls: Sequence[str] = (),
    resample: str | None = None,
    config: MediationConfig | None = None,
    missing: MissingPolicy = "error",
    singletons: SingletonPolicy = "drop",
) -> MediationResult:
    """Decompose the effect of ``x`` on ``y`` into direct and indirect (via parallel ``mediators``) parts.

    ``resample`` names the bootstrap unit (default: ``cluster``, else ``fe``, else rows). When the FE is nested
    in the resampling unit, a duplicated unit is a new FE group, its within-transformed rows are unchanged, and
    every replicate reduces to a weighted sum of per-unit cross-product matrices (fast). Otherwise each replicate
    re-demeans its resampled rows.
    """
    cfg = config or MediationConfig()
    mediators = list(mediators)
    controls = list(controls)
    if not mediators:
        raise ValueError("mediate needs at least one mediator")
    cols = [x, *mediators, *controls, y]
    sample = prepare_sample(df, cols, fe, cluster, missing=missing, singletons=singletons)
    k = len(mediators)
    intercept = fe is None
    off = int(intercept)
    fits_a = [fit_sample(sample, m, [x, *controls], intercept=intercept, fe_name=fe) for m in mediators]
    fit_y = fit_sample(sample, y, [x, *mediators, *controls], intercept=intercept, fe_name=fe)
    fit_c = fit_sample(sample, y, [x, *controls], intercept=intercept, fe_name=fe)

    theta = np.array(
        [f.coef[off] for f in fits_a] + list(fit_y.coef[off + 1 : off + 1 + k]) + [fit_y.coef[off], fit_c.coef[off]]
    )
    infl = np.column_stack(
        [np.sqrt(f.ssc) * f.influence[:, off] for f in fits_a]
        + [np.sqrt(fit_y.ssc) * fit_y.influence[:, off + 1 + i] for i in range(k)]
        + [np.sqrt(fit_y.ssc) * fit_y.influence[:, off], np.sqrt(fit_c.ssc) * fit_c.influence[:, off]]
    )
    vals = sample.values
    sds = [np.array([np.std(vals[c], ddof=1)]) for c in (x, y)]
    sd_m = np.array([np.std(vals[m], ddof=1) for m in mediators])
    if cfg.scale != "raw" and (np.any(sd_m == 0) or sds[0][0] == 0 or sds[1][0] == 0):
        raise ValueError("a standardised scale needs non-constant x, y and mediators")
    factors = _scale_factors(sds[0], sd_m, sds[1], cfg.scale)
    theta_s = theta * factors
    vcov = (infl * factors).T @ (infl * factors)
    jac = _effect_jacobian(theta_s, k)
    est = _effects(theta_s, k)
    se = np.sqrt(np.einsum("ij,jk,ik->i", jac, vcov, jac))
    df_t = fit_y.df_t
    crit = stats.t.ppf(1 - cfg.alpha / 2, df_t)
    t = est / se

    boot = np.empty((0, est.size))
    if cfg.n_boot:
        boot = _bootstrap(df, sample, x, mediators, controls, y, fe, resample or cluster or fe, cfg)
    n_ok = len(boot)
    if cfg.n_boot and n_ok < cfg.n_boot:
        logger.warning(
            "%d of %d bootstrap replicates were not estimable and were skipped", cfg.n_boot - n_ok, cfg.n_boot
        )
    q = (100 * cfg.alpha / 2, 100 * (1 - cfg.alpha / 2))
    boot_lo, boot_hi = np.percentile(boot, q, axis=0) if n_ok else np.full((2, est.size), np.nan)
    boot_se = boot.std(axis=0, ddof=1) if n_ok > 1 else np.full(est.size, np.nan)

    names = ["a"] * k + ["b"] * k + ["indirect"] * k + ["indirect_total", "direct", "total"]
    meds: list[str | None] = [*mediators, *mediators, *mediators, None, None, None]
    table = pd.DataFrame(
        {
            "effect": names,
            "mediator": meds,
            "estimate": est,
            "se": se,
            "t": t,
            "p": 2 * stats.t.sf(np.abs(t), df_t),
            "ci_low": est - crit * se,
            "ci_high": est + crit * se,
            "boot_se": boot_se,
            "boot_ci_low": boot_lo,
            "boot_ci_high": boot_hi,
        }
    )
    table.attrs.update(scale=cfg.scale, nobs=sample.nobs, n_clusters=sample.n_clusters, df_t=df_t, n_boot_ok=n_ok)
    return MediationResult(
        a=theta_s[:k],
        b=theta_s[k : 2 * k],
        direct=float(theta_s[2 * k]),
        total=float(theta_s[2 * k + 1]),
        table=table,
        nobs=sample.nobs,
        n_clusters=sample.n_clusters,
        n_boot_ok=n_ok,
        scale=cfg.scale,
    )


def _bootstrap(
    df: pd.DataFrame,
    sample: Sample,
    x: str,
    mediators: list[str],
    controls: list[str],
    y: str,
    fe: str | None,
    unit_col: str | None,
    cfg: MediationConfig,
) -> np.ndarray:
    """[n_ok, 3k+3] effects over the estimable replicates."""
    n = sample.nobs
    if unit_col is None:
        units, n_units = np.arange(n), n
    else:
        units, uniq = pd.factorize(df[unit_col].iloc[sample.rows])
        n_units = len(uniq)
    if n_units < 2:
        raise ValueError(f"the bootstrap needs at least 2 resampling units in {unit_col!r}")
    raw = np.column_stack([sample.values[c] for c in (x, *mediators, *controls, y)])
    moments_cols = [0, *range(1, 1 + len(mediators)), raw.shape[1] - 1]  # x, mediators, y
    rng = np.random.default_rng(cfg.seed)
    fast = fe is None or sample.fe_codes is None or is_nested(sample.fe_codes, units, sample.n_fe_groups)
    if fast:
        w = demean(raw, sample.fe_codes, sample.n_fe_groups)
        if fe is None:
            w = np.column_stack([np.ones(n), w])
        p = w.shape[1]
        cross = group_sums(units, n_units, (w[:, :, None] * w[:, None, :]).reshape(n, p * p))
        mom_raw = raw[:, moments_cols]
        mom = group_sums(units, n_units, np.column_stack([np.ones(n), mom_raw, mom_raw**2]))
    else:
        order = np.argsort(units, kind="stable")
        starts = np.searchsorted(units[order], np.arange(n_units + 1))
    out: list[np.ndarray] = []
    for start in range(0, cfg.n_boot, _BLOCK):
        counts = resample_counts(rng, n_units, min(_BLOCK, cfg.n_boot - start))
        if fast:
            cb = (counts @ cross).reshape(-1, p, p)
            mb = counts @ mom
        else:
            cb, mb = _resampled_cross(raw, sample, fe, counts, order, starts, moments_cols)
        out.append(_effects_from_cross(cb, mb, len(mediators), len(controls), fe is None, cfg.scale))
    eff = np.concatenate(out)
    return eff[np.isfinite(eff).all(axis=1)]


def _resampled_cross(
    raw: np.ndarray,
    sample: Sample,
    fe: str | None,
    counts: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    moments_cols: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Cross products and raw moments of each replicate when the FE is not nested in the units (slow path)."""
    cbs, mbs = [], []
    for row in counts:
        drawn = np.repeat(np.arange(len(row)), row)
        idx = np.concatenate([order[starts[u] : starts[u + 1]] for u in drawn])
        r = raw[idx]
        codes = sample.fe_codes[idx] if fe is not None and sample.fe_codes is not None else None
        w = demean(r, codes, sample.n_fe_groups)
        if fe is None:
            w = np.column_stack([np.ones(len(idx)), w])
        cbs.append(w.T @ w)
        m = r[:, moments_cols]
        mbs.append(np.concatenate([[len(idx)], m.sum(0), (m**2).sum(0)]))
    return np.stack(cbs), np.stack(mbs)


def _solve(cb: np.ndarray, rows: list[int], target: int) -> np.ndarray:
    """Batched normal equations; singular replicates become NaN rows."""
    a = cb[:, rows][:, :, rows]
    rhs = cb[:, rows, target]
    out = np.full(rhs.shape, np.nan)
    d = np.sqrt(np.einsum("bii->bi", a))
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = np.linalg.cond(a / (d[:, :, None] * d[:, None, :]))  # scale-free: condition of the correlation form
    ok = np.isfinite(cond) & (cond < 1e12)
    if ok.any():
        out[ok] = np.linalg.solve(a[ok], rhs[ok][..., None])[..., 0]
    return out


def _effects_from_cross(
    cb: np.ndarray, mb: np.ndarray, k: int, n_ctrl: int, intercept: bool, scale: Scale
) -> np.ndarray:
    """Replicate effects from cross products ``cb: [B, p, p]`` and moments ``mb: [B, 1 + 2(k+2)]``."""
    off = int(intercept)
    base = list(range(off))  # the intercept column when there is no FE
    xi, mi, ci = off, list(range(off + 1, off + 1 + k)), list(range(off + 1 + k, off + 1 + k + n_ctrl))
    yi = cb.shape[1] - 1
    a = np.stack([_solve(cb, [*base, xi, *ci], m)[:, off] for m in mi], axis=1)
    out = _solve(cb, [*base, xi, *mi, *ci], yi)
    c = _solve(cb, [*base, xi, *ci], yi)[:, off]
    theta = np.column_stack([a, out[:, off + 1 : off + 1 + k], out[:, off], c])
    nb = mb[:, :1]
    mean, sq = mb[:, 1 : 1 + k + 2] / nb, mb[:, 1 + k + 2 :] / nb
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.maximum(sq - mean**2, 0.0) * nb / (nb - 1))
        factors = _scale_factors(sd[:, :1], sd[:, 1 : 1 + k], sd[:, -1:], scale)
        return _effects(theta * factors, k)
