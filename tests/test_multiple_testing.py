"""Holm and Benjamini–Hochberg corrections against hand-computed values (analysis.multiple_testing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from interp_sot.analysis.multiple_testing import add_corrections, adjust_pvalues, significance_summary
from interp_sot.errors import InterpSotError

# Family of four finite p-values (+ one NaN). By hand, sorted 0.005 < 0.01 < 0.03 < 0.04, m = 4:
# Holm: 4*.005=.02, 3*.01=.03, 2*.03=.06, 1*.04=.04 -> running max .02, .03, .06, .06
# BH:   4/1*.005=.02, 4/2*.01=.02, 4/3*.03=.04, 4/4*.04=.04 -> running min from the top .02, .02, .04, .04
P = [0.01, 0.04, 0.03, 0.005, math.nan]
HOLM = [0.03, 0.06, 0.06, 0.02, math.nan]
BH = [0.02, 0.04, 0.04, 0.02, math.nan]


def test_adjusted_values_match_the_hand_computation_and_nan_stays_out_of_the_family():
    np.testing.assert_allclose(adjust_pvalues(P, "holm"), HOLM, equal_nan=True)
    np.testing.assert_allclose(adjust_pvalues(P, "bh"), BH, equal_nan=True)


def test_bh_agrees_with_scipy_and_holm_caps_at_one():
    p = np.random.default_rng(0).uniform(0, 0.3, size=17)
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"))
    assert adjust_pvalues([0.6, 0.7], "holm").tolist() == [1.0, 1.0]


def test_add_corrections_one_family_per_group_and_only_tested_rows():
    frame = pd.DataFrame({
        "scale": ["raw"] * 5 + ["std"] * 2,
        "term": ["s=+1", "s=+2", "s=+3", "s=+4", "log_trace_len", "s=+1", "s=+2"],
        "p": [*P[:4], 1e-9, 0.02, 0.5],
    })
    out = add_corrections(frame, family="scale", rows=frame["term"].str.startswith("s="))
    np.testing.assert_allclose(out["p_holm"].iloc[:4], HOLM[:4])
    np.testing.assert_allclose(out["q_bh"].iloc[:4], BH[:4])
    assert math.isnan(out["p_holm"].iloc[4]) and math.isnan(out["q_bh"].iloc[4])  # the control term is not tested
    # the second family, m = 2: Holm .04, .5; BH .04, .5
    np.testing.assert_allclose(out["p_holm"].iloc[5:], [0.04, 0.5])
    np.testing.assert_allclose(out["q_bh"].iloc[5:], [0.04, 0.5])
    assert out["family_size"].tolist()[:4] == [4, 4, 4, 4] and out["family_size"].tolist()[5:] == [2, 2]
    assert list(frame.columns) == ["scale", "term", "p"]  # the input is not modified


def test_nan_p_is_kept_and_not_counted():
    out = add_corrections(pd.DataFrame({"p": P}))
    np.testing.assert_allclose(out["p_holm"], HOLM, equal_nan=True)
    assert out["family_size"].iloc[0] == 4 and math.isnan(out["family_size"].iloc[4])


def test_significance_summary_counts_before_and_after_correction():
    count = significance_summary(add_corrections(pd.DataFrame({"p": P})), alpha=0.05)
    assert (count.n_tests, count.raw, count.holm, count.bh) == (4, 4, 2, 4)
    assert count.expected_by_chance == pytest.approx(0.2)
    assert "4 of 4 contrasts" in count.sentence() and "2 after Holm" in count.sentence()


def test_empty_table_gains_the_columns():
    out = add_corrections(pd.DataFrame({"p": pd.Series([], dtype=float)}))
    assert {"p_holm", "q_bh", "family_size"} <= set(out.columns) and len(out) == 0
    assert significance_summary(out).n_tests == 0


def test_bad_input_names_the_value():
    with pytest.raises(InterpSotError, match=r"1\.5"):
        adjust_pvalues([0.1, 1.5], "holm")
    with pytest.raises(InterpSotError, match="'pval'"):
        add_corrections(pd.DataFrame({"p": [0.1]}), p_col="pval")
    with pytest.raises(InterpSotError, match="scale"):
        add_corrections(pd.DataFrame({"p": [0.1]}), family="scale")
    with pytest.raises(InterpSotError, match="add_corrections"):
        significance_summary(pd.DataFrame({"p": [0.1]}))
    with pytest.raises(InterpSotError, match="'bonferroni'"):
        adjust_pvalues([0.1], "bonferroni")


def test_demo_significance_lists_and_counts_after_correction():
    from types import SimpleNamespace

    from interp_sot.demo.findings import outcome_rows, significance

    reg = pd.DataFrame({"outcome": ["correct", "correct", "markers.we", "markers.we"],
                        "term": ["s=-1", "s=+1", "s=-1", "s=+1"], "coef": [0.1, 0.2, 1.0, 2.0],
                        "ci_low": 0.0, "ci_high": 3.0, "p": P[:4], "mde": 0.5})
    rows = outcome_rows(SimpleNamespace(regression=reg, controls=None), [-1.0, 0.0, 1.0], None)
    np.testing.assert_allclose(rows["p_holm"], HOLM[:4])
    text = significance(rows, {})
    assert text.startswith("4 of 4 contrasts are significant") and "2 after Holm's correction" in text
    assert text.count("significant after Holm's correction** at") == 2  # p .01 and .005
    assert text.count("significant at BH q < 0.05** (not after Holm)") == 2  # p .04 and .03
