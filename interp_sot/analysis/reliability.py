"""Judge reliability as ICC(3,1): two-way mixed effects, consistency, single rater (Shrout & Fleiss, 1979).

With n targets (e.g. traces) each rated by the same k raters (judges, or repeated runs of one judge):

    ICC(3,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E)

MS_R is the between-targets mean square and MS_E the residual mean square of the two-way ANOVA without
interaction. The confidence interval is the exact F-based one of Shrout & Fleiss (their Table 4):
F_L = F / F_{1−α/2}(n−1, (n−1)(k−1)), F_U = F · F_{1−α/2}((n−1)(k−1), n−1), bounds (F_x − 1)/(F_x + k − 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class ICCResult:
    """ICC(3,1) with its F test against ICC = 0 and confidence interval."""

    icc: float
    f: float
    """MS_R / MS_E."""
    df1: int
    df2: int
    p: float
    """one-sided p-value of F (H0: ICC = 0)."""
    ci_low: float
    ci_high: float
    n_targets: int
    n_raters: int
    ms_rows: float
    ms_error: float


def icc3_1(ratings: np.ndarray | pd.DataFrame, alpha: float = 0.05) -> ICCResult:
    """ICC(3,1) of a complete ``ratings: [n_targets, k_raters]`` matrix (missing cells raise)."""
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a 2-D [targets, raters] array, got shape {x.shape}")
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError(f"ICC needs at least 2 targets and 2 raters, got {n} x {k}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"ratings have missing/non-finite cells (first at target {bad[0]}, rater {bad[1]})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    df1, df2 = n - 1, (n - 1) * (k - 1)
    ms_r, ms_e = ss_rows / df1, max(ss_err, 0.0) / df2
    denom = ms_r + (k - 1) * ms_e
    if denom <= 0:
        raise ValueError("ratings have no variance beyond rater means; ICC is undefined")
    if ms_e == 0:
        # Raters agree perfectly up to their offsets: ICC(3,1) = 1, F infinite.
        return ICCResult(1.0, np.inf, df1, df2, 0.0, 1.0, 1.0, n, k, float(ms_r), 0.0)
    f = ms_r / ms_e
    f_l = f / stats.f.ppf(1 - alpha / 2, df1, df2)
    f_u = f * stats.f.ppf(1 - alpha / 2, df2, df1)
    return ICCResult(
        icc=float((ms_r - ms_e) / denom),
        f=float(f),
        df1=df1,
        df2=df2,
        p=float(stats.f.sf(f, df1, df2)),
        ci_low=float((f_l - 1) / (f_l + k - 1)),
        ci_high=float((f_u - 1) / (f_u + k - 1)),
        n_targets=n,
        n_raters=k,
        ms_rows=float(ms_r),
        ms_error=float(ms_e),
    )


def icc3_1_long(df: pd.DataFrame, target: str, rater: str, rating: str, alpha: float = 0.05) -> ICCResult:
    """ICC(3,1) from a long table (one row per target × rater); every target must have every rater once."""
    absent = [c for c in (target, rater, rating) if c not in df.columns]
    if absent:
        raise ValueError(f"ratings table lacks column(s) {absent}")
    dup = df.duplicated([target, rater])
    if dup.any():
        first = df.loc[dup, [target, rater]].iloc[0].tolist()
        raise ValueError(f"{int(dup.sum())} duplicate (target, rater) rows, e.g. {first}")
    wide = df.pivot(index=target, columns=rater, values=rating)
    holes = wide.isna()
    if holes.any().any():
        t = holes.any(axis=1)
        raise ValueError(
            f"{int(t.sum())} target(s) lack a rating from some rater (e.g. {target}={t[t].index[0]!r}); "
            "ICC(3,1) needs a complete design"
        )
    return icc3_1(wide.to_numpy(dtype=np.float64), alpha=alpha)
