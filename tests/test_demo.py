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


@pytest.mark.integration
def test_demo_end_to_end_small(smollm2, tmp_path, monkeypatch):
    from interp_sot.demo import run_demo
    from interp_sot.steering import load_direction, median_residual_norm
    from interp_sot.tasks.countdown import generate_problems
    from interp_sot.tasks.countdown.prompts import build_prompt

    monkeypatch.setattr("interp_sot.models.load_model", lambda *a, **k: smollm2)
    cfg = DemoConfig(corpus=str(_small_corpus(tmp_path / "c.jsonl")), strengths=(-10.0, 0.0, 10.0), n_problems=2,
                     n_controls=1, control_problems=1, max_new_tokens=6, min_contexts=2, batch_size=8, n_boot=50)
    out = tmp_path / "run"
    result = run_demo(cfg, out)

    table = pd.read_parquet(out / "screen" / "screen.parquet")
    row = table[table["feature"] == result.pick.feature].iloc[0]
    assert row["passes_filter"] and row["n_contexts"] >= 2
    steer = [json.loads(x) for x in (out / "steer" / "sweep.jsonl").read_text().splitlines()]
    assert sorted((r["strength"], r["problem_id"]) for r in steer) == sorted(
        (s, p.problem_id) for s in (-10.0, 0.0, 10.0) for p in generate_problems(2, seed=0))
    controls = [json.loads(x) for x in (out / "controls" / "controls.jsonl").read_text().splitlines()]
    assert sorted(r["group"] for r in controls) == ["conversational", "non_conversational"]
    assert result.pick.feature not in {r["feature"] for r in controls}

    # one strength unit = median residual norm on the prompts / the paper's 11.5746, along the decoder row
    model, tok = smollm2
    prompts = [build_prompt(p, "chat", tok) for p in generate_problems(2, seed=0)]
    unit = median_residual_norm(model, tok, prompts, 15) / cfg.reference_norm
    direction = load_direction(out / "steer" / "direction.safetensors")
    assert direction.norm().item() == pytest.approx(unit, rel=1e-4)
    from interp_sot.data import embedded_sae_path
    from interp_sot.features.sae import load_sae

    w = load_sae(embedded_sae_path()).W_dec[result.pick.feature].float()
    assert torch.nn.functional.cosine_similarity(direction, w, dim=0).item() == pytest.approx(1.0, abs=1e-5)

    text = result.report.read_text()
    assert f"Picked feature {result.pick.feature}" in text and "Caveats" in text
    assert result.figure is not None and result.figure.stat().st_size > 10_000
    assert set(result.timings) == {"load", "stats", "screen", "steer", "controls", "analysis", "report"}
    assert (out / "analysis" / "accuracy_by_strength.csv").exists()

    # a rerun resumes: no trace is generated again
    before = (out / "steer" / "sweep.jsonl").read_text()
    run_demo(cfg, out)
    assert (out / "steer" / "sweep.jsonl").read_text() == before


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
    from interp_sot.demo.pipeline import stage_screen

    stats, tok = _tiny_stats(tiny_llama)
    by_labels = stage_screen(stats, tok, DemoConfig(judge="labels"), tmp_path / "a")
    # label ratio = share of a feature's top contexts that sit in conversational documents
    labels = stats.contexts.sequence_labels("conversational")
    seq = stats.topk_seq.numpy()
    f = int(by_labels["conversation_ratio"].notna().idxmax())
    valid = seq[f][seq[f] >= 0]
    assert by_labels.loc[f, "conversation_ratio"] == pytest.approx(labels[valid].mean())
    by_judge = stage_screen(stats, tok, DemoConfig(judge="heuristic"), tmp_path / "b")
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
