"""One absorbed fixed effect: input checks, singleton removal, nesting test and the within transform.

Every estimator in this package (``fe_ols``, ``mediate``) goes through ``prepare_sample`` so that missing values,
singleton groups and degenerate clusterings are handled once, the same way, with errors that name the column.
The within transform subtracts group means, which is exact for a single fixed effect (no iteration needed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp_sot.analysis.policies import MissingPolicy, SingletonPolicy

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class Sample:
    """The estimation sample after input checks: numeric columns plus integer codes for FE and clusters."""

    values: dict[str, np.ndarray]
    """column name -> float64 array [N] (y, regressors, controls, mediators)."""
    fe_codes: np.ndarray | None
    """[N] int codes 0..n_fe_groups-1 of the absorbed fixed effect, or None without one."""
    n_fe_groups: int
    """number of distinct fixed-effect groups in the sample (0 without a fixed effect)."""
    cluster_codes: np.ndarray | None
    """[N] int codes 0..n_clusters-1, or None for heteroskedasticity-robust (one cluster per row)."""
    n_clusters: int
    """number of clusters (N when ``cluster_codes`` is None)."""
    fe_nested: bool
    """every FE group lies inside a single cluster (then fixest does not count the FE in the small-sample K)."""
    n_dropped_missing: int
    """rows removed because a used column was missing (only with ``missing='drop'``)."""
    n_dropped_singletons: int
    """rows removed because they were alone in their FE group (only with ``singletons='drop'``)."""
    rows: np.ndarray
    """[N] positions (not labels) of the kept rows in the caller's frame."""

    @property
    def nobs(self) -> int:
        return len(self.rows)


def _codes(series: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(series, sort=False)
    return codes.astype(np.int64), len(uniques)


def _check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the data frame (columns: {list(df.columns)})")
    dup = {c for c in columns if list(columns).count(c) > 1}
    if dup:
        raise ValueError(f"column(s) {sorted(dup)} used twice in one model (e.g. as both x and control)")


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if s.dtype == bool or str(s.dtype) == "boolean":
        s = s.astype("float64")
    try:
        arr = pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as err:
        raise ValueError(f"column {col!r} must be numeric (dtype {s.dtype}): {err}") from err
    if np.isinf(arr).any():
        raise ValueError(f"column {col!r} has {int(np.isinf(arr).sum())} infinite value(s)")
    return arr


def prepare_sample(
    df: pd.DataFrame,
    numeric: Sequence[str],
    fe: str | None,
    cluster: str | None,
    *,
    missing: MissingPolicy = "error",
    singletons: SingletonPolicy = "drop",
) -> Sample:
    """Validate the used columns and build the estimation sample.

    Args:
        numeric: columns entering the model as numbers (bool columns become 0/1).
        fe: column whose groups are absorbed (one fixed effect), or None.
        cluster: column defining clusters for CR1 standard errors, or None for HC1.
        missing: ``"error"`` raises on any missing value in a used column (naming the column and count);
            ``"drop"`` removes those rows and records how many.
        singletons: rows alone in their FE group carry no within-group information. ``"drop"`` (fixest's and
            pyfixest's default) removes them so they do not count in N; ``"keep"`` leaves them in; ``"error"`` raises.
    """
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if singletons not in ("drop", "keep", "error"):
        raise ValueError(f"singletons must be 'drop', 'keep' or 'error', got {singletons!r}")
    categorical = [c for c in (fe, cluster) if c is not None]
    _check_columns(df, list(numeric))
    _check_columns(df, list(dict.fromkeys(categorical)))
    if len(df) == 0:
        raise ValueError("the data frame is empty")

    values = {c: _numeric(df, c) for c in numeric}
    keep = np.ones(len(df), dtype=bool)
    problems: list[str] = []
    for c, arr in values.items():
        bad = np.isnan(arr)
        if bad.any():
            problems.append(f"{c!r}: {int(bad.sum())}")
            keep &= ~bad
    for c in dict.fromkeys(categorical):
        bad = df[c].isna().to_numpy()
        if bad.any():
            problems.append(f"{c!r}: {int(bad.sum())}")
            keep &= ~bad
    n_missing = int((~keep).sum())
    if problems and missing == "error":
        raise ValueError(
            "missing values in used column(s) " + ", ".join(problems) + "; clean them or pass missing='drop'"
        )
    if n_missing:
        logger.info("dropping %d of %d rows with missing values (%s)", n_missing, len(df), ", ".join(problems))

    fe_codes = None
    n_singletons = 0
    if fe is not None:
        fe_codes, n_groups = _codes(df[fe][keep])
        sizes = np.bincount(fe_codes, minlength=n_groups)
        single_rows = sizes[fe_codes] == 1
        n_singletons = int(single_rows.sum())
        if n_singletons and singletons == "error":
            raise ValueError(
                f"{n_singletons} fixed-effect group(s) of {fe!r} have a single row; "
                "pass singletons='drop' (fixest's default) or 'keep'"
            )
        if n_singletons and singletons == "drop":
            logger.info("dropping %d singleton row(s) of fixed effect %r", n_singletons, fe)
            idx = np.flatnonzero(keep)
            keep[idx[single_rows]] = False
        else:
            n_singletons = 0

    if not keep.any():
        raise ValueError("no rows left after removing missing values and singleton fixed-effect groups")
    sub = df.loc[keep] if not keep.all() else df
    values = {c: np.ascontiguousarray(a[keep]) for c, a in values.items()}
    n_fe_groups = 0
    if fe is not None:
        fe_codes, n_fe_groups = _codes(sub[fe])
    cluster_codes = None
    n_clusters = int(keep.sum())
    if cluster is not None:
        cluster_codes, n_clusters = _codes(sub[cluster])
        if n_clusters < 2:
            raise ValueError(
                f"cluster column {cluster!r} has {n_clusters} distinct value(s) in the sample; "
                "cluster-robust SEs need at least 2 clusters"
            )
    nested = fe_codes is not None and cluster_codes is not None and is_nested(fe_codes, cluster_codes, n_fe_groups)
    return Sample(
        values=values,
        fe_codes=fe_codes,
        n_fe_groups=n_fe_groups,
        cluster_codes=cluster_codes,
        n_clusters=n_clusters,
        fe_nested=bool(nested),
        n_dropped_missing=n_missing,
        n_dropped_singletons=n_singletons,
        rows=np.flatnonzero(keep),
    )


def is_nested(inner: np.ndarray, outer: np.ndarray, n_inner: int) -> bool:
    """True when every ``inner`` group maps to exactly one ``outer`` group (O(N), no sort)."""
    first = np.empty(n_inner, dtype=outer.dtype)
    first[inner] = outer  # any member's outer code; nested iff all members agree with it
    return bool(np.all(first[inner] == outer))


def group_sums(codes: np.ndarray, n_groups: int, mat: np.ndarray) -> np.ndarray:
    """Column sums per group. ``mat: [N, p]`` -> ``[n_groups, p]``."""
    out = np.empty((n_groups, mat.shape[1]), dtype=np.float64)
    for j in range(mat.shape[1]):
        out[:, j] = np.bincount(codes, weights=mat[:, j], minlength=n_groups)
    return out


def demean(mat: np.ndarray, codes: np.ndarray | None, n_groups: int) -> np.ndarray:
    """Within transform: subtract FE-group means. ``mat: [N, p]`` -> ``[N, p]`` (a copy; mat unchanged)."""
    if codes is None:
        return mat.copy()
    sizes = np.maximum(np.bincount(codes, minlength=n_groups), 1).astype(np.float64)  # empty groups: unused
    means = group_sums(codes, n_groups, mat) / sizes[:, None]
    return mat - means[codes]
