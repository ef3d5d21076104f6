"""Random-feature controls: the paper's 300 conversational and 300 non-conversational features.

Pools (from a screening table, see ``screen.feature_table``), both restricted to features that fired
(``fire_count > 0``) and have a conversation ratio:

- ``"conversational"`` group: ratio > mean ratio AND sentence-onset activation, i.e. ``position_column`` (default
  ``onset_share``) > ``position_threshold`` (default 0.5) — the paper's "conversation ratio > mean and
  sentence-onset activation".
- ``"non_conversational"`` group: ratio <= mean ratio (no position condition; the paper states none).

The mean is over the same features (fired, ratio defined). Sampling is uniform without replacement with
``numpy.random.default_rng(seed)`` over the pool sorted by feature id, so a seed gives the same features on
any machine. Steering strength for controls: 2 x the feature's max observed activation (:func:`control_strength`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from interp_sot.screening.groups import CONTROL_GROUPS, CONVERSATIONAL_GROUP, ControlGroup


def control_pool(
    table: pd.DataFrame,
    group: ControlGroup,
    position_column: str = "onset_share",
    position_threshold: float = 0.5,
) -> np.ndarray:
    """Sorted feature ids eligible as controls of ``group`` (see module doc)."""
    if group not in CONTROL_GROUPS:
        raise ValueError(f"group must be one of {CONTROL_GROUPS}, got {group!r}")
    for col in ("feature", "conversation_ratio", "fire_count", position_column):
        if col not in table.columns:
            raise ValueError(f"the table has no {col!r} column; build it with screening.screen.feature_table")
    ratio = table["conversation_ratio"].to_numpy(dtype=np.float64)
    alive = (table["fire_count"].to_numpy() > 0) & ~np.isnan(ratio)
    if not alive.any():
        raise ValueError("no feature both fired and has a conversation ratio; cannot form control pools")
    mean = ratio[alive].mean()
    if group == CONVERSATIONAL_GROUP:
        position = table[position_column].to_numpy(dtype=np.float64)
        mask = alive & (ratio > mean) & (position > position_threshold)
    else:
        mask = alive & (ratio <= mean)
    return np.sort(table["feature"].to_numpy()[mask].astype(np.int64))


def sample_controls(
    table: pd.DataFrame,
    n: int = 300,
    group: ControlGroup = "conversational",
    seed: int = 0,
    exclude: Iterable[int] = (),
    position_column: str = "onset_share",
    position_threshold: float = 0.5,
) -> np.ndarray:
    """``n`` distinct control feature ids of ``group``, in sampled order; ``exclude`` (e.g. the steered feature)
    is removed from the pool first. Raises if the pool holds fewer than ``n`` features."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pool = control_pool(table, group, position_column, position_threshold)
    excluded = np.asarray(sorted(set(int(f) for f in exclude)), dtype=np.int64)
    pool = pool[~np.isin(pool, excluded)]
    if pool.size < n:
        raise ValueError(f"only {pool.size} {group} features are eligible (after exclusions), cannot sample {n}")
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=n, replace=False)


def control_strength(table: pd.DataFrame, features: Iterable[int], factor: float = 2.0) -> np.ndarray:
    """Steering strength per feature: ``factor`` x its max observed activation (the paper: 2x, SAE units)."""
    ids = np.asarray(list(features), dtype=np.int64)
    max_act = pd.Series(table["max_act"].to_numpy(dtype=np.float64), index=table["feature"].to_numpy())
    missing = ids[~np.isin(ids, max_act.index.to_numpy())]
    if missing.size:
        raise ValueError(f"features {missing[:10].tolist()} are not in the table")
    values = max_act.loc[ids].to_numpy()
    bad = ids[~(values > 0)]
    if bad.size:
        raise ValueError(f"features {bad[:10].tolist()} never activated (max activation <= 0 or NaN): no strength")
    return factor * values
