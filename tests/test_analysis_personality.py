"""BFI-10 scoring (worked examples) and per-dimension SD across perspectives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.personality import (
    DIMENSIONS,
    ITEM_COLUMNS,
    REVERSE_KEYED,
    bfi10_scores,
    personality_diversity,
    score_bfi10,
)


def test_keys_follow_rammstedt_and_john() -> None:
    assert REVERSE_KEYED == {1, 3, 4, 5, 7}
    assert DIMENSIONS == {
        "extraversion": (1, 6),
        "agreeableness": (2, 7),
        "conscientiousness": (3, 8),
        "neuroticism": (4, 9),
        "openness": (5, 10),
    }


def test_worked_examples() -> None:
    # E = (6-2 + 4)/2 = 4; A = (4 + 6-2)/2 = 4; C = (6-2 + 5)/2 = 4.5; N = (6-3 + 3)/2 = 3; O = (6-1 + 5)/2 = 5
    assert score_bfi10([2, 4, 2, 3, 1, 4, 2, 5, 3, 5]) == {
        "extraversion": 4.0,
        "agreeableness": 4.0,
        "conscientiousness": 4.5,
        "neuroticism": 3.0,
        "openness": 5.0,
    }
    # All 3s: reverse keying maps 3 to 3, every scale is 3.
    assert set(score_bfi10([3] * 10).values()) == {3.0}
    # All 5s: reversed items become 1, so every scale is (1 + 5) / 2 = 3.
    assert set(score_bfi10([5] * 10).values()) == {3.0}
    # Maximal extravert: reserved = 1, outgoing = 5, everything else neutral.
    assert score_bfi10([1, 3, 3, 3, 3, 5, 3, 3, 3, 3])["extraversion"] == 5.0
    # Maximal neuroticism: relaxed = 1, nervous = 5.
    assert score_bfi10([3, 3, 3, 1, 3, 3, 3, 3, 5, 3])["neuroticism"] == 5.0


def test_table_scoring_matches_single() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(1, 6, size=(20, 10))
    df = pd.DataFrame(items, columns=list(ITEM_COLUMNS)).assign(trace_id=np.repeat(np.arange(5), 4))
    scored = bfi10_scores(df)
    for i in range(20):
        assert scored.loc[i, list(DIMENSIONS)].to_dict() == score_bfi10(items[i].tolist())
    assert "trace_id" in scored.columns


def test_sd_across_perspectives_with_explicit_ddof() -> None:
    df = pd.DataFrame(
        {
            "trace_id": ["a", "a", "a", "b", "b", "c"],
            "extraversion": [1.0, 3.0, 5.0, 2.0, 2.0, 4.0],
            "agreeableness": [3.0] * 6,
            "conscientiousness": [1.0, 1.0, 4.0, 1.0, 5.0, 2.0],
            "neuroticism": [2.0] * 6,
            "openness": [5.0, 4.0, 3.0, 1.0, 2.0, 3.0],
        }
    )
    out = personality_diversity(df).set_index("trace_id")
    assert out.loc["a", "n_perspectives"] == 3
    assert out.loc["a", "sd_extraversion"] == pytest.approx(2.0)  # sample SD of 1, 3, 5
    assert out.loc["a", "sd_conscientiousness"] == pytest.approx(np.sqrt(3.0))
    assert out.loc["b", "sd_conscientiousness"] == pytest.approx(np.sqrt(8.0))
    assert out.loc["a", "sd_agreeableness"] == 0.0
    assert out.loc["c"].drop("n_perspectives").eq(0.0).all()  # single perspective -> 0 by default
    pop = personality_diversity(df, ddof=0).set_index("trace_id")
    assert pop.loc["a", "sd_extraversion"] == pytest.approx(np.sqrt(8 / 3))
    assert pop.loc["c", "sd_extraversion"] == 0.0
    dropped = personality_diversity(df, single="drop")
    assert list(dropped["trace_id"]) == ["a", "b"]
    with pytest.raises(ValueError, match="undefined"):
        personality_diversity(df, single="error")
    assert not out.isna().any().any()
    row = out.loc["a"]
    assert row["sd_mean"] == pytest.approx(np.mean([row[f"sd_{d}"] for d in DIMENSIONS]))


def test_perspectives_without_scores_and_bad_ratings() -> None:
    df = pd.DataFrame([[3] * 10, [4] * 10], columns=list(ITEM_COLUMNS)).assign(trace_id="t", perspective_id=[1, 2])
    df.loc[1, "bfi_4"] = np.nan
    with pytest.raises(ValueError, match=r"item 4 of row 1 \(trace_id='t', perspective_id=2\) is missing"):
        bfi10_scores(df)
    assert len(bfi10_scores(df, missing="drop")) == 1
    df.loc[1, "bfi_4"] = 6
    with pytest.raises(ValueError, match=r"outside 1\.\.5"):
        bfi10_scores(df)
    with pytest.raises(ValueError, match="exactly 10"):
        score_bfi10([3] * 9)
    with pytest.raises(ValueError, match="lacks BFI-10"):
        bfi10_scores(df.drop(columns="bfi_10"))
    scored = bfi10_scores(df.assign(bfi_4=3)).assign(openness=np.nan)
    with pytest.raises(ValueError, match="missing dimension"):
        personality_diversity(scored)
