"""Issue 12 wired into the stages and CLI: dose stage + ``interp-sot dose``, strength units on steer/controls,
``--strengths auto:N``, the measure stage's sidecars, matched-norm controls and the analyze tables built on them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from builders import _common, char_tokenizer
from features_helpers import make_sae

from interp_sot.cli import main
from interp_sot.experiments.coherence import score_texts
from interp_sot.experiments.controls import ControlFeature
from interp_sot.experiments.dose import DoseConfig
from interp_sot.experiments.sweep import GenerationSettings, SweepConfig
from interp_sot.io import read_jsonl
from interp_sot.stages.controls import ControlsConfig, controls_stage, sample_control_features
from interp_sot.stages.dose import dose_stage, read_dose
from interp_sot.stages.measure import MeasureConfig, measure_stage
from interp_sot.stages.rundir import RunDirError
from interp_sot.stages.steer import steer_stage
from interp_sot.stages.strengths import feature_scales, run_prompts, units_record
from interp_sot.tasks.countdown import generate_problems

LAYER = 1


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Any:
    """A tiny llama with room for TinyZero prompts (~570 characters = tokens with the character tokenizer)."""
    import transformers as tf

    torch.manual_seed(0)
    m = tf.LlamaForCausalLM(tf.LlamaConfig(**_common(max_position_embeddings=1024)))
    return m.eval()


@pytest.fixture(scope="module")
def sae() -> Any:
    return make_sae("standard", d_in=32, d_sae=48)


@pytest.fixture(scope="module")
def model_dir(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


def _sweep(n_tokens: int = 6) -> SweepConfig:
    gen = GenerationSettings(max_new_tokens=n_tokens, do_sample=False, stop_strings=())
    return SweepConfig(layer=LAYER, generation=gen, batch_size=8)


def _dose_config(**kw: Any) -> DoseConfig:
    base: dict[str, Any] = dict(layer=LAYER, ratios=(-0.5, 0.0, 0.5, 4.0), max_new_tokens=5, do_sample=False,
                                batch_size=8, add_special_tokens=True)
    return DoseConfig(**{**base, **kw})


def test_dose_stage_records_units_and_reads_back_instead_of_rerunning(model, sae, tmp_path, monkeypatch) -> None:
    tok = char_tokenizer()
    prompts = run_prompts(generate_problems(2, seed=0), "tinyzero", tok)
    res = dose_stage(model, tok, sae, 3, prompts, _dose_config(), tmp_path / "dose", progress=False)
    assert [r["strength"] for r in res.table] == [-0.5, 0.0, 0.5, 4.0] and res.units == "resid"
    units = json.loads((tmp_path / "dose" / "strength_units.json").read_text())
    assert units["units"] == "resid" and units["residual_norm"] == pytest.approx(res.residual_norm)
    # resid units: one unit of s adds the residual norm, so the ratio of s is s itself
    assert all(r["ratio_to_residual"] == pytest.approx(abs(r["strength"])) for r in units["rows"])
    import interp_sot.stages.dose as stage

    monkeypatch.setattr(stage, "find_dose", lambda *a, **k: pytest.fail("a finished dose run was recomputed"))
    again = dose_stage(model, tok, sae, 3, prompts, _dose_config(), tmp_path / "dose", progress=False)
    assert again == read_dose(tmp_path / "dose") and again.table == res.table
    with pytest.raises(RunDirError, match="tolerance"):
        dose_stage(model, tok, sae, 3, prompts, _dose_config(tolerance=0.5), tmp_path / "dose", progress=False)


def test_feature_scales_refuse_zero_rows_and_never_fired_features(sae) -> None:
    w = torch.randn(4, 32)
    w[2] = 0
    with pytest.raises(ValueError, match="all-zero decoder row"):
        feature_scales(w, [2], "unit", residual=5.0)

    class Stats:
        max_act = torch.tensor([1.0, 0.0, 2.0, 3.0])

    with pytest.raises(ValueError, match="never fired"):
        feature_scales(w, [1], "max_act", residual=5.0, stats=Stats())
    with pytest.raises(ValueError, match=r"max_act.*statistics"):
        feature_scales(w, [1], "max_act", residual=5.0)
    scale = feature_scales(w, [3], "max_act", residual=5.0, stats=Stats())[3]
    assert float(scale.direction.norm()) == pytest.approx(3.0)  # s = 1 adds a vector as long as the max firing


def _decoder(tmp_path: Path, sae: Any, zero: int | None = None) -> Path:
    from interp_sot.steering import save_direction

    w = sae.W_dec.detach().clone()
    if zero is not None:
        w[zero] = 0
    path = tmp_path / "w_dec.safetensors"
    save_direction(path, w)
    return path


def _dose_argv(model_dir: Path, decoder: Path, out: Path, *extra: str) -> list[str]:
    return ["dose", "--model", str(model_dir), "--decoder", str(decoder), "--layer", str(LAYER), "--feature", "5",
            "--n-problems", "2", "--prompt-style", "tinyzero", "--max-new-tokens", "4", "--greedy",
            "--ratios=-0.5,0,0.5", "--out", str(out), *extra]


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error of a refused command (flag errors leave as SystemExit, bad input as exit code 2)."""
    try:
        code = main(argv)
    except SystemExit as err:
        return str(err.code)
    assert code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("extra", "zero", "message"), [
    (["--tolerance", "0"], None, "tolerance must be a finite number > 0"),
    (["--strengths=-1,1"], None, "must include 0"),
    ([], 5, "feature 5 has an all-zero decoder row"),
    (["--units", "max_act"], None, "--units max_act needs --stats"),
    (["--max-new-tokens", "900"], None, "exceed the model's context"),
])
def test_dose_cli_bad_input_is_one_clear_error(model_dir, sae, tmp_path, capsys, extra, zero, message) -> None:
    err = _cli_error(_dose_argv(model_dir, _decoder(tmp_path, sae, zero), tmp_path / "d", *extra), capsys)
    assert "interp-sot dose: error: " in err and message in err.split("interp-sot dose: error: ")[1]


def test_steer_with_auto_strengths_in_resid_units(model_dir, sae, tmp_path, capsys) -> None:
    decoder = _decoder(tmp_path, sae)
    # the dose is tuned on problems held out from the sweep's (another seed); the sweep's own are refused below
    assert main([*_dose_argv(model_dir, decoder, tmp_path / "dose"), "--problem-seed", "1"]) == 0
    assert "coherent strengths" in capsys.readouterr().out
    dose = read_dose(tmp_path / "dose")
    argv = ["steer", "--model", str(model_dir), "--decoder", str(decoder), "--features", "5", "--layer", str(LAYER),
            "--strengths", "auto:3", "--dose", str(tmp_path / "dose"), "--n-problems", "2", "--max-new-tokens", "3",
            "--greedy", "--no-report", "--batch-size", "8", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    rows = read_jsonl(tmp_path / "run" / "sweep.jsonl")
    want = sorted({0.0, dose.positive, dose.negative, dose.positive / 2, dose.negative / 2} - {0.0})
    got = sorted({r["strength"] for r in rows})
    assert 0.0 in got and len(got) == 3 and set(got) - {0.0} <= set(want)
    units = json.loads((tmp_path / "run" / "strength_units.json").read_text())
    assert units["units"] == "resid" == dose.units  # auto strengths take the dose run's units
    tuned_on = [*argv[:-1], str(tmp_path / "run2"), "--problem-seed", "1"]  # the dose's own problems
    assert main(tuned_on) == 2
    assert "'gen-1-0' is also one of the dose problems" in capsys.readouterr().err
    assert units["residual_norm"] > 0
    for r in units["rows"]:
        assert r["ratio_to_residual"] == pytest.approx(abs(r["strength"]), rel=1e-5)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["summary"]["strength_units"]["units"] == "resid"
    # auto:N in other units than the dose run measured is refused
    bad = [*argv[:-1], str(tmp_path / "run2"), "--units", "unit"]
    assert "dose run measured strengths in 'resid'" in _cli_error(bad, capsys)
    # matched-norm controls from the command line: each control at the picked feature's signed added norms
    table = tmp_path / "screen" / "screen.csv"
    table.parent.mkdir()
    pd.DataFrame({"feature": range(48), "conversation_ratio": np.linspace(0, 1, 48), "fire_count": 5,
                  "onset_share": np.linspace(0, 1, 48)}).to_csv(table, index=False)
    ctrl_argv = ["controls", "--model", str(model_dir), "--decoder", str(decoder), "--layer", str(LAYER),
                 "--screen-table", str(table), "--n-controls", "1", "--problems-per-feature", "1", "--exclude", "5",
                 "--strength-mode", "matched", "--match-run", str(tmp_path / "run"), "--n-problems", "2",
                 "--max-new-tokens", "2", "--greedy", "--no-report", "--out", str(tmp_path / "ctrl")]
    assert main(ctrl_argv) == 0
    norms = sorted(math.copysign(r["added_norm"], r["strength"]) for r in units["rows"] if r["strength"])
    ctrl_rows = read_jsonl(tmp_path / "ctrl" / "controls.jsonl")
    assert sorted({r["strength"] for r in ctrl_rows}) == pytest.approx(norms)
    assert len(ctrl_rows) == 2 * len(norms)  # one feature per group, one problem, every norm
    ctrl_units = json.loads((tmp_path / "ctrl" / "strength_units.json").read_text())
    assert ctrl_units["units"] == "unit" and all(r["added_norm"] == pytest.approx(abs(r["strength"]), rel=1e-5)
                                                 for r in ctrl_units["rows"])
    assert "--units unit" in _cli_error([*ctrl_argv[:-1], str(tmp_path / "c2"), "--units", "sae"], capsys)
    # interp-sot measure, then analyze shows coherence by strength
    run = str(tmp_path / "run")
    assert main(["measure", "--run", run, "--model", str(model_dir), "--layer", str(LAYER), "--no-diversity"]) == 0
    assert len(read_jsonl(tmp_path / "run" / "coherence.jsonl")) == len(rows)
    assert main(["analyze", "--sweep", run, "--out", str(tmp_path / "an"), "--no-plot", "--bootstrap", "0",
                 "--mediators", "none", "--no-length-control", "--behaviours", ""]) == 0
    coh = pd.read_csv(tmp_path / "an" / "coherence_by_strength.csv")
    assert sorted(coh["strength"]) == got and (coh["n"] == 2).all()


@pytest.fixture(scope="module")
def steered(model, sae, tmp_path_factory) -> tuple[Path, list[Any]]:
    tok = char_tokenizer()
    problems = generate_problems(3, seed=1)
    r = 10.0
    scales = feature_scales(sae, [7], "resid", residual=r)
    strengths = [-0.5, 0.0, 0.5]
    out = tmp_path_factory.mktemp("runs") / "steer"
    res = steer_stage(model, tok, problems, {7: scales[7].direction}, strengths, _sweep(), out, progress=False,
                      strength_units=units_record(scales, strengths))
    return out, res.records


def test_measure_stage_writes_sidecars_equal_to_direct_scores_and_resumes(model, sae, steered) -> None:
    from interp_sot.experiments.trace_features import trace_feature_totals

    run, records = steered
    tok = char_tokenizer()
    cfg = MeasureConfig(layer=LAYER)
    measure_stage(model, tok, sae, run, cfg, chunk=4, progress=False)
    coh = {d["key"]: d for d in read_jsonl(run / "coherence.jsonl")}
    feats = {d["key"]: d for d in read_jsonl(run / "trace_features.jsonl")}
    assert set(coh) == set(feats) == {r.key for r in records}
    direct = score_texts(model, tok, [r.prompt for r in records], [r.completion for r in records],
                         add_special_tokens=True)
    for r, c in zip(records, direct, strict=True):
        assert coh[r.key]["mean_logprob"] == pytest.approx(c.mean_logprob, rel=1e-5)
        assert coh[r.key]["degenerate"] == c.degenerate
    p_ids = [tok(r.prompt)["input_ids"] for r in records[:2]]
    c_ids = [tok(r.completion, add_special_tokens=False)["input_ids"] for r in records[:2]]
    for r, t in zip(records[:2], trace_feature_totals(model, sae, LAYER, p_ids, c_ids), strict=True):
        assert feats[r.key]["indices"] == t.indices.tolist()
        np.testing.assert_allclose(feats[r.key]["mass"], t.mass, rtol=1e-5)
    # resume: drop the last two lines of a sidecar and the manifest -> only those traces are scored again
    lines = (run / "coherence.jsonl").read_text().splitlines(keepends=True)
    (run / "coherence.jsonl").write_text("".join(lines[:-2]))
    (run / "measures" / "manifest.json").unlink()
    measure_stage(model, tok, sae, run, cfg, chunk=4, progress=False)
    again = read_jsonl(run / "coherence.jsonl")
    assert len(again) == len(records) and {d["key"] for d in again} == set(coh)
    with pytest.raises(RunDirError, match="threshold"):
        measure_stage(model, tok, sae, run, MeasureConfig(layer=LAYER, threshold=0.5), progress=False)


def test_matched_controls_config_and_sampling() -> None:
    with pytest.raises(ValueError, match="matched_norms"):
        ControlsConfig(mode="matched")
    with pytest.raises(ValueError, match="non-zero"):
        ControlsConfig(mode="matched", matched_norms=(0.0, 1.0))
    with pytest.raises(ValueError, match="only used with mode='matched'"):
        ControlsConfig(matched_norms=(1.0,))
    table = pd.DataFrame({"feature": range(10), "conversation_ratio": [0.9] * 5 + [0.1] * 5,
                          "onset_share": [0.9] * 5 + [0.1] * 5, "max_act": [1.0] * 10, "fire_count": [5] * 10})
    cfg = ControlsConfig(n_controls=2, mode="matched", matched_norms=(-2.0, 3.0), exclude=(0,))
    ctrl = sample_control_features(table, cfg)
    assert len(ctrl) == 8 and {c.strength for c in ctrl} == {-2.0, 3.0}
    assert all(sum(c.feature == f.feature for c in ctrl) == 2 for f in ctrl)  # each feature at each norm


def test_matched_controls_and_analysis_tables(model, sae, steered, tmp_path) -> None:
    """conclude_run: measure (the sweep with the SAE, the controls without), the analysis, each run's report."""
    from interp_sot.stages.analyze import AnalyzeConfig
    from interp_sot.stages.conclude import conclude_run
    from interp_sot.stages.report import ReportConfig
    from interp_sot.stages.strengths import read_units

    run, _ = steered
    tok = char_tokenizer()
    picked = read_units(run)
    assert picked is not None
    norms = tuple(sorted({math.copysign(r["added_norm"], r["strength"]) for r in picked["rows"] if r["strength"]}))
    cfg = ControlsConfig(n_controls=1, problems_per_feature=2, mode="matched", matched_norms=norms)
    controls = [ControlFeature(f, s, g) for f, g in ((11, "conversational"), (12, "non_conversational"))
                for s in norms]
    problems = generate_problems(3, seed=1)
    scales = feature_scales(sae, [11, 12], "unit", residual=10.0)
    with pytest.raises(ValueError, match="unit-norm"):
        controls_stage(model, tok, controls, problems, {f: 2 * s.direction for f, s in scales.items()}, _sweep(),
                       cfg, tmp_path / "bad", progress=False)
    ctrl_dir = tmp_path / "controls"
    res = controls_stage(model, tok, controls, problems, {f: s.direction for f, s in scales.items()}, _sweep(), cfg,
                         ctrl_dir, progress=False,
                         strength_units=units_record(scales, {11: list(norms), 12: list(norms)}))
    assert len(res.records) == 2 * len(norms) * 2
    screen = tmp_path / "screen.csv"
    pd.DataFrame({"feature": range(48), "conversation_ratio": np.linspace(0, 1, 48)}).to_csv(screen, index=False)
    done = conclude_run(model, tok, sae, run, measure=MeasureConfig(layer=LAYER),
                        analyze=AnalyzeConfig(mediators=(), on_unfittable="skip", plot=False, control_outcomes=None),
                        report=ReportConfig(plot=False), controls=ctrl_dir, screen=screen,
                        analysis_out=tmp_path / "analysis",
                        report_out={"sweep": tmp_path / "steer_report", "controls": ctrl_dir / "report"})
    out = done.analysis
    assert [m.run for m in done.measured] == [run, ctrl_dir] and (run / "trace_features.jsonl").is_file()
    assert not (ctrl_dir / "trace_features.jsonl").exists()  # the controls: coherence only
    assert "Coherence per strength" in (tmp_path / "steer_report" / "summary.md").read_text()
    assert "## Controls" in (ctrl_dir / "report" / "summary.md").read_text()
    a = tmp_path / "analysis"
    coh = pd.read_csv(a / "coherence_by_strength.csv")
    assert list(coh["strength"]) == [-0.5, 0.0, 0.5] and (coh["n"] == 3).all()
    assert coh.loc[coh["strength"] == 0.0, "drop_vs_0"].iloc[0] == 0.0
    div = pd.read_csv(a / "diversity_regression.csv") if (a / "diversity_regression.csv").stat().st_size > 1 else None
    fitted = set(div["outcome"]) if div is not None and len(div) else set()
    skipped = {k for k in out.skipped if k.startswith("diversity:")}
    assert fitted | {k.removeprefix("diversity:") for k in skipped} == {
        f"diversity.{s}.{m}" for s in ("conversational", "non_conversational") for m in ("coverage", "entropy")}
    if div is not None and len(div):
        assert (div["mde"] == pytest.approx(2.8016 * div["se"], rel=1e-3))
    cond = pd.read_csv(a / "conditions.csv")
    assert cond["matched"].all() and set(cond["condition"]) == {"picked", "conversational", "non_conversational"}
    for norm in norms:  # the three conditions side by side at each matched norm
        at = cond[np.isclose(cond["added_norm"], norm)]
        assert set(at["condition"]) == {"picked", "conversational", "non_conversational"}
    assert "mde_vs_baseline" in pd.read_csv(a / "accuracy_by_strength.csv").columns
    summary = json.loads((a / "summary.json").read_text())
    assert summary["conditions_matched"] is True and len(summary["coherence"]) == 3


def test_accuracy_error_bars_survive_a_wilson_bound_a_rounding_error_above_zero() -> None:
    from matplotlib.figure import Figure

    from interp_sot.analysis.plots import draw_accuracy

    acc = pd.DataFrame({"strength": [0.0, 0.2], "accuracy": [0.0, 0.0], "ci_low": [1e-17, 0.0],
                        "ci_high": [0.07, 0.07]})
    ax = Figure().subplots()
    draw_accuracy(ax, acc, percent=True)  # 0 - 1e-15 used to be a negative error bar, which matplotlib refuses
    assert len(ax.containers) == 1


def test_condition_table_lines_up_controls_whose_norms_differ_in_float32_rounding() -> None:
    from interp_sot.analysis.conditions import condition_table

    picked = pd.DataFrame({"feature": "7", "strength": [0.0, 0.2, 0.2], "correct": [0, 1, 0],
                           "we": [1.0, 3.0, 5.0]})
    controls = pd.DataFrame({"feature": ["11", "12", "13"], "strength": [33.8, 33.8000015, 33.7999992],
                             "correct": [0, 0, 1], "group": ["conversational", "non_conversational",
                                                             "non_conversational"], "we": [2.0, 4.0, 6.0]})
    units_p = {"rows": [{"feature": 7, "strength": 0.0, "added_norm": 0.0},
                        {"feature": 7, "strength": 0.2, "added_norm": 33.8}]}
    units_c = {"rows": [{"feature": int(f), "strength": s, "added_norm": s}
                        for f, s in zip(controls["feature"], controls["strength"], strict=True)]}
    tab = condition_table(picked, controls, picked_units=units_p, control_units=units_c, outcomes=["we"])
    at = tab[tab["added_norm"] == 33.8].set_index("condition")
    assert tab["matched"].all() and len(at) == 3  # one row per condition, not one per rounding of the norm
    assert at.loc["non_conversational", "n"] == 2 and at.loc["non_conversational", "we"] == 5.0
    assert at.loc["picked", "accuracy"] == 0.5 and at.loc["conversational", "we"] == 2.0


def test_steer_spec_reruns_a_run_from_its_steering_json(model_dir, sae, tmp_path, capsys) -> None:
    """`interp-sot steer --spec <run>/steering.json` steers the same vector at the same layer and strengths."""
    decoder = _decoder(tmp_path, sae)
    base = ["steer", "--model", str(model_dir), "--n-problems", "2", "--max-new-tokens", "3", "--greedy",
            "--no-report", "--batch-size", "8"]
    assert main([*base, "--decoder", str(decoder), "--features", "5", "--layer", str(LAYER), "--units", "resid",
                 "--strengths=-0.5,0,0.5", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--spec", str(tmp_path / "a" / "steering.json"), "--out", str(tmp_path / "b")]) == 0
    a, b = read_jsonl(tmp_path / "a" / "sweep.jsonl"), read_jsonl(tmp_path / "b" / "sweep.jsonl")
    assert [(r["feature"], r["strength"], r["completion"]) for r in a] == [
        (r["feature"], r["strength"], r["completion"]) for r in b]
    assert {r["direction_sha"] for r in a} == {r["direction_sha"] for r in b}
    assert main([*base, "--spec", str(tmp_path / "a" / "steering.json"), "--layer", "0",
                 "--out", str(tmp_path / "c")]) == 2
    assert "contradicts the spec's layer" in capsys.readouterr().err
