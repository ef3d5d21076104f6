"""Per-problem steerability (anti-steerable fraction) against a hand-counted example (analysis.steerability)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from interp_sot.analysis.intervals import wilson_interval
from interp_sot.analysis.steerability import steerability_table
from interp_sot.errors import InterpSotError

# problem -> {strength: samples}. By hand (change x sign of the strength; slope of the per-strength means):
#   p1  -1: 0, 0: 1, +1: 2          +1 with,    -1 with (went down),  slope +1   with
#   p2  -1: 1, 0: 1, +1: 0          +1 against, -1 tie,               slope -0.5 against
#   p3  -1: 3, 0: 2, +1: 2          +1 tie,     -1 against (went up), slope -0.5 against
#   p4         0: 0, +1: {0.5, 1.5} +1 with (mean 1), no -1 sample,   slope +1   with
DATA = {"p1": {-1: [0.0], 0: [1.0], 1: [2.0]}, "p2": {-1: [1.0], 0: [1.0], 1: [0.0]},
        "p3": {-1: [3.0], 0: [2.0], 1: [2.0]}, "p4": {0: [0.0], 1: [0.5, 1.5]}}


def _frame() -> pd.DataFrame:
    rows = [{"problem_id": p, "strength": float(s), "rate": v, "correct": v >= 1.0}
            for p, by_s in DATA.items() for s, vs in by_s.items() for v in vs]
    rows.append({"problem_id": "p1", "strength": 1.0, "rate": math.nan, "correct": True})  # missing: left out
    return pd.DataFrame(rows)


def test_counts_and_fractions_match_the_hand_count():
    tab = steerability_table(_frame(), ["rate"]).set_index("contrast")
    plus, minus, slope = tab.loc["s=+1 vs s=+0"], tab.loc["s=-1 vs s=+0"], tab.loc["slope"]
    assert (plus.n_problems, plus.n_with, plus.n_against, plus.n_ties) == (4, 2, 1, 1)
    assert plus.anti_steerable == pytest.approx(1 / 3) and plus.share_against == pytest.approx(1 / 4)
    assert (plus.ci_low, plus.ci_high) == pytest.approx(wilson_interval(1, 3))
    assert (minus.n_problems, minus.n_with, minus.n_against, minus.n_ties, minus.direction) == (3, 1, 1, 1, -1.0)
    assert minus.anti_steerable == pytest.approx(0.5) and (minus.ci_low, minus.ci_high) == pytest.approx(
        wilson_interval(1, 2))
    assert (slope.n_problems, slope.n_with, slope.n_against, slope.n_ties) == (4, 2, 2, 0)
    assert math.isnan(slope.strength)


def test_accuracy_from_a_bool_column_and_all_ties_give_nan():
    # correct = rate >= 1: p1 0/1/1 (p1's NaN-rate row is still a correct sample), p2 1/1/0, p3 1/1/1, p4 -/0/{0,1}
    tab = steerability_table(_frame(), ["correct"]).set_index("contrast")
    plus = tab.loc["s=+1 vs s=+0"]
    # +1 vs 0: p1 1 vs 1 tie, p2 0 vs 1 against, p3 tie, p4 0.5 vs 0 with
    assert (plus.n_with, plus.n_against, plus.n_ties) == (1, 1, 2)
    flat = _frame().assign(rate=1.0)
    row = steerability_table(flat, ["rate"]).set_index("contrast").loc["s=+1 vs s=+0"]
    assert row.n_ties == row.n_problems == 4 and math.isnan(row.anti_steerable) and math.isnan(row.ci_low)


def test_an_outcome_missing_at_a_strength_counts_no_problem_there():
    frame = _frame()
    frame.loc[frame["strength"] == 1.0, "rate"] = math.nan  # e.g. no answer found at s = +1
    tab = steerability_table(frame, ["rate"]).set_index("contrast")
    assert tab.loc["s=+1 vs s=+0", "n_problems"] == 0 and math.isnan(tab.loc["s=+1 vs s=+0", "anti_steerable"])
    assert tab.loc["s=-1 vs s=+0", "n_problems"] == 3 and tab.loc["slope", "n_problems"] == 3
    empty = steerability_table(frame.assign(rate=math.nan), ["rate"])
    assert (empty["n_problems"] == 0).all()


def test_bad_input_names_the_value():
    with pytest.raises(InterpSotError, match=r"'markers\.we'"):
        steerability_table(_frame(), ["markers.we"])
    with pytest.raises(InterpSotError, match="baseline strength 5"):
        steerability_table(_frame(), ["rate"], baseline=5.0)
