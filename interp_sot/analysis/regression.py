"""Linear (probability) models with one absorbed fixed effect and cluster-robust CR1 standard errors.

The paper's statistics are OLS with problem fixed effects, a log trace-length control and SEs clustered at the
task level. ``fe_ols`` reproduces fixest/pyfixest's ``feols(y ~ x + controls | fe, vcov={"CRV1": cluster})``:

* coefficients from OLS on the within-transformed data;
* CR1 sandwich ``V = c · (X'X)⁻¹ (Σ_g s_g s_gᵀ) (X'X)⁻¹`` with ``s_g = Σ_{i∈g} x̃_i e_i``;
* fixest's small-sample factor ``c = G/(G−1) · (N−1)/(N−K)`` where ``K`` counts the slopes plus the FE
  levels, except that an FE nested in the clusters counts as one parameter (``fixef.K = "nested"``): so
  ``K = k + 1`` when nested and ``k + n_groups`` otherwise. Counting nested FEs would inflate variances ~2×
  in the paper's design (two rows per problem);
* t statistics with ``G − 1`` degrees of freedom.

Without a cluster column the errors are heteroskedasticity-robust (HC1, ``c = N/(N−K)``, ``N − K`` df), as
pyfixest's ``vcov="hetero"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg, stats

from interp_sot.analysis.fixed_effects import MissingPolicy, Sample, SingletonPolicy, demean, group_sums, prepare_sample

logger = logging.getLogger(__name__)

TIDY_COLUMNS = ("term", "coef", "se", "t", "p", "ci_low", "ci_high")
_ABSORBED_TOL = 1e-10
_COLLINEAR_TOL = 1e-9


@dataclass(frozen=True)
class FEOLSFit:
    """One fitted equation, with what the mediation delta method needs to combine equations."""

    terms: tuple[str, ...]
    """regressor names in coefficient order (x, then controls; ``Intercept`` first without an FE)."""
    coef: np.ndarray
    """[K] OLS coefficients."""
    vcov: np.ndarray
    """[K, K] CR1 (or HC1) covariance, small-sample factor included."""
    df_t: int
    """degrees of freedom of the t distribution (G − 1 clustered, N − K otherwise)."""
    ssc: float
    """the small-sample factor c applied to the sandwich."""
    df_k: int
    """K in (N − 1)/(N − K): slopes (+ intercept) + counted FE levels."""
    influence: np.ndarray
    """[G, K] per-cluster influence ``s_g (X'X)⁻¹``; ``vcov = ssc · influenceᵀ influence``."""
    nobs: int
    n_clusters: int
    n_fe_groups: int
    fe_nested: bool
    n_dropped_missing: int
    n_dropped_singletons: int

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def tidy(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per term: coef, se, t, two-sided p and the (1 − alpha) CI, all on ``df_t`` df."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        se = self.se
        t = self.coef / se
        crit = stats.t.ppf(1 - alpha / 2, self.df_t)
        out = pd.DataFrame(
            {
                "term": list(self.terms),
                "coef": self.coef,
                "se": se,
                "t": t,
                "p": 2 * stats.t.sf(np.abs(t), self.df_t),
                "ci_low": self.coef - crit * se,
                "ci_high": self.coef + crit * se,
            }
        )
        out.attrs.update(
            nobs=self.nobs,
            n_clusters=self.n_clusters,
            n_fe_groups=self.n_fe_groups,
            fe_nested=self.fe_nested,
            df_t=self.df_t,
            df_k=self.df_k,
            ssc=self.ssc,
            n_dropped_missing=self.n_dropped_missing,
            n_dropped_singletons=self.n_dropped_singletons,
            alpha=alpha,
        )
        return out


def _as_list(v: str | Sequence[str] | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def check_rank(xd: np.ndarray, raw: np.ndarray, names: Sequence[str], fe: str | None) -> None:
    """Raise naming regressors that the FE absorbs or that are linear combinations of others.

    ``xd: [N, K]`` demeaned design; ``raw: [N, K]`` before demeaning (to judge "absorbed" on a relative scale).
    """
    norm_d = np.einsum("ij,ij->j", xd, xd)
    norm_r = np.einsum("ij,ij->j", raw, raw)
    absorbed = [n for n, a, b in zip(names, norm_d, norm_r, strict=True) if a <= _ABSORBED_TOL * max(b, 1e-300)]
    if absorbed:
        where = f"constant within the groups of fixed effect {fe!r}" if fe else "constant zero"
        raise ValueError(f"regressor(s) {absorbed} are {where}; they cannot be estimated")
    scaled = xd / np.sqrt(norm_d)
    _, r, piv = linalg.qr(scaled, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    bad = diag < np.sqrt(_COLLINEAR_TOL)  # unit-norm columns: |R_ii| = sqrt(1 - R²) of column i on the others
    if bad.any():
        basis = piv[~bad]
        coefs, *_ = np.linalg.lstsq(scaled[:, basis], scaled[:, piv[bad]], rcond=None)
        parts = []
        for j, d in enumerate(piv[bad]):
            partners = [names[b] for b, c in zip(basis, coefs[:, j], strict=True) if abs(c) > 1e-6]
            parts.append(f"{names[d]!r} ~ {partners}")
        raise ValueError(
            "regressors are (nearly) collinear"
            + (f" after absorbing {fe!r}" if fe else "")
            + ": "
            + "; ".join(parts)
            + " (each is a linear combination of the listed ones); remove one of them"
        )


def fit_sample(
    sample: Sample, y: str, regressors: Sequence[str], *, intercept: bool, fe_name: str | None = None
) -> FEOLSFit:
    """OLS + CR1/HC1 on a prepared sample (shared by ``fe_ols`` and the mediation equations)."""
    n = sample.nobs
    names = (["Intercept"] if intercept else []) + list(regressors)
    cols = [sample.values[c] for c in regressors]
    raw = np.column_stack([np.ones(n)] * intercept + cols + [sample.values[y]]) if names else None
    if raw is None:
        raise ValueError("the model has no regressors")
    both = demean(raw, sample.fe_codes, sample.n_fe_groups)
    xd, yd = both[:, :-1], both[:, -1]
    check_rank(xd, raw[:, :-1], names, fe_name or ("fe" if sample.fe_codes is not None else None))

    xtx = xd.T @ xd
    xtx_inv = linalg.inv(xtx, check_finite=False)
    coef = xtx_inv @ (xd.T @ yd)
    resid = yd - xd @ coef
    scores = xd * resid[:, None]
    if sample.cluster_codes is not None:
        scores = group_sums(sample.cluster_codes, sample.n_clusters, scores)
    influence = scores @ xtx_inv

    k = len(names)
    if sample.fe_codes is None:
        df_k = k
    elif sample.fe_nested:
        df_k = k + 1
    else:
        df_k = k + sample.n_fe_groups
    if n - df_k <= 0:
        raise ValueError(f"{n} observations cannot identify {df_k} parameters (slopes + fixed-effect levels)")
    g = sample.n_clusters
    if sample.cluster_codes is not None:
        ssc = g / (g - 1) * (n - 1) / (n - df_k)
        df_t = g - 1
    else:
        ssc = n / (n - df_k)
        df_t = n - df_k
    vcov = ssc * (influence.T @ influence)
    return FEOLSFit(
        terms=tuple(names),
        coef=coef,
        vcov=vcov,
        df_t=int(df_t),
        ssc=float(ssc),
        df_k=int(df_k),
        influence=influence,
        nobs=n,
        n_clusters=g,
        n_fe_groups=sample.n_fe_groups,
        fe_nested=sample.fe_nested,
        n_dropped_missing=sample.n_dropped_missing,
        n_dropped_singletons=sample.n_dropped_singletons,
    )


def fe_ols_fit(
    df: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    fe: str | None,
    cluster: str | None,
    *,
    controls: str | Sequence[str] | None = None,
    missing: MissingPolicy = "error",
    singletons: SingletonPolicy = "drop",
) -> FEOLSFit:
    """``fe_ols`` returning the fit object (coefficients, covariance, influence) instead of a table."""
    regressors = _as_list(x) + _as_list(controls)
    if not regressors:
        raise ValueError("x must name at least one regressor")
    sample = prepare_sample(df, [y, *regressors], fe, cluster, missing=missing, singletons=singletons)
    return fit_sample(sample, y, regressors, intercept=fe is None, fe_name=fe)


def fe_ols(
    df: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    fe: str | None,
    cluster: str | None,
    *,
    controls: str | Sequence[str] | None = None,
    missing: MissingPolicy = "error",
    singletons: SingletonPolicy = "drop",
    alpha: float = 0.05,
    backend: Literal["numpy", "pyfixest"] = "numpy",
) -> pd.DataFrame:
    """Regress ``y`` on ``x`` (+ ``controls``) absorbing ``fe``, with CR1 SEs clustered by ``cluster``.

    Returns a tidy frame with columns ``term, coef, se, t, p, ci_low, ci_high`` (one row per x and control);
    ``.attrs`` carries ``nobs, n_clusters, n_fe_groups, fe_nested, df_t, df_k, ssc`` and the dropped-row counts.
    ``fe=None`` fits an intercept; ``cluster=None`` gives HC1 errors. Bad input (missing values under
    ``missing="error"``, fewer than 2 clusters, regressors absorbed by the FE or collinear) raises ValueError.
    ``backend="pyfixest"`` runs the same cleaned sample through pyfixest (the ``stats`` extra) as a cross-check.
    """
    if backend == "numpy":
        return fe_ols_fit(df, y, x, fe, cluster, controls=controls, missing=missing, singletons=singletons).tidy(alpha)
    if backend == "pyfixest":
        return _fe_ols_pyfixest(df, y, x, fe, cluster, controls, missing, singletons, alpha)
    raise ValueError(f"backend must be 'numpy' or 'pyfixest', got {backend!r}")


def _fe_ols_pyfixest(
    df: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    fe: str | None,
    cluster: str | None,
    controls: str | Sequence[str] | None,
    missing: MissingPolicy,
    singletons: SingletonPolicy,
    alpha: float,
) -> pd.DataFrame:
    try:
        import pyfixest as pf
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("backend='pyfixest' needs the optional 'stats' extra: pip install interp-sot[stats]") from err
    regressors = _as_list(x) + _as_list(controls)
    used = [y, *regressors] + [c for c in (fe, cluster) if c is not None]
    bad = [c for c in used if not c.isidentifier()]
    if bad:
        raise ValueError(f"backend='pyfixest' needs identifier column names; rename {bad}")
    sample = prepare_sample(df, [y, *regressors], fe, cluster, missing=missing, singletons=singletons)
    data = pd.DataFrame(sample.values)
    if fe is not None:
        data[fe] = sample.fe_codes
    if cluster is not None:
        data[cluster] = sample.cluster_codes
    fml = f"{y} ~ {' + '.join(regressors)}" + (f" | {fe}" if fe else "")
    vcov = {"CRV1": cluster} if cluster else "hetero"
    fit = pf.feols(fml, data, vcov=vcov, fixef_rm="none")
    tab = fit.tidy(alpha=alpha)
    out = pd.DataFrame(
        {
            "term": list(tab.index),
            "coef": tab["Estimate"].to_numpy(),
            "se": tab["Std. Error"].to_numpy(),
            "t": tab["t value"].to_numpy(),
            "p": tab["Pr(>|t|)"].to_numpy(),
            "ci_low": tab.iloc[:, 4].to_numpy(),
            "ci_high": tab.iloc[:, 5].to_numpy(),
        }
    )
    out.attrs.update(nobs=int(fit._N), df_t=int(fit._df_t), df_k=int(fit._df_k), backend="pyfixest")
    return out
