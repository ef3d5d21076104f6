"""A run's descriptive statistics (intervals, accuracy / behaviour-rate tables, control groups), computed by the
analyze stage, and the report rendered from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import cognitive_codings, control_records, sweep_records, write_run

from interp_sot.analysis.descriptive import accuracy_table, control_groups, rate_table
from interp_sot.analysis.intervals import cluster_bootstrap, wilson_interval
from interp_sot.analysis.traces import add_marker_rates, records_frame
from interp_sot.stages.analyze import AnalyzeConfig, analyze_stage
from interp_sot.stages.report import ReportConfig, report_stage


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


CONFIG = AnalyzeConfig(mediators=(), on_unfittable="skip", plot=False, bootstrap=200)


def test_accuracy_table_values() -> None:
    df = records_frame(sweep_records())
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
    # no bootstrap: the same estimates, no bootstrap intervals
    plain = accuracy_table(df, n_boot=0)
    assert plain["delta_vs_zero"].tolist() == pytest.approx(acc["delta_vs_zero"].tolist())
    assert plain[["boot_low", "boot_high", "delta_low", "delta_high"]].isna().all().all()


def test_rate_table_markers() -> None:
    df = add_marker_rates(records_frame(sweep_records(10)))
    beh = rate_table(df, ["markers.wait"], n_boot=200)
    assert set(beh["method"]) == {"heuristic"} and set(beh["unit"]) == {"per_1k_words"}
    rates = dict(zip(beh["strength"], beh["mean"], strict=True))
    # 1 "Wait" in 22 words at s=0; 4 in 22 words at s=10 (per 1,000 words)
    assert rates[0.0] == pytest.approx(1000 / 22) and rates[10.0] == pytest.approx(4000 / 22)


def test_control_groups_and_the_one_control_fit(tmp_path: Path) -> None:
    records = control_records()
    groups = control_groups(records_frame(records)).set_index("group")
    assert groups.loc["conversational", "n"] == 60 and groups.loc["conversational", "features"] == 1
    with pytest.raises(ValueError, match="no control groups"):
        control_groups(records_frame(sweep_records(3)))
    # a controls run alone: its groups and the control contrast, with the length control named as everywhere
    run = write_run(tmp_path / "ctrl", records, stage="controls")
    result = analyze_stage(None, AnalyzeConfig(length_control=False, plot=False, bootstrap=50), tmp_path / "a",
                           controls=run)
    df = records_frame(records)
    wide = df.pivot(index="problem_id", columns="group", values="correct").astype(float)
    expected = (wide["conversational"] - wide["non_conversational"]).mean()  # balanced pairs: the FE slope
    assert result.controls is not None and len(result.accuracy) == 0 and set(result.arms) == {"controls"}
    assert result.controls.set_index("term").loc["conversational", "coef"] == pytest.approx(expected)
    with_len = analyze_stage(None, AnalyzeConfig(plot=False, bootstrap=50), tmp_path / "b", controls=run).controls
    assert with_len is not None and set(with_len["term"]) == {"conversational", "log_trace_len"}
    corrected = with_len.set_index("term")  # one tested contrast: Holm and BH equal p; the control is not tested
    assert corrected.loc["conversational", "p_holm"] == corrected.loc["conversational", "q_bh"] == pytest.approx(
        corrected.loc["conversational", "p"])
    assert corrected.loc["conversational", "family_size"] == 1 and pd.isna(corrected.loc["log_trace_len", "p_holm"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b" / "controls_groups.csv").set_index("group"), groups)


def test_report_of_a_sweep_with_judge_codings(tmp_path: Path) -> None:
    records = sweep_records(12)
    run = write_run(tmp_path / "steer", records, codings=cognitive_codings(records, failed=[records[-1]["key"]]))
    analyze_stage(run, CONFIG, tmp_path / "a")
    files = report_stage(tmp_path / "a", ReportConfig(), tmp_path / "rep")
    text = files.summary.read_text()
    assert "HEURISTIC" in text and "| 30939 | 10 | 12 |" in text and "layer=15" in text
    assert "## Every outcome per strength (vs s=0)" in text and "| markers.wait | OLS | s=+10 |" in text
    assert "| correct | LPM | s=+10 |" in text and "not fitted: `judge.cognitive.verification` (constant" in text
    assert files.plot is not None and files.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    beh = pd.read_parquet(files.tables["behaviours.parquet"])
    verif = beh[(beh["behaviour"] == "judge.cognitive.verification")].set_index("strength")
    assert verif.loc[0.0, "n"] == 12 and verif.loc[10.0, "n"] == 11  # the failed coding is missing, not 0
    assert verif.loc[10.0, "mean"] == 2.0 and set(verif["method"]) == {"llm_judge"}
    traces = pd.read_csv(files.tables["traces.csv"])
    assert len(traces) == 24 and "markers.wait" in traces and "judge.cognitive.backtracking" in traces
    assert list(pd.read_csv(files.tables["accuracy.csv"])["n"]) == [12, 12]
    assert not (tmp_path / "rep" / "controls.csv").exists() and "## Controls" not in text


def test_report_of_a_controls_run(tmp_path: Path) -> None:
    run = write_run(tmp_path / "ctrl", control_records(10), stage="controls")
    analyze_stage(None, CONFIG, tmp_path / "a", controls=run)
    files = report_stage(tmp_path / "a", ReportConfig(), tmp_path / "rep")
    assert {"controls.csv", "controls_regression.csv", "accuracy.csv", "traces.csv"} <= set(files.tables)
    text = files.summary.read_text()
    assert "## Controls" in text and "| p (Holm) | q (BH) |" in text and "after Holm's correction" in text
    assert "of 1 contrasts are significant" in text and "| correct | LPM | conversational |" in text
    assert "log_tokens" not in text and "| correct | LPM | log_trace_len |" in text
    with pytest.raises(ValueError, match="holds no sweep run"):
        report_stage(tmp_path / "a", ReportConfig(), tmp_path / "rep2", arm="sweep")
    with pytest.raises(ValueError, match="no sweep records"):
        records_frame([])


def test_analysis_reads_only_finished_measures(tmp_path: Path) -> None:
    """The analysis joins coherence by record key and never reads a measure pass that started but did not finish;
    the report shows the analysis' coherence table."""
    from synthetic_runs import coherence_rows

    from interp_sot.io import append_jsonl
    from interp_sot.stages.measure import MEASURES_DIR
    from interp_sot.stages.rundir import RunDirError, begin_stage, finish_stage

    recs = sweep_records(4)
    run = write_run(tmp_path / "run", recs)
    begin_stage(run / MEASURES_DIR, "measure", {"layer": 15})
    rows = coherence_rows(recs)
    append_jsonl(run / "coherence.jsonl", rows[:3])  # a killed pass: 3 of 8 traces scored
    with pytest.raises(RunDirError, match="rerun `interp-sot measure`"):
        analyze_stage(run, CONFIG, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before the analysis claimed its folder
    append_jsonl(run / "coherence.jsonl", rows[3:])
    finish_stage(run / MEASURES_DIR, "measure", [])
    analyze_stage(run, CONFIG, tmp_path / "a")
    files = report_stage(tmp_path / "a", ReportConfig(plot=False), tmp_path / "rep")
    table = pd.read_csv(files.tables["coherence.csv"]).set_index("strength")
    assert table.loc[0.0, "mean_logprob"] == pytest.approx(-1.0)
    assert table.loc[10.0, "mean_logprob"] == pytest.approx(-2.0)
    assert table.loc[0.0, "n_degenerate"] + table.loc[10.0, "n_degenerate"] == 1
    assert "Coherence per strength" in files.summary.read_text()
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["arms"]["sweep"]["tables"]["coherence"] == "coherence_by_strength"
