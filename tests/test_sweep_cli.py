"""``interp-sot steer`` and ``interp-sot controls`` end to end on a tiny saved model (no hub)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from interp_sot.cli import controls as controls_cli
from interp_sot.cli import steer as steer_cli
from interp_sot.flags import parse_floats
from interp_sot.io import read_jsonl
from interp_sot.steering import save_direction

pytestmark = pytest.mark.usefixtures("one_thread")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp-sot")
    sub = parser.add_subparsers(dest="command", required=True)
    steer_cli.add_parser(sub)
    controls_cli.add_parser(sub)
    return parser


@pytest.fixture
def model_dir(tiny_llama: Any, tmp_path: Path) -> Path:
    from builders import char_tokenizer

    path = tmp_path / "tiny"
    tiny_llama.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


COMMON = [
    "--layer",
    "1",
    "--n-problems",
    "2",
    "--max-new-tokens",
    "4",
    "--greedy",
    "--n-boot",
    "50",
    "--batch-size",
    "4",
]


def test_steer_cli_runs_and_resumes(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads((model_dir / "config.json").read_text())  # room for the character-level TinyZero prompt,
    config["max_position_embeddings"] = 1024  # so the coherence guard can score every trace
    (model_dir / "config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(0)
    save_direction(tmp_path / "conv.safetensors", torch.randn(32, generator=g))
    out = tmp_path / "run"
    argv = [
        "steer",
        "--model",
        str(model_dir),
        "--direction",
        str(tmp_path / "conv.safetensors"),
        "--strengths=-4,0,4",
        "--out",
        str(out),
        *COMMON,
    ]
    args = _parser().parse_args(argv)
    assert args.run(args) == 0
    rows = read_jsonl(out / "sweep.jsonl")
    assert (
        len(rows) == 6
        and {r["feature"] for r in rows} == {"conv"}
        and {r["strength"] for r in rows} == {-4.0, 0.0, 4.0}
    )
    assert rows[0]["settings"]["generation"]["do_sample"] is False and rows[0]["settings"]["layer"] == 1
    assert len(read_jsonl(out / "problems.jsonl")) == 2
    assert "Accuracy per strength" in (out / "report" / "summary.md").read_text()
    assert (out / "report" / "accuracy.png").is_file() and "report:" in capsys.readouterr().out
    # the measure stage ran before the report: every trace has a coherence score, and the report shows it by strength
    coherence = {r["key"]: r["mean_logprob"] for r in read_jsonl(out / "coherence.jsonl")}
    assert set(coherence) == {r["key"] for r in rows}
    assert "Coherence per strength" in (out / "report" / "summary.md").read_text()
    table = pd.read_csv(out / "report" / "coherence.csv").set_index("strength")
    for s in (-4.0, 0.0, 4.0):
        expected = sum(coherence[r["key"]] for r in rows if r["strength"] == s) / 2
        assert table.loc[s, "n"] == 2 and table.loc[s, "mean_logprob"] == pytest.approx(expected, rel=1e-9)
    assert not (out / "trace_features.jsonl").exists()  # a bare direction file: no SAE to re-encode with
    args = _parser().parse_args(argv)  # rerun: nothing new is generated
    assert args.run(args) == 0 and len(read_jsonl(out / "sweep.jsonl")) == 6


def test_controls_cli_with_decoder_and_list(model_dir: Path, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    save_direction(tmp_path / "wdec.safetensors", torch.randn(10, 32, generator=g))
    pd.DataFrame(
        {
            "feature": [1, 2, 3, 4],
            "strength": [3.0, 3.0, 5.0, 5.0],
            "group": ["conversational", "conversational", "non_conversational", "non_conversational"],
        }
    ).to_csv(tmp_path / "controls.csv", index=False)
    out = tmp_path / "ctrl"
    args = _parser().parse_args(
        [
            "controls",
            "--model",
            str(model_dir),
            "--decoder",
            str(tmp_path / "wdec.safetensors"),
            "--controls",
            str(tmp_path / "controls.csv"),
            "--problems-per-feature",
            "2",
            "--out",
            str(out),
            *COMMON,
        ]
    )
    assert args.run(args) == 0
    rows = read_jsonl(out / "controls.jsonl")
    assert len(rows) == 8 and {r["group"] for r in rows} == {"conversational", "non_conversational"}
    assert rows[0]["settings"]["layer"] == 1
    assert json.loads((out / "controls.json").read_text())[0] == {
        "feature": 1,
        "strength": 3.0,
        "group": "conversational",
    }
    assert "## Controls" in (out / "report" / "summary.md").read_text()


def test_cli_errors(tmp_path: Path) -> None:
    args = _parser().parse_args(["steer", "--out", str(tmp_path), "--layer", "1", "--strengths", "1"])
    with pytest.raises(SystemExit, match="--features or one --direction"):
        args.run(args)
    args = _parser().parse_args(["steer", "--out", str(tmp_path), "--layer", "1", "--features", "3"])
    with pytest.raises(SystemExit, match="name the SAE once"):
        args.run(args)
    args = _parser().parse_args(["controls", "--out", str(tmp_path), "--layer", "1"])
    with pytest.raises(SystemExit, match="--controls FILE or --screen-table"):
        args.run(args)
    with pytest.raises(SystemExit, match="--strengths"):
        parse_floats("1,x", "--strengths")


def test_steer_cli_codes_behaviours_with_judge(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_behaviours_coding import ScriptedJudge, _valid

    import interp_sot.judging.spec as spec

    judge = ScriptedJudge({"cognitive": [_valid("cognitive")]})
    monkeypatch.setattr(spec, "make_judge", lambda s: judge)
    save_direction(tmp_path / "d.safetensors", torch.ones(32))
    out = tmp_path / "run"
    argv = [
        "steer",
        "--model",
        str(model_dir),
        "--direction",
        str(tmp_path / "d.safetensors"),
        "--strengths=0,2",
        "--out",
        str(out),
        "--judge",
        "openai:m@http://127.0.0.1:9",
        "--schemes",
        "cognitive",
        *COMMON,
    ]
    args = _parser().parse_args(argv)
    assert args.run(args) == 0
    assert len(judge.calls) == 4 and len(read_jsonl(out / "behaviours.jsonl")) == 4
    beh = pd.read_csv(out / "report" / "behaviours.csv")
    assert set(beh.loc[beh["method"] == "llm_judge", "behaviour"]) == {
        "judge.cognitive.verification",
        "judge.cognitive.backtracking",
        "judge.cognitive.subgoal_setting",
        "judge.cognitive.backward_chaining",
    }
    args = _parser().parse_args(argv)  # rerun: traces and codings are all reused
    assert args.run(args) == 0 and len(judge.calls) == 4
    bad = _parser().parse_args([*argv[: -len(COMMON)], "--judge", "heuristic", *COMMON])
    with pytest.raises(SystemExit, match="cannot code behaviours"):
        bad.run(bad)


def test_steer_cli_with_saved_sae_folder(model_dir: Path, tmp_path: Path) -> None:
    from features_helpers import make_sae

    from interp_sot.experiments.records import direction_fingerprint
    from interp_sot.steering import feature_direction

    sae = make_sae("jumprelu", d_in=32, d_sae=48)
    sae.save_model(str(tmp_path / "sae"))
    out = tmp_path / "run"
    args = _parser().parse_args(
        [
            "steer",
            "--model",
            str(model_dir),
            "--sae-path",
            str(tmp_path / "sae"),
            "--features",
            "5,9",
            "--norm",
            "sae",
            "--strengths=0,3",
            "--out",
            str(out),
            "--no-report",
            *COMMON,
        ]
    )
    assert args.run(args) == 0
    rows = read_jsonl(out / "sweep.jsonl")
    assert len(rows) == 8 and not (out / "report").exists() and not (out / "coherence.jsonl").exists()
    for f in (5, 9):
        sha = direction_fingerprint(feature_direction(sae, f, units="sae"))
        assert {r["direction_sha"] for r in rows if r["feature"] == f} == {sha}


def test_the_command_is_one_python_call(model_dir: Path, tmp_path: Path) -> None:
    """``interp-sot steer`` builds a ``SteerRequest`` from its flags and calls ``run_steer``: the same call from
    Python, with the same choices, writes the same records (the CLI adds nothing but parsing and printing)."""
    from interp_sot.experiments import GenerationSettings, SweepConfig
    from interp_sot.stages.run_options import FinishOptions
    from interp_sot.stages.run_steer import SteerChoice, SteerRequest, run_steer
    from interp_sot.stages.sources import ModelSource, ProblemSource

    config = json.loads((model_dir / "config.json").read_text())
    config["max_position_embeddings"] = 1024
    (model_dir / "config.json").write_text(json.dumps(config))
    direction = tmp_path / "conv.safetensors"
    save_direction(direction, torch.randn(32, generator=torch.Generator().manual_seed(0)))
    argv = ["steer", "--model", str(model_dir), "--direction", str(direction), "--strengths=-4,0,4", "--out",
            str(tmp_path / "cli"), "--no-report", *COMMON]
    args = _parser().parse_args(argv)
    assert args.run(args) == 0
    sweep = SweepConfig.for_task("paper", layer=1, batch_size=4,
                                 generation=GenerationSettings(max_new_tokens=4, do_sample=False))
    choice = SteerChoice(direction=str(direction), strengths="-4,0,4")
    done = run_steer(SteerRequest(str(tmp_path / "py"), sweep, choice, problems=ProblemSource(n_problems=2),
                                  model=ModelSource(str(model_dir)), finish=FinishOptions(report=False)))
    assert done.planned is None and done.concluded is None and done.result is not None
    fields = ("problem_id", "feature", "strength", "completion", "correct")
    cli_rows, py_rows = read_jsonl(tmp_path / "cli/sweep.jsonl"), read_jsonl(tmp_path / "py/sweep.jsonl")
    assert len(py_rows) == 6
    assert [[r[k] for k in fields] for r in cli_rows] == [[r[k] for k in fields] for r in py_rows]
    with pytest.raises(ValueError, match="give SAE --features or one --direction"):
        SteerChoice(features=(1,), direction=str(direction))
