"""The demo pipeline: settings validation, and one small end-to-end run on SmolLM2 with the shipped SAE."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from interp_sot.demo import DemoConfig


def test_config_validation():
    with pytest.raises(ValueError, match="include 0"):
        DemoConfig(strengths=(5.0, 10.0))
    with pytest.raises(ValueError, match="n_controls"):
        DemoConfig(n_controls=0)
    with pytest.raises(ValueError, match="top_p"):
        DemoConfig(top_p=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        DemoConfig(tolerance=0.0)
    with pytest.raises(ValueError, match="include 0"):
        DemoConfig(dose_ratios=(-0.1, 0.1))


def test_sweep_strengths_stay_inside_the_coherent_range():
    from interp_sot.demo.pipeline import sweep_strengths
    from interp_sot.experiments.dose import DoseResult

    dose = DoseResult(1, "resid", 0.25, 170.0, 170.0, -0.8, 0.2, -0.1, 0.2, 0.1, 8, [])
    assert sweep_strengths(DemoConfig(n_strengths=5), dose) == pytest.approx([-0.1, 0.0, 0.2 / 3, 0.4 / 3, 0.2],
                                                                             rel=1e-5)
    assert sweep_strengths(DemoConfig(), dose) == [0.0, 0.2]  # the default: 0 and the positive edge
    wide = DoseResult(1, "resid", 0.25, 170.0, 170.0, -0.8, 0.2, -0.3, 0.2, 0.3, 8, [])
    assert sweep_strengths(DemoConfig(), wide) == [0.0, 0.2]  # even when the negative side is longer
    assert sweep_strengths(DemoConfig(strengths=(0.0, 0.2, -0.1)), dose) == [-0.1, 0.0, 0.2]
    from interp_sot.experiments.dose import check_in_range

    with pytest.raises(ValueError, match=r"outside the coherent range \[-0.1, 0.2\]"):  # what steer_features runs
        check_in_range(dose, sweep_strengths(DemoConfig(strengths=(-10.0, 0.0, 10.0)), dose))
    with pytest.raises(ValueError, match="measured strengths in 'resid' units, but this run steers in 'unit'"):
        check_in_range(dose, [0.0, 0.1], units="unit")
    check_in_range(dose, [-0.1, 0.0, 0.2], units="resid", feature=1)


def test_shipped_data_is_present_and_labelled():
    from interp_sot.data import embedded_sae_path, read_screening_corpus

    records = list(read_screening_corpus())
    assert len(records) > 100
    assert {r["conversational"] for r in records} == {True, False}
    assert all(r["text"].strip() and r["licence"] for r in records)
    folder = embedded_sae_path()
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["d_in"] == 576 and cfg["d_sae"] >= 8192 and cfg["dtype"] in ("float16", "bfloat16")
    assert (folder / "sae_weights.safetensors").stat().st_size <= 25 * 2**20
    report = json.loads((folder / "training_report.json").read_text())["held_out"]
    assert report["explained_variance"] >= 0.7 and report["l0"] <= 64
    with pytest.raises(FileNotFoundError, match="no shipped SAE"):
        embedded_sae_path("nope")


def _small_corpus(path, n_per_label: int = 10):
    from interp_sot.data import read_screening_corpus

    kept, counts = [], {True: 0, False: 0}
    for r in read_screening_corpus():
        if counts[r["conversational"]] < n_per_label:
            kept.append(r)
            counts[r["conversational"]] += 1
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return path


@pytest.fixture(scope="module")
def small_demo(smollm2, tmp_path_factory):
    """One small demo run (SmolLM2, 20 corpus documents, 2 held-out + 3 evaluation problems, 6 new tokens), shared
    by the tests below."""
    from interp_sot.demo import run_demo

    tmp_path = tmp_path_factory.mktemp("demo")
    # a huge tolerance makes the whole candidate range coherent, so the sweep's strengths are known: -0.2, 0, 0.2
    cfg = DemoConfig(corpus=str(_small_corpus(tmp_path / "c.jsonl")), n_strengths=3, dose_ratios=(-0.2, 0.0, 0.2),
                     dose_prompts=2, dose_tokens=4, tolerance=100.0, n_problems=3, n_controls=1, control_problems=1,
                     max_new_tokens=6, min_contexts=2, batch_size=8, n_boot=50)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("interp_sot.models.load_model", lambda *a, **k: smollm2)
        result = run_demo(cfg, tmp_path / "run")
    return cfg, result


@pytest.mark.integration
def test_demo_end_to_end_small(smollm2, small_demo, monkeypatch):
    from interp_sot.demo import run_demo
    from interp_sot.experiments.sweep import SweepConfig
    from interp_sot.stages.dose import read_dose
    from interp_sot.steering import load_direction, median_residual_norm
    from interp_sot.tasks.countdown.presets import get_preset, held_out_split
    from interp_sot.tasks.countdown.prompts import build_prompt

    monkeypatch.setattr("interp_sot.models.load_model", lambda *a, **k: smollm2)
    cfg, result = small_demo
    out = result.out

    table = pd.read_parquet(out / "screen" / "screen.parquet")
    row = table[table["feature"] == result.pick.feature].iloc[0]
    assert row["passes_filter"] and row["n_contexts"] >= 2
    steer = [json.loads(x) for x in (out / "steer" / "sweep.jsonl").read_text().splitlines()]
    held, evaluation = held_out_split(get_preset("arith2"), 2, 3, seed=0)
    assert sorted((r["strength"], r["problem_id"]) for r in steer) == sorted(
        (s, p.problem_id) for s in (-0.2, 0.0, 0.2) for p in evaluation)
    assert all("Answer:" in r["prompt"] and r["settings"]["answer_rule"] == "answer_line" for r in steer)
    assert {"valid_expression", "abs_error"} <= set(steer[0])

    # resid units: one unit of s adds the median residual norm on the (held-out) dose prompts, along the decoder row
    model, tok = smollm2
    spec = SweepConfig.for_task("arith2", layer=15).prompt_spec
    prompts = [build_prompt(p, spec, tok) for p in held]
    dose = read_dose(out / "dose")
    assert (dose.negative, dose.positive) == (-0.2, 0.2)
    assert [p["problem_id"] for p in dose.problems] == [p.problem_id for p in held]
    # the prompting arm: every evaluation problem, unsteered, through the shipped instruction
    arm = [json.loads(x) for x in (out / "prompted" / "sweep.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in arm) == sorted(p.problem_id for p in evaluation)
    assert all(r["strength"] == 0.0 and "several distinct voices" in r["prompt"] for r in arm)
    assert dose.residual_norm == pytest.approx(median_residual_norm(model, tok, prompts, 15), rel=1e-4)
    direction = load_direction(out / "steer" / "direction.safetensors")
    assert direction.norm().item() == pytest.approx(dose.residual_norm, rel=1e-4)
    # matched controls: each control feature at the picked feature's added norms (0.2 x r, both signs)
    controls = [json.loads(x) for x in (out / "controls" / "controls.jsonl").read_text().splitlines()]
    assert sorted(r["group"] for r in controls) == ["conversational"] * 2 + ["non_conversational"] * 2
    assert sorted({r["strength"] for r in controls}) == pytest.approx([-0.2 * dose.residual_norm,
                                                                       0.2 * dose.residual_norm], rel=1e-5)
    assert result.pick.feature not in {r["feature"] for r in controls}
    coherence = [json.loads(x) for x in (out / "steer" / "coherence.jsonl").read_text().splitlines()]
    assert {c["key"] for c in coherence} == {r["key"] for r in steer}
    from interp_sot.data import embedded_sae_path
    from interp_sot.features.sae import load_sae

    w = load_sae(embedded_sae_path()).W_dec[result.pick.feature].float()
    assert torch.nn.functional.cosine_similarity(direction, w, dim=0).item() == pytest.approx(1.0, abs=1e-5)

    text = result.report.read_text()
    assert f"Picked feature {result.pick.feature}" in text and "Caveats" in text
    assert "Coherent range" in text and "mde" in text and "Unsteered accuracy (s = 0)" in text
    assert "held-out problems" in text and "Prompting arm" in text and "Causal chain" in text
    assert result.figure is not None and result.figure.stat().st_size > 10_000
    assert set(result.timings) == {"load", "stats", "screen", "dose", "steer", "prompted", "controls", "measure",
                                   "analysis", "browser", "report"}
    for name in ("accuracy_by_strength", "coherence_by_strength", "conditions", "prompting"):
        assert (out / "analysis" / f"{name}.csv").exists()
    conditions = pd.read_csv(out / "analysis" / "conditions.csv")
    assert "prompted" in set(conditions["condition"])
    assert (out / "steer" / "report" / "summary.md").read_text().count("oherence") >= 1  # measured, then reported

    # a rerun resumes: no trace is generated again
    before = (out / "steer" / "sweep.jsonl").read_text()
    run_demo(cfg, out)
    assert (out / "steer" / "sweep.jsonl").read_text() == before


def _shard_page(site, feature):
    """One feature's page data from the browser's shard script (``...[shard]=<json>;``)."""
    from interp_sot.browser.site import SHARD_SIZE

    text = (site / "data" / f"shard-{feature // SHARD_SIZE:04d}.js").read_text()
    return json.loads(text[text.index("]=") + 2 : text.rindex(";")])["pages"][feature % SHARD_SIZE]


@pytest.mark.integration
def test_demo_writes_the_feature_browser_and_browse_reads_its_run(small_demo, tmp_path):
    import re

    from chromium import dump_dom, find_chromium

    from interp_sot.browser import BrowserOptions
    from interp_sot.cli import main
    from interp_sot.features.stats import FeatureStats

    _, result = small_demo
    out, f = result.out, result.pick.feature
    text = result.report.read_text()
    assert "[Feature browser](site/index.html)" in text and f"(site/feature.html#{f})" in text
    assert (out / "site" / "index.html").is_file() and (out / "site" / "feature.html").is_file()
    page = _shard_page(out / "site", f)
    # `interp-sot browse` on the run directory (tokenizer: the one the stats name) gives the picked feature the
    # same page (the controls' records belong to other features)
    assert main(["browse", "--stats", str(out / "stats"), "--screen", str(out / "screen"), "--sweep",
                 str(out / "steer"), "--out", str(tmp_path / "site")]) == 0
    assert _shard_page(tmp_path / "site", f) == page
    if find_chromium() is None:
        pytest.skip("Chromium not found (apt-get install chromium): the feature page's DOM is not checked")
    stats = FeatureStats.load(out / "stats")
    dom = dump_dom(out / "site" / "feature.html", f"#{f}")
    assert f'<h1 id="title">Feature {f}</h1>' in dom
    marks = [float(v) for v in re.findall(r'<span class="tok mark" data-act="([^"]+)"', dom)]
    shown = min(int((stats.topk_seq[f] >= 0).sum()), BrowserOptions().contexts)
    assert shown >= 2 and marks == pytest.approx(stats.topk_values[f, :shown].tolist(), rel=1e-5)
    for s in ("-0.2", "0", "0.2"):
        assert f'<details class="sample" data-strength="{s}">' in dom


def _tiny_stats(tiny_llama):
    from conftest import D_MODEL, char_tokenizer
    from sae_lens import StandardSAE, StandardSAEConfig

    from interp_sot.features import CollectConfig, collect

    torch.manual_seed(0)
    tok = char_tokenizer()
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=32))
    corpus = [{"text": "Oh! Wait, really? Are you sure? I think so, you know.", "conversational": True},
              {"text": "The mitochondrion makes ATP in the cell membrane.", "conversational": False}] * 3
    stats = collect(tiny_llama, tok, corpus, layer=1, sae=sae,
                    config=CollectConfig(metadata_fields=("conversational",), progress=False, top_k=5))
    return stats, tok


def test_screen_stage_labels_and_heuristic_judge(tiny_llama, tmp_path):
    from interp_sot.stages.screen import screen_stage

    stats, tok = _tiny_stats(tiny_llama)
    by_labels = screen_stage(stats, DemoConfig(judge="labels").screen_config(), tmp_path / "a" / "screen",
                             tokenizer=tok).table
    # label ratio = share of a feature's top contexts that sit in conversational documents
    labels = stats.contexts.sequence_labels("conversational")
    seq = stats.topk_seq.numpy()
    f = int(by_labels["conversation_ratio"].notna().idxmax())
    valid = seq[f][seq[f] >= 0]
    assert by_labels.loc[f, "conversation_ratio"] == pytest.approx(labels[valid].mean())
    by_judge = screen_stage(stats, DemoConfig(judge="heuristic").screen_config(), tmp_path / "b" / "screen",
                            tokenizer=tok).table
    assert by_judge["conversation_ratio"].notna().sum() == by_labels["conversation_ratio"].notna().sum()
    assert (tmp_path / "b" / "screen" / "conversation_scores.jsonl").stat().st_size > 0
    assert (tmp_path / "a" / "screen" / "screen.parquet").exists()


def test_top_markers_rank_by_distance_from_unsteered():
    from interp_sot.demo.figure import top_markers

    rows = []
    for name, means in {"markers.a": [0, 0, 0], "markers.b": [1, 3, 1], "markers.c": [5, 0, 0],
                        "judge.x": [0, 9, 99]}.items():
        rows += [{"behaviour": name, "strength": s, "mean": m} for s, m in zip((-10.0, 0.0, 10.0), means, strict=True)]
    assert top_markers(pd.DataFrame(rows), n=2) == ["markers.c", "markers.b"]


def test_cli_parser_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from interp_sot.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_report_opens_with_whether_an_accuracy_effect_is_measurable():
    from interp_sot.demo.findings import measurability

    acc = pd.DataFrame({"strength": [0.0, 0.2], "n": [200, 200], "accuracy": [0.02, 0.05],
                        "mde_vs_baseline": [float("nan"), 0.06]})
    text = measurability(acc, DemoConfig(task="paper"))
    assert text.startswith("**No accuracy effect is measurable in this run: the unsteered accuracy 2.0%")
    ok = measurability(acc.assign(accuracy=[0.205, 0.055], mde_vs_baseline=[float("nan"), 0.123]), DemoConfig())
    assert ok.startswith("Unsteered accuracy (s = 0): **20.5%** of 200 problems") and "12 points" in ok
    assert measurability(acc.assign(accuracy=[0.97, 0.9]), DemoConfig()).startswith("**No accuracy effect")
