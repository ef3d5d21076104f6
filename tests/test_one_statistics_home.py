"""One statistics home: the analyze stage computes every table, the report stage renders them and computes nothing,
and every caller concludes a run the same way (measure, then analyze, then report)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from synthetic_runs import cognitive_codings, control_records, sweep_records, write_run

import interp_sot.stages.conclude as conclude
from interp_sot.io import write_frame
from interp_sot.stages.analyze import AnalyzeConfig
from interp_sot.stages.measure import MeasureConfig, MeasureResult
from interp_sot.stages.report import COPIED, ReportConfig, report_stage
from interp_sot.stages.rundir import RunDirError, begin_stage, finish_stage

REPORT = Path(conclude.__file__).with_name("report.py")
CONFIG = AnalyzeConfig(mediators=(), on_unfittable="skip", plot=False, control_outcomes=None, bootstrap=100)


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    records = sweep_records(20)
    steer = write_run(tmp_path / "steer", records, codings=cognitive_codings(records[::3]), measured=True)
    return steer, write_run(tmp_path / "controls", control_records(20), stage="controls", measured=True)


def test_the_reports_tables_are_the_analysis_tables_byte_for_byte(tmp_path) -> None:
    steer, controls = _runs(tmp_path)
    done = conclude.conclude_analysis(steer, analyze=CONFIG, report=ReportConfig(plot=False), controls=controls)
    assert done.analysis_dir == steer / "analysis" and set(done.reports) == {"sweep", "controls"}
    arms = json.loads((steer / "analysis" / "summary.json").read_text())["arms"]
    for arm, run in (("sweep", steer), ("controls", controls)):
        files = done.reports[arm]
        assert files.summary == run / "report" / "summary.md"
        shown = {n for n in COPIED if n in arms[arm]["tables"]}
        assert shown == {n.rsplit(".", 1)[0] for n in files.tables}
        for name in files.tables:
            stem, suffix = name.rsplit(".", 1)
            source = steer / "analysis" / f"{arms[arm]['tables'][stem]}.{suffix}"
            assert files.tables[name].read_bytes() == source.read_bytes(), name
    assert {"accuracy", "behaviours", "coherence", "traces"} <= {n for n in arms["sweep"]["tables"]}
    assert {"controls", "controls_regression", "coherence"} <= {n for n in arms["controls"]["tables"]}


def _hand_written_analysis(folder: Path) -> Path:
    """An analysis folder written by hand, with numbers no statistic of these rows would give."""
    begin_stage(folder, "analyze", {"by": "hand"})
    acc = pd.DataFrame({"feature": ["7"], "strength": [10.0], "n": [3], "n_correct": [1], "accuracy": [0.4321],
                        "wilson_low": [0.0123], "wilson_high": [0.9876], "boot_low": [0.2468], "boot_high": [0.1357],
                        "delta_vs_zero": [0.0777], "delta_low": [-0.5], "delta_high": [0.625], "answered": [0.999],
                        "mean_new_tokens": [12.0]})
    rates = pd.DataFrame({"feature": ["7"], "strength": [10.0], "behaviour": ["markers.wait"], "method": ["heuristic"],
                          "unit": ["per_1k_words"], "mean": [123.4], "low": [5.55], "high": [987.0], "n": [3]})
    reg = pd.DataFrame({"outcome": ["correct", "correct"], "term": ["s=+10", "log_trace_len"], "coef": [0.31415, 9.0],
                        "se": [0.1, 0.1], "t": [3.0, 90.0], "p": [0.0271828, 0.0], "ci_low": [-0.125, 0.0],
                        "ci_high": [0.875, 0.0], "mde": [0.4242, 0.0], "p_holm": [0.0333, float("nan")],
                        "q_bh": [0.0444, float("nan")], "family_size": [1.0, float("nan")]})
    coh = pd.DataFrame({"strength": [10.0], "n": [3], "mean_logprob": [-1.2345], "ci_low": [-9.0], "ci_high": [1.0],
                        "degenerate_share": [0.5], "n_degenerate": [7], "drop_vs_0": [0.111]})
    for frame, stem in ((acc, "acc"), (rates, "rates"), (coh, "coh")):
        write_frame(frame, folder / f"{stem}.csv")
        write_frame(frame, folder / f"{stem}.parquet")
    write_frame(reg, folder / "reg.csv")
    summary = {"baseline": 0.0, "skipped": {"markers.oh": "constant (or missing) over the sweep"},
               "significance": {"regression": {"n_tests": 1, "raw": 1, "holm": 1, "bh": 1, "alpha": 0.05}},
               "arms": {"sweep": {"settings": {"layer": 3, "generation": {"top_p": 0.5}},
                                  "tables": {"accuracy": "acc", "behaviours": "rates", "coherence": "coh",
                                             "regression": "reg"}}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    finish_stage(folder, "analyze", ["summary.json", "acc.csv", "rates.csv", "coh.csv", "reg.csv"])
    return folder


def test_the_report_renders_a_hand_written_analysis_exactly(tmp_path) -> None:
    files = report_stage(_hand_written_analysis(tmp_path / "a"), ReportConfig(plot=False), tmp_path / "r")
    text = files.summary.read_text()
    assert "Settings: `layer=3, top_p=0.5`" in text
    assert "| 7 | 10 | 3 | 43.2 | [1.2, 98.8] | [24.7, 13.6] | 7.8 [-50.0, 62.5] | 99.9 |" in text
    assert "| markers.wait | heuristic | 7 | 123 [5.55, 987] |" in text
    assert "| 10 | 3 | -1.234 | [-9.000, 1.000] | 0.111 | 50.0 |" in text
    assert "| correct | LPM | s=+10 | 0.3141 | [-0.125, 0.875] | 0.0272 | 0.0333 | 0.0444 | 0.424 |" in text
    assert "1 of 1 contrasts are significant" in text and "not fitted: `markers.oh` (constant" in text
    assert "log_trace_len" not in text  # the length control is not an effect of strength
    assert sorted(files.tables) == ["accuracy.csv", "accuracy.parquet", "behaviours.csv", "behaviours.parquet",
                                    "coherence.csv", "coherence.parquet"]
    with pytest.raises(RunDirError, match="unfinished analyze run"):
        begin_stage(tmp_path / "b", "analyze", {})
        report_stage(tmp_path / "b", ReportConfig(), tmp_path / "r2")


def test_the_report_module_computes_nothing() -> None:
    """It imports no statistic and calls none: it reads, selects, words and formats."""
    tree = ast.parse(REPORT.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("interp_sot.analysis") for alias in node.names}
    assert imported <= {"SignificanceCount", "outcome_of", "is_strength_term", "plot_report"}, imported
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
              for node in ast.walk(tree) if isinstance(node, ast.Call)}
    statistics = {"mean", "std", "sum", "median", "quantile", "agg", "apply", "value_counts", "cluster_bootstrap",
                  "wilson_interval", "fe_ols", "add_corrections", "significance_summary", "pivot_table"}
    assert not called & statistics, called & statistics


def test_conclude_measures_then_analyzes_then_reports(tmp_path, monkeypatch) -> None:
    steer, controls = _runs(tmp_path)
    order: list[str] = []

    def measure(model: Any, tok: Any, sae: Any, run: Path, config: MeasureConfig, **kw: Any) -> MeasureResult:
        order.append(f"measure {run.name} diversity={config.diversity} sae={sae is not None}")
        return MeasureResult(run, 0, [])

    for name in ("analyze_stage", "report_stage"):
        real = getattr(conclude, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            order.append(_name + (f" {kw['arm']}" if "arm" in kw else ""))
            return _real(*args, **kw)

        monkeypatch.setattr(conclude, name, spy)
    monkeypatch.setattr(conclude, "measure_stage", measure)

    class SAE:
        def encode(self, x: Any) -> Any:
            return x

    done = conclude.conclude_run(None, None, SAE(), steer, measure=MeasureConfig(layer=1), analyze=CONFIG,
                                 report=ReportConfig(plot=False), controls=controls)
    assert order == ["measure steer diversity=True sae=True", "measure controls diversity=False sae=False",
                     "analyze_stage", "report_stage sweep", "report_stage controls"]
    assert (steer / "analysis" / "manifest.json").is_file() and set(done.reports) == {"sweep", "controls"}
    order.clear()  # a bare decoder matrix has no encode: coherence only; a controls run concludes alone
    conclude.conclude_run(None, None, object(), controls, measure=MeasureConfig(layer=1), analyze=CONFIG,
                          report=ReportConfig(plot=False))
    assert order == ["measure controls diversity=False sae=False", "analyze_stage", "report_stage controls"]
    assert (controls / "analysis" / "controls_groups.csv").is_file()

    def fail(*args: Any, **kw: Any) -> Any:
        raise RunDirError("busy")

    monkeypatch.setattr(conclude, "measure_stage", fail)
    order.clear()
    with pytest.raises(conclude.MeasureError, match="measuring its traces failed: busy"):
        conclude.conclude_run(None, None, None, steer, measure=MeasureConfig(layer=1), analyze=CONFIG,
                              report=ReportConfig(plot=False))
    assert order == []  # nothing analysed after a failed measure
