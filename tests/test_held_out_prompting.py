"""Issue 20 in the stages: strengths tuned on held-out problems, the prompting arm as a condition, the prompting
contrast with corrected p-values, and a constant mediator reported as not fitted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from builders import _build, char_tokenizer
from features_helpers import make_sae

from interp_sot.experiments.dose import DoseConfig
from interp_sot.experiments.sweep import GenerationSettings, SweepConfig
from interp_sot.io import append_jsonl, read_jsonl
from interp_sot.stages.analyze import AnalyzeConfig, analyze_stage
from interp_sot.stages.dose import dose_stage, dose_strengths, read_dose
from interp_sot.stages.prompted import prompted_stage
from interp_sot.stages.rundir import finish_stage
from interp_sot.stages.strengths import run_prompts
from interp_sot.tasks.countdown.presets import get_preset, held_out_split

LAYER = 1
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    return _build("llama").eval()  # the shared tiny llama (1,024-token context: few-shot prompts fit)


def _sweep() -> Any:
    gen = GenerationSettings(max_new_tokens=6, do_sample=False)
    return SweepConfig.for_task("arith2", layer=LAYER, generation=gen, batch_size=8)


def test_dose_records_its_held_out_problems_and_refuses_evaluating_on_them(model, tmp_path) -> None:
    tok = char_tokenizer()
    held, evaluation = held_out_split(get_preset("arith2"), 2, 4, seed=0)
    prompts = run_prompts(held, _sweep().prompt_spec, tok, n=None)
    config = DoseConfig(layer=LAYER, ratios=(0.0, 0.5), max_new_tokens=4, do_sample=False, batch_size=8,
                        add_special_tokens=True)
    dose = dose_stage(model, tok, make_sae("standard", d_in=32, d_sae=48), 3, prompts, config, tmp_path / "dose",
                      progress=False, problems=held)
    assert [p["problem_id"] for p in dose.problems] == ["dose-0-0", "dose-0-1"]
    assert read_dose(tmp_path / "dose").problems == dose.problems
    traces = read_jsonl(tmp_path / "dose" / "dose_traces.jsonl")
    assert {t["problem_id"] for t in traces} == {"dose-0-0", "dose-0-1"} and len(traces) == 4
    assert dose_strengths(dose, 2, evaluation=evaluation)[0] == 0.0  # disjoint: accepted
    with pytest.raises(ValueError, match="'dose-0-1' is also one of the dose problems"):
        dose_strengths(dose, 2, evaluation=[*evaluation, held[1]])


def _run(tmp: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    run = tmp / name
    run.mkdir()
    append_jsonl(run / "sweep.jsonl", rows)
    finish_stage(run, "steer", ["sweep.jsonl"])
    return run


def _row(feature: Any, s: float, p: int, correct: bool, text: str, n: int) -> dict[str, Any]:
    return {"key": f"{feature}|{s!r}|p{p}", "feature": feature, "group": None, "strength": s, "problem_id": f"p{p}",
            "correct": correct, "completion": text, "n_new_tokens": n, "settings": {}, "prompt": "q",
            "answer": "1 + 2", "valid_expression": True, "abs_error": 0.0 if correct else 3.0}


def test_prompted_condition_and_contrast_reach_the_analysis(tmp_path) -> None:
    rng = np.random.default_rng(1)
    sweep, prompted = [], []
    for p in range(30):
        base_ok = bool(rng.random() < 0.4)
        for s in (0.0, 0.2):
            sweep.append(_row(7, s, p, base_ok, "we try. " * (1 + int(s > 0)), int(rng.integers(10, 40))))
        # prompting adds exactly 2 "wait" markers per 4 words relative to the baseline's wording
        prompted.append(_row("prompted", 0.0, p, not base_ok if p % 3 == 0 else base_ok, "wait, we try. wait",
                             int(rng.integers(10, 40))))
    run, arm = _run(tmp_path, "steer", sweep), _run(tmp_path, "prompted", prompted)
    config = AnalyzeConfig(mediators=(), plot=False, on_unfittable="skip", treated=0.2)
    result = analyze_stage(run, config, tmp_path / "a", prompted=arm)
    cond = pd.read_csv(tmp_path / "a" / "conditions.csv")
    row = cond[cond["condition"] == "prompted"].iloc[0]
    assert row["n"] == 30 and row["added_norm"] == 0.0
    assert row["accuracy"] == pytest.approx(np.mean([r["correct"] for r in prompted]))
    contrast = pd.read_csv(tmp_path / "a" / "prompting.csv")
    terms = contrast[contrast["term"] == "prompted"].set_index("outcome")
    # accuracy: the paired difference (prompted minus s = 0) with problem fixed effects is the mean difference
    base = {r["problem_id"]: r["correct"] for r in sweep if r["strength"] == 0.0}
    diff = np.mean([float(r["correct"]) - float(base[r["problem_id"]]) for r in prompted])
    assert terms.loc["correct", "coef"] == pytest.approx(diff, abs=0.02)  # (log-length control moves it a little)
    assert {"p_holm", "q_bh"} <= set(terms.columns)
    assert (terms["p_holm"] >= terms["p"] - 1e-12).all() and (terms["q_bh"] >= terms["p"] - 1e-12).all()
    assert "markers.wait" in terms.index and terms.loc["markers.wait", "coef"] > 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "prompting" in summary["significance"] and result.files["prompting"] == "prompting.csv"


def test_a_constant_mediator_is_reported_not_fitted(tmp_path) -> None:
    rng = np.random.default_rng(2)
    rows = [_row(7, s, p, bool(rng.random() < 0.5), "same words here", int(rng.integers(10, 40)))
            for p in range(20) for s in (0.0, 0.2)]
    run = _run(tmp_path, "steer", rows)
    config = AnalyzeConfig(mediators=("markers.wait",), plot=False, on_unfittable="skip", treated=0.2, bootstrap=0)
    result = analyze_stage(run, config, tmp_path / "a")
    assert result.mediation is None
    assert "markers.wait" in result.skipped["mediation"] and "constant" in result.skipped["mediation"]
    with pytest.raises(ValueError, match=r"mediator\(s\) \['markers.wait'\] constant"):
        analyze_stage(run, AnalyzeConfig(mediators=("markers.wait",), plot=False, treated=0.2, bootstrap=0),
                      tmp_path / "b")


def test_prompted_stage_asks_every_question_through_the_template(model, tmp_path) -> None:
    tok = char_tokenizer()
    _, evaluation = held_out_split(get_preset("arith2"), 0, 3, seed=0)
    template = "{problem}\nTalk it over."
    result = prompted_stage(model, tok, evaluation, _sweep(), template, tmp_path / "prompted", progress=False)
    assert [r.feature for r in result.records] == ["prompted"] * 3
    assert all(r.strength == 0.0 and r.prompt.endswith("\nTalk it over.\nThoughts:") for r in result.records)
    assert all(r.settings["question_template"] == template for r in result.records)
    stage = json.loads((tmp_path / "prompted" / "stage.json").read_text())
    assert stage["config"]["settings"]["question_template"] == template  # part of the run identity
    with pytest.raises(ValueError, match="placeholder"):
        prompted_stage(model, tok, evaluation, _sweep(), "no field", tmp_path / "other", progress=False)
