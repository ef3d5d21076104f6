"""Bales IPA Jaccard reciprocity variants and ICC(3,1) against hand-computed and published cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.bales import IPA_CATEGORIES, RECIPROCAL_PAIRS, corpus_reciprocity, reciprocity
from interp_sot.analysis.reliability import icc3_1, icc3_1_long


def counts(**kw: int) -> dict[str, int]:
    row = dict.fromkeys(IPA_CATEGORIES, 0)
    row.update(kw)
    return row


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # asks for suggestion (9) x2 and gives suggestion (4) x1; asks for opinion (8) x3, no opinion given.
            counts(asks_for_suggestion=2, gives_suggestion=1, asks_for_opinion=3, agrees=4, disagrees=1),
            # only gives; positive without negative.
            counts(gives_orientation=5, gives_opinion=1, shows_solidarity=2),
            # nothing coded.
            counts(),
        ]
    ).assign(trace_id=["t1", "t2", "t3"])


def test_pairs_are_bales_reciprocals() -> None:
    assert RECIPROCAL_PAIRS["ask_give"] == ((9, 4), (8, 5), (7, 6))
    assert RECIPROCAL_PAIRS["positive_negative"] == ((1, 12), (2, 11), (3, 10))
    assert IPA_CATEGORIES[3] == "gives_suggestion" and IPA_CATEGORIES[8] == "asks_for_suggestion"


def test_ipa_names_match_the_behaviour_coder() -> None:
    prompts = pytest.importorskip("interp_sot.behaviours.prompts")
    assert tuple(prompts.BALES_DEFINITIONS) == IPA_CATEGORIES


def test_variants_hand_computed(table: pd.DataFrame) -> None:
    pairs = reciprocity(table).set_index("trace_id")
    # t1 ask/give slots: suggestion both, opinion ask only, orientation none -> 1/2.
    assert pairs.loc["t1", "ask_give"] == 0.5 and pairs.loc["t1", "ask_give_union"] == 2
    # t1 pos/neg: agrees (3) and disagrees (10) both -> 1/1.
    assert pairs.loc["t1", "positive_negative"] == 1.0
    assert pairs.loc["t2", "ask_give"] == 0.0 and pairs.loc["t2", "positive_negative"] == 0.0
    assert pairs.loc["t3", "ask_give"] == 0.0 and pairs.loc["t3", "ask_give_union"] == 0  # empty -> zero
    weighted = reciprocity(table, variant="weighted_pairs").set_index("trace_id")
    # min(2,1) + min(3,0) + 0 over max(2,1) + max(3,0) + 0 = 1/5; agrees 4 vs disagrees 1 -> 1/4.
    assert weighted.loc["t1", "ask_give"] == pytest.approx(1 / 5)
    assert weighted.loc["t1", "positive_negative"] == pytest.approx(1 / 4)
    groups = reciprocity(table, variant="groups").set_index("trace_id")
    assert groups.loc["t1", "ask_give"] == 1.0 and groups.loc["t2", "ask_give"] == 0.0


def test_empty_policies_and_corpus_variant(table: pd.DataFrame) -> None:
    assert reciprocity(table, empty="one").set_index("trace_id").loc["t3", "ask_give"] == 1.0
    assert np.isnan(reciprocity(table, empty="nan").set_index("trace_id").loc["t3", "ask_give"])
    with pytest.raises(ValueError, match="undefined"):
        reciprocity(table, empty="error")
    # traces with ask and give: t1; with either: t1, t2 -> 1/2. Positive & negative: t1 of t1, t2 -> 1/2.
    assert corpus_reciprocity(table) == {"ask_give": 0.5, "positive_negative": 0.5}


def test_bad_counts(table: pd.DataFrame) -> None:
    bad = table.copy()
    bad.loc[1, "agrees"] = -1
    with pytest.raises(ValueError, match="'agrees' in row 1"):
        reciprocity(bad)
    bad.loc[1, "agrees"] = np.nan
    with pytest.raises(ValueError, match="non-negative"):
        reciprocity(bad)
    with pytest.raises(ValueError, match="lacks column"):
        reciprocity(table.drop(columns="agrees"))
    with pytest.raises(ValueError, match="variant"):
        reciprocity(table, variant="cosine")  # type: ignore[arg-type]


SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)


def test_icc_shrout_fleiss_worked_example() -> None:
    # Their Table 2 data; hand ANOVA: MS_R = 11.2417, MS_E = 1.0194 -> ICC(3,1) = 0.7148 (reported as .71).
    res = icc3_1(SHROUT_FLEISS)
    assert res.ms_rows == pytest.approx(11.241667, abs=1e-6)
    assert res.ms_error == pytest.approx(1.019444, abs=1e-6)
    assert res.icc == pytest.approx((11.241667 - 1.019444) / (11.241667 + 3 * 1.019444), abs=1e-6)
    assert round(res.icc, 2) == 0.71
    assert res.f == pytest.approx(11.027, abs=1e-3) and (res.df1, res.df2) == (5, 15)
    assert res.ci_low == pytest.approx(0.342, abs=1e-3) and res.ci_high == pytest.approx(0.946, abs=1e-3)


def test_icc_rater_offsets_do_not_matter_and_long_format() -> None:
    shifted = SHROUT_FLEISS + np.array([0, 10, -3, 100])  # consistency ICC ignores rater means
    assert icc3_1(shifted).icc == pytest.approx(icc3_1(SHROUT_FLEISS).icc)
    long = pd.DataFrame(
        [(t, r, SHROUT_FLEISS[t, r]) for t in range(6) for r in range(4)], columns=["trace", "judge", "score"]
    )
    assert icc3_1_long(long, "trace", "judge", "score").icc == pytest.approx(icc3_1(SHROUT_FLEISS).icc)
    assert icc3_1(np.array([[1, 3], [2, 4], [5, 7]])).icc == 1.0  # perfect consistency


def test_icc_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 targets and 2 raters"):
        icc3_1(np.ones((5, 1)))
    with pytest.raises(ValueError, match="target 1, rater 0"):
        icc3_1(np.array([[1, 2], [np.nan, 3], [2, 2]]))
    with pytest.raises(ValueError, match="no variance"):
        icc3_1(np.ones((3, 3)))
    long = pd.DataFrame({"t": [0, 0, 1], "r": ["a", "b", "a"], "s": [1, 2, 3]})
    with pytest.raises(ValueError, match="lack a rating"):
        icc3_1_long(long, "t", "r", "s")
    with pytest.raises(ValueError, match="duplicate"):
        icc3_1_long(pd.concat([long, long]), "t", "r", "s")
