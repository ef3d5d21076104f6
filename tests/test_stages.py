"""The stage layer: run-directory identity (resume / refuse), manifests, the analyze stage's derived outcomes,
the SAE-loading policy, and the package's one-way layering."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interp_sot.stages.rundir import (
    MANIFEST_FILE,
    RunDirError,
    begin_stage,
    finish_stage,
    is_complete,
    prepare_dir,
    require_complete,
)

PACKAGE = Path(__file__).resolve().parents[1] / "interp_sot"


def test_same_identity_resumes_and_a_different_one_is_refused_by_name(tmp_path):
    out = tmp_path / "run"
    assert begin_stage(out, "stats", {"layer": 15, "k": 50}, {"corpus": "a.jsonl"}) is False
    assert begin_stage(out, "stats", {"layer": 15, "k": 50}, {"corpus": "a.jsonl"}) is True
    with pytest.raises(RunDirError, match=r"config\.layer: 15 -> 3") as err:
        begin_stage(out, "stats", {"layer": 3, "k": 50}, {"corpus": "a.jsonl"})
    assert "new output folder" in str(err.value) and "config.k" not in str(err.value)
    with pytest.raises(RunDirError, match=r"inputs\.corpus: a\.jsonl -> b\.jsonl"):
        begin_stage(out, "stats", {"layer": 15, "k": 50}, {"corpus": "b.jsonl"})
    with pytest.raises(RunDirError, match="'stats' run, not a 'screen' run"):
        begin_stage(out, "screen", {}, {})


def test_manifest_marks_complete_and_readers_refuse_unfinished_runs(tmp_path):
    out = tmp_path / "steer"
    begin_stage(out, "steer", {"x": 1})
    (out / "sweep.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="unfinished steer run"):
        require_complete(out, "--sweep")
    assert not is_complete(out)
    with pytest.raises(RunDirError, match="did not produce"):
        finish_stage(out, "steer", ["sweep.jsonl", "missing.csv"])
    finish_stage(out, "steer", ["sweep.jsonl"], {"rows": 1})
    assert is_complete(out, "steer") and not is_complete(out, "stats")
    assert json.loads((out / MANIFEST_FILE).read_text())["files"] == ["sweep.jsonl"]
    require_complete(out, "--sweep")
    require_complete(tmp_path / "handmade", "--sweep")  # not made by a stage: nothing to check


def test_prepare_dir_fails_early_and_removes_temporaries(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        prepare_dir(tmp_path / "file")
    out = tmp_path / "run"
    (out / "sub").mkdir(parents=True)
    (out / ".stats.safetensors.abc123.tmp").write_bytes(b"0" * 100)
    (out / "sub" / ".x.csv.q.tmp").write_text("half")
    (out / "keep.csv").write_text("a\n")
    prepare_dir(out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["keep.csv"]


def _records_with_codings(tmp_path: Path) -> Path:
    from interp_sot.analysis.bales import IPA_CATEGORIES
    from interp_sot.behaviours.judge_coding import BehaviourCoding
    from interp_sot.io import append_jsonl

    run = tmp_path / "steer"
    run.mkdir()
    rng = np.random.default_rng(0)
    records, codings, persp = [], [], []
    for p in range(12):
        for s in (0.0, 10.0):
            key = f"7|{s!r}|p{p}"
            records.append({"key": key, "feature": 7, "group": None, "strength": s, "problem_id": f"p{p}",
                            "correct": bool(rng.random() < 0.3), "completion": "wait, we check. oh",
                            "n_new_tokens": int(rng.integers(20, 90)), "settings": {}, "prompt": "q"})
            counts = {c: int(rng.integers(0, 3)) for c in IPA_CATEGORIES}
            counts["asks_for_opinion"], counts["gives_opinion"] = 1, 1 if s > 0 else 0
            codings.append(BehaviourCoding(key, "bales", "behaviours_bales_ipa@1", "fake", counts).to_dict())
            views = [{"id": i, "bfi10": [int(x) for x in rng.integers(1, 6, 10)], "expertise": "math",
                      "segments": [0], "n_tokens": 5} for i in range(1 + int(s > 0))]
            persp.append({"trace_id": key, "status": "ok", "error": None, "perspectives": views, "n_segments": 2,
                          "n_tokens": 10, "prompt": "perspectives@1", "judge": "fake"})
    append_jsonl(run / "sweep.jsonl", records)
    append_jsonl(run / "behaviours.jsonl", codings)
    append_jsonl(run / "perspectives.jsonl", persp)
    return run


def test_run_table_derives_bales_reciprocity_and_perspective_outcomes(tmp_path):
    from interp_sot.analysis.bales import IPA_CATEGORIES, reciprocity
    from interp_sot.analysis.traces import load_run_table

    table = load_run_table(_records_with_codings(tmp_path))
    df = table.frame.set_index("key")
    counts = df[[f"judge.bales.{c}" for c in IPA_CATEGORIES]].set_axis(list(IPA_CATEGORIES), axis=1)
    expected = reciprocity(counts.reset_index(drop=True), id_column=None)
    assert np.allclose(df["judge.bales.reciprocity.ask_give"].to_numpy(), expected["ask_give"].to_numpy())
    # one perspective at s=0 (SD undefined -> 0 by the "zero" policy), two at s=10
    assert df["judge.perspectives.n"].tolist() == [1.0, 2.0] * 12
    assert {"judge.bales.reciprocity.positive_negative", "judge.perspectives.n"} <= set(table.outcomes)
    assert any(c.startswith("judge.perspectives.sd_") for c in table.outcomes)


def test_analyze_stage_fits_derived_outcomes_and_refuses_other_settings(tmp_path):
    from interp_sot.stages.analyze import AnalyzeConfig, analyze_stage

    run = _records_with_codings(tmp_path)
    finish_stage(run, "steer", ["sweep.jsonl"])  # a manifest without stage.json: accepted as complete
    config = AnalyzeConfig(mediators=(), plot=False, on_unfittable="skip")
    result = analyze_stage(run, config, tmp_path / "a")
    assert "judge.perspectives.n" in set(result.regression["outcome"])
    fitted = result.regression.set_index(["outcome", "term"]).loc[("judge.perspectives.n", "s=+10"), "coef"]
    assert fitted == pytest.approx(1.0)  # exactly one more perspective at s=10 in every problem
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["skipped"] == result.skipped and is_complete(tmp_path / "a", "analyze")
    # the per-trace table the analysis writes (and the report copies) carries the derived outcomes it fitted
    traces = pd.read_parquet(tmp_path / "a" / "traces.parquet")
    assert {"judge.bales.reciprocity.ask_give", "judge.perspectives.n"} <= set(traces.columns)
    assert traces["judge.perspectives.n"].tolist() == [1.0, 2.0] * 12
    rates = pd.read_csv(tmp_path / "a" / "behaviour_rates.csv")
    assert "judge.bales.reciprocity.ask_give" in set(rates["behaviour"])
    with pytest.raises(RunDirError, match=r"config\.treated: 10\.0 -> 5\.0"):
        analyze_stage(run, AnalyzeConfig(treated=5.0, mediators=(), plot=False, on_unfittable="skip"),
                      tmp_path / "a")


def test_controls_regression_is_the_one_control_fit(tmp_path):
    from interp_sot.analysis.regression import fe_ols
    from interp_sot.analysis.steering_effects import controls_regression

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"problem_id": np.repeat(np.arange(30), 2), "conversational": np.tile([0, 1], 30),
                       "correct": rng.random(60) < 0.4, "trace_len": rng.integers(10, 500, 60)})
    got = controls_regression(df)
    ref = df.assign(log_trace_len=np.log(df["trace_len"].astype(float)), correct=df["correct"].astype(float))
    want = fe_ols(ref, "correct", "conversational", "problem_id", "problem_id", controls=["log_trace_len"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    with pytest.raises(ValueError, match="must be > 0"):
        controls_regression(df.assign(trace_len=0))


def test_sae_folder_in_half_precision_computes_in_fp32_on_cpu(tmp_path):
    from features_helpers import make_sae

    from interp_sot.features.sae import load_sae

    sae = make_sae("topk", d_in=16, d_sae=24, k=4).to(torch.float16)
    sae.cfg.dtype = "float16"
    sae.save_model(str(tmp_path / "sae"))
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["dtype"] == "float16"
    assert load_sae(tmp_path / "sae").W_enc.dtype == torch.float32
    assert load_sae(tmp_path / "sae", dtype="float16").W_enc.dtype == torch.float16


# layer of each top-level part: a module may import only parts of a lower or equal layer
LAYERS = {"io": 0, "lazy": 0, "layers": 0, "models": 0, "data": 0, "hub": 0, "plan": 0, "rundir": 0, "tasks": 1,
          "judging": 1, "activations": 1, "steering": 2, "features": 2, "training": 3, "corpora": 3, "behaviours": 3,
          "screening": 3, "experiments": 4, "evaluation": 4, "analysis": 5, "browser": 6, "stages": 6, "demo": 7,
          "cli": 8}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("interp_sot."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("interp_sot.")}
    return found


# Known upward edges, owned elsewhere and reported to the coordinator (not to grow):
KNOWN = {"experiments/trace_features.py imports interp_sot.analysis"}


def test_layers_point_one_way():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        part = rel[0].removesuffix(".py") if len(rel) > 1 or rel[0] != "__init__.py" else ""
        if part not in LAYERS:
            continue
        for target in _imports(path):
            if target in LAYERS and LAYERS[target] > LAYERS[part]:
                wrong.append(f"{'/'.join(rel)} imports interp_sot.{target}")
    assert not set(wrong) - KNOWN, sorted(set(wrong) - KNOWN)


def test_model_structure_helpers_live_below_steering():
    import interp_sot.layers as layers
    import interp_sot.steering as steering

    assert steering.resolve_layer is layers.resolve_layer and not (PACKAGE / "steering" / "layers.py").exists()
