"""steer -> analyze: a steering run directory, or the per-trace table an analysis wrote, is read by
`interp-sot analyze` as it is."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import write_run

from interp_sot.analysis.sweep_table import COGNITIVE_BEHAVIOURS, resolve_run_path, to_analysis_schema
from interp_sot.behaviours.judge_coding import BehaviourCoding
from interp_sot.stages.analyze import AnalyzeConfig, analyze_stage


def _records(n_problems: int = 40, seed: int = 0, group: str | None = None) -> tuple[list[dict], list[BehaviourCoding]]:
    rng = np.random.default_rng(seed)
    records, codings = [], []
    for p in range(n_problems):
        for s in (0.0, 10.0):
            verif = int(rng.poisson(1 + 2 * (s > 0)))
            correct = bool(rng.random() < 0.2 + 0.1 * verif)
            n_new = int(rng.integers(50, 400))
            key = f"p{p}-s{s}-{group}"
            records.append({
                "key": key, "feature": "7", "group": group, "strength": s, "problem_id": f"p{p}",
                "correct": correct, "completion": "wait, let me check. " * (1 + verif) + "oh we but hmm",
                "n_new_tokens": n_new, "n_prompt_tokens": 30, "target": 24, "batch_seed": 5, "settings": {},
            })
            counts = {"verification": verif, "backtracking": int(rng.poisson(1)),
                      "subgoal_setting": int(rng.poisson(1)), "backward_chaining": int(rng.poisson(0.5))}
            codings.append(BehaviourCoding(key, "cognitive", "behaviours_cognitive@1", "fake", counts))
    return records, codings


def test_traces_table_maps_onto_analysis_schema(tmp_path):
    records, codings = _records()
    run = write_run(tmp_path / "steer", records, codings=codings)
    analyze_stage(run, AnalyzeConfig(mediators=(), plot=False, bootstrap=50), tmp_path / "a")
    table = to_analysis_schema(pd.read_parquet(resolve_run_path(tmp_path / "a")))
    df = table.frame
    assert (df["trace_len"] == df["n_new_tokens"]).all()
    for name in COGNITIVE_BEHAVIOURS:
        assert (df[name] == df[f"judge.cognitive.{name}"]).all()
    assert set(table.outcomes) >= {f"judge.cognitive.{n}" for n in COGNITIVE_BEHAVIOURS}
    assert any(c.startswith("markers.") for c in table.outcomes)
    assert not {"n_prompt_tokens", "target", "batch_seed", "trace_len", "strength"} & set(table.outcomes)


def test_analyze_cli_reads_a_steer_run_directory(tmp_path):
    from interp_sot.cli import analyze

    records, codings = _records()
    out = tmp_path / "analysis"
    run_dir = write_run(tmp_path / "steer", records, codings=codings)
    ctrl = _records(seed=1, group="conversational")[0] + _records(seed=2, group="non_conversational")[0]
    ctrl_dir = write_run(tmp_path / "controls", ctrl, stage="controls")

    parser = argparse.ArgumentParser()
    analyze.add_parser(parser.add_subparsers())
    args = parser.parse_args(["analyze", "--sweep", str(run_dir), "--controls", str(ctrl_dir), "--out", str(out),
                              "--bootstrap", "50", "--no-plot"])
    assert args.run(args) == 0

    acc = pd.read_csv(out / "accuracy_by_strength.csv")
    df = pd.DataFrame(records)
    expected = df.groupby("strength")["correct"].mean()
    assert np.allclose(acc.set_index("strength")["accuracy"].loc[expected.index], expected.values)
    reg = pd.read_csv(out / "regression.csv")
    outcomes = set(reg["outcome"]) if "outcome" in reg else set(reg.iloc[:, 0])
    assert "correct" in outcomes and "judge.cognitive.verification" in outcomes
    assert not {"n_prompt_tokens", "target", "batch_seed"} & outcomes
    med = pd.read_csv(out / "mediation.csv")
    assert set(COGNITIVE_BEHAVIOURS) <= set(med.astype(str).stack())  # the four cognitive mediators are used by default
    assert (out / "controls_regression.csv").is_file()
    # the analysis, then each run's report rendered from it, inside --out
    assert "## Every outcome per strength" in (out / "report" / "summary.md").read_text()
    assert "## Controls" in (out / "controls_report" / "summary.md").read_text()


def test_unknown_control_group_is_an_error():
    records, _ = _records(n_problems=2, group="weird")
    df = pd.DataFrame(records)
    with pytest.raises(ValueError, match="control groups"):
        to_analysis_schema(df)


def test_missing_run_directory_table_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"traces\.parquet"):
        resolve_run_path(tmp_path)
