"""Random-feature controls and their strengths (screening.controls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_sot.screening.controls import control_pool, control_strength, sample_controls


def table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ratio = rng.random(n)
    ratio[::17] = np.nan
    fire = rng.integers(0, 50, n)
    fire[::23] = 0
    return pd.DataFrame({
        "feature": np.arange(n),
        "conversation_ratio": ratio,
        "onset_share": rng.random(n),
        "first_n_share": rng.random(n),
        "fire_count": fire,
        "max_act": np.where(fire > 0, rng.random(n) * 10 + 0.1, 0.0),
    })


def test_pools_follow_the_definitions() -> None:
    t = table()
    alive = [f for f in range(len(t)) if t.fire_count[f] > 0 and not np.isnan(t.conversation_ratio[f])]
    mean = np.mean([t.conversation_ratio[f] for f in alive])
    conv = [f for f in alive if t.conversation_ratio[f] > mean and t.onset_share[f] > 0.5]
    non = [f for f in alive if t.conversation_ratio[f] <= mean]
    assert control_pool(t, "conversational").tolist() == conv
    assert control_pool(t, "non_conversational").tolist() == non
    by_first = [f for f in alive if t.conversation_ratio[f] > mean and t.first_n_share[f] > 0.3]
    assert control_pool(t, "conversational", "first_n_share", 0.3).tolist() == by_first
    assert not set(conv) & set(non)


def test_sampling_is_reproducible_and_respects_exclusions() -> None:
    t = table()
    a = sample_controls(t, n=40, group="conversational", seed=1)
    assert a.tolist() == sample_controls(t, n=40, group="conversational", seed=1).tolist()
    assert a.tolist() != sample_controls(t, n=40, group="conversational", seed=2).tolist()
    assert len(set(a.tolist())) == 40 and set(a.tolist()) <= set(control_pool(t, "conversational").tolist())
    # the reference: numpy's generator over the sorted pool
    pool = control_pool(t, "non_conversational")
    expected = np.random.default_rng(7).choice(pool, size=30, replace=False)
    assert sample_controls(t, n=30, group="non_conversational", seed=7).tolist() == expected.tolist()
    excluded = set(a[:10].tolist())
    b = sample_controls(t, n=40, group="conversational", seed=1, exclude=excluded)
    assert not excluded & set(b.tolist())
    size = len(control_pool(t, "conversational"))
    with pytest.raises(ValueError, match=f"only {size} conversational features are eligible"):
        sample_controls(t, n=size + 1)
    with pytest.raises(ValueError, match="group must be one of"):
        sample_controls(t, group="chatty")
    with pytest.raises(ValueError, match="no 'onset_share' column"):
        sample_controls(t.drop(columns=["onset_share"]))


def test_control_strength() -> None:
    t = table()
    feats = sample_controls(t, n=5, group="non_conversational", seed=0)
    np.testing.assert_allclose(control_strength(t, feats), 2.0 * t.max_act.to_numpy()[feats])
    np.testing.assert_allclose(control_strength(t, feats, factor=3.5), 3.5 * t.max_act.to_numpy()[feats])
    with pytest.raises(ValueError, match=r"features \[999\] are not in the table"):
        control_strength(t, [1, 999])
    with pytest.raises(ValueError, match="never activated"):
        control_strength(t, [0])  # fire_count[0] == 0
