"""Sweep reports: intervals, accuracy/behaviour tables, control comparison and written files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.intervals import cluster_bootstrap, wilson_interval
from interp_sot.analysis.traces import (
    accuracy_table,
    add_marker_rates,
    behaviour_table,
    control_comparison,
    records_frame,
)
from interp_sot.behaviours.judge_coding import BehaviourCoding
from interp_sot.stages.report import write_report


def test_wilson_by_hand() -> None:
    # z = 1.959964; k=5, n=10: centre 0.5, half = z*sqrt(0.025 + z^2/400)/(1 + z^2/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(5, 10) == pytest.approx((0.5 - half, 0.5 + half))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(z * z / 10 / (1 + z * z / 10))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="k <= n"):
        wilson_interval(3, 2)


def test_cluster_bootstrap_properties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    problems = [f"p{i}" for i in range(400)]
    b = cluster_bootstrap(y, problems, ["a"] * 400, n_boot=4000, seed=1)
    assert b.estimate[0] == pytest.approx(y.mean())
    p = y.mean()
    assert np.std(b.draws[:, 0]) == pytest.approx(math.sqrt(p * (1 - p) / 400), rel=0.08)
    # duplicating every row inside its problem changes nothing: the problem is the unit
    b2 = cluster_bootstrap(np.repeat(y, 2), np.repeat(problems, 2).tolist(), ["a"] * 800, n_boot=4000, seed=1)
    np.testing.assert_allclose(b2.draws, b.draws)
    # paired: a condition identical to another on every problem has a zero-width difference
    both = cluster_bootstrap(np.concatenate([y, y]), problems * 2, ["a"] * 400 + ["b"] * 400, n_boot=500, seed=2)
    assert both.difference(1, 0) == (0.0, 0.0, 0.0)
    # missing values (failed codings) are left out, not zeros
    with_nan = cluster_bootstrap([1.0, np.nan, 0.0], ["p", "q", "r"], ["a", "a", "a"], n_boot=10)
    assert with_nan.estimate[0] == 0.5


def _records(n_problems: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """Synthetic sweep: accuracy 0.3 at s=0 and 0.6 at s=10; traces with more 'wait' under steering."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_problems):
        for s, p, waits in ((0.0, 0.3, 1), (10.0, 0.6, 4)):
            out.append(
                {
                    "key": f"30939|{s!r}|p{i}",
                    "feature": 30939,
                    "group": None,
                    "strength": s,
                    "problem_id": f"p{i}",
                    "correct": bool(rng.random() < p),
                    "answer": "1 + 2",
                    "completion": ("Wait, " * waits) + "we try " + "x " * (20 - waits),
                    "n_new_tokens": 50 + int(s),
                    "settings": {"layer": 15, "generation": {"temperature": 0.6}},
                }
            )
    return out


def test_accuracy_table_values() -> None:
    df = records_frame(_records())
    acc = accuracy_table(df, n_boot=500)
    assert list(acc["strength"]) == [0.0, 10.0]
    for row in acc.itertuples():
        part = df[df["strength"] == row.strength]
        assert row.n == 40 and row.n_correct == part["correct"].sum()
        assert (row.wilson_low, row.wilson_high) == wilson_interval(row.n_correct, 40)
        assert row.boot_low <= row.accuracy <= row.boot_high
    assert math.isclose(acc["delta_vs_zero"].iloc[0], 0.0, abs_tol=1e-12)
    d = acc.iloc[1]
    assert d.delta_vs_zero == pytest.approx(d.accuracy - acc.iloc[0].accuracy)
    assert d.delta_low < d.delta_vs_zero < d.delta_high


def test_behaviour_table_markers() -> None:
    df = add_marker_rates(records_frame(_records(10)))
    beh = behaviour_table(df, ["markers.wait"], n_boot=200)
    assert set(beh["method"]) == {"heuristic"}
    rates = dict(zip(beh["strength"], beh["mean"], strict=True))
    # 1 "Wait" in 22 words at s=0; 4 in 22 words at s=10 (per 1,000 words)
    assert rates[0.0] == pytest.approx(1000 / 22) and rates[10.0] == pytest.approx(4000 / 22)


def _control_records(n_problems: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_problems):
        base = rng.random() * 0.6
        for f, group, bump in ((1, "conversational", 0.3), (2, "non_conversational", 0.0)):
            out.append(
                {
                    "key": f"{f}|5.0|p{i}",
                    "feature": f,
                    "group": group,
                    "strength": 5.0,
                    "problem_id": f"p{i}",
                    "correct": bool(rng.random() < base + bump),
                    "answer": None,
                    "completion": "text",
                    "n_new_tokens": int(rng.integers(20, 200)),
                }
            )
    return out


def test_control_comparison_matches_within_estimator() -> None:
    df = records_frame(_control_records())
    ctrl = control_comparison(df, length_control=False)
    groups = ctrl.groups.set_index("group")
    assert groups.loc["conversational", "n"] == 60 and groups.loc["conversational", "features"] == 1
    # balanced pairs within each problem: the FE slope is the mean within-problem difference
    wide = df.pivot(index="problem_id", columns="group", values="correct").astype(float)
    expected = (wide["conversational"] - wide["non_conversational"]).mean()
    assert ctrl.regression is not None
    row = ctrl.regression.set_index("term").loc["conversational"]
    assert row["coef"] == pytest.approx(expected)
    with_len = control_comparison(df)
    assert with_len.regression is not None and set(with_len.regression["term"]) == {"conversational", "log_tokens"}
    # one tested contrast: Holm and BH equal p on it; the length control is not tested
    corrected = with_len.regression.set_index("term")
    assert corrected.loc["conversational", "p_holm"] == corrected.loc["conversational", "q_bh"] == pytest.approx(
        corrected.loc["conversational", "p"])
    assert corrected.loc["conversational", "family_size"] == 1 and pd.isna(corrected.loc["log_tokens", "p_holm"])
    with pytest.raises(ValueError, match="no control groups"):
        control_comparison(records_frame(_records(3)))


def test_write_report_files(tmp_path: Path) -> None:
    recs = _records(12)
    codings = [
        BehaviourCoding(
            r["key"],
            "cognitive",
            "behaviours_cognitive@1",
            "fake",
            {"verification": 2, "backtracking": 1, "subgoal_setting": 0, "backward_chaining": 0},
        )
        for r in recs[:-1]
    ]
    codings.append(BehaviourCoding(recs[-1]["key"], "cognitive", "behaviours_cognitive@1", "fake", None, "bad"))
    files = write_report(recs, tmp_path / "rep", codings=codings, n_boot=200)
    text = files.summary.read_text()
    assert "HEURISTIC" in text and "| 30939 | 10 | 12 |" in text and "layer=15" in text
    assert files.plot is not None and files.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    beh = pd.read_parquet(files.tables["behaviours.parquet"])
    verif = beh[(beh["behaviour"] == "judge.cognitive.verification")].set_index("strength")
    assert verif.loc[0.0, "n"] == 12 and verif.loc[10.0, "n"] == 11  # the failed coding is missing, not 0
    assert verif.loc[10.0, "mean"] == 2.0 and set(verif["method"]) == {"llm_judge"}
    traces = pd.read_csv(files.tables["traces.csv"])
    assert len(traces) == 24 and "markers.wait" in traces and "judge.cognitive.backtracking" in traces
    acc = pd.read_csv(files.tables["accuracy.csv"])
    assert list(acc["n"]) == [12, 12]
    ctrl_files = write_report(_control_records(10), tmp_path / "ctrl", n_boot=50)
    assert "controls.csv" in ctrl_files.tables and "## Controls" in ctrl_files.summary.read_text()
    ctrl_text = ctrl_files.summary.read_text()
    assert "| p (Holm) | q (BH) |" in ctrl_text and "after Holm's correction" in ctrl_text
    assert "of 1 contrasts are significant" in ctrl_text
    with pytest.raises(ValueError, match="no sweep records"):
        write_report([], tmp_path / "x")


def test_report_reads_only_finished_measures(tmp_path: Path) -> None:
    """The report joins coherence by record key and never reads a measure pass that started but did not finish."""
    from interp_sot.io import append_jsonl
    from interp_sot.stages.measure import MEASURES_DIR
    from interp_sot.stages.rundir import RunDirError, begin_stage, finish_stage

    recs = _records(4)
    run = tmp_path / "run"
    begin_stage(run / MEASURES_DIR, "measure", {"layer": 15})
    append_jsonl(run / "coherence.jsonl", [{"key": r["key"], "mean_logprob": -1.0 - r["strength"] / 10, "n_tokens": 5,
                                           "repeat_share": 0.0, "symbol_share": 0.0, "degenerate": False}
                                          for r in recs[:3]])  # a killed pass: 3 of 8 traces scored
    with pytest.raises(RunDirError, match="rerun `interp-sot measure`"):
        write_report(recs, tmp_path / "rep", n_boot=50, plot=False, run_dir=run)
    append_jsonl(run / "coherence.jsonl", [{"key": r["key"], "mean_logprob": -1.0 - r["strength"] / 10, "n_tokens": 5,
                                           "repeat_share": 0.0, "symbol_share": 0.0, "degenerate": r is recs[3]}
                                          for r in recs[3:]])
    finish_stage(run / MEASURES_DIR, "measure", [])
    files = write_report(recs, tmp_path / "rep", n_boot=50, plot=False, run_dir=run)
    table = pd.read_csv(files.tables["coherence.csv"]).set_index("strength")
    assert table.loc[0.0, "mean_logprob"] == pytest.approx(-1.0) and table.loc[10.0, "mean_logprob"] == pytest.approx(-2.0)
    assert table.loc[0.0, "n_degenerate"] + table.loc[10.0, "n_degenerate"] == 1
    assert "Coherence per strength" in files.summary.read_text()
