"""The runbook's paper flags on tiny inputs: ``--scorer``, ``--tinyzero-split``, ``--plan`` / ``--device-memory-gib``
(steer, controls, stats) and a corpus given by a Hub dataset id read offline from the hub cache."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hub_standins import builder, use_hub_cache

from interp_sot.cli import main
from interp_sot.io import read_jsonl
from interp_sot.plan import GIB, ModelShape, plan_generation, plan_stats
from interp_sot.steering import save_direction
from interp_sot.tasks.countdown import CountdownProblem, build_prompt, score_completion

SOLUTIONS = {"[1, 2, 3]": "1 + 2 + 3", "[4, 5, 1]": "4 + 5 * 1"}
PROBLEMS = [{"target": 6, "nums": [1, 2, 3]}, {"target": 9, "nums": [4, 5, 1]}]
SMALL = ["--layer", "1", "--n-problems", "2", "--max-new-tokens", "4", "--greedy", "--batch-size", "4", "--no-report"]


@pytest.fixture
def model_dir(tiny_llama: Any, tmp_path: Path) -> Path:
    """The tiny Llama saved with its character tokenizer: a model folder the CLI reads like a hub snapshot."""
    from builders import char_tokenizer

    path = tmp_path / "tiny"
    tiny_llama.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A problems file, a direction, a decoder and a control list for the tiny model (d_model 32)."""
    g = torch.Generator().manual_seed(0)
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    save_direction(tmp_path / "conv.safetensors", torch.randn(32, generator=g))
    save_direction(tmp_path / "wdec.safetensors", torch.randn(10, 32, generator=g))
    pd.DataFrame({"feature": [1, 2, 3, 4], "strength": [3.0, 3.0, 5.0, 5.0],
                  "group": ["conversational"] * 2 + ["non_conversational"] * 2}).to_csv(tmp_path / "c.csv", index=False)
    return {"problems": tmp_path / "problems.jsonl", "direction": tmp_path / "conv.safetensors",
            "decoder": tmp_path / "wdec.safetensors", "controls": tmp_path / "c.csv"}


def _steer(model_dir: Path, inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["steer", "--model", str(model_dir), "--direction", str(inputs["direction"]), "--strengths=-1,0,1",
            "--problems", str(inputs["problems"]), "--out", str(out), *SMALL, *extra]


def _controls(model_dir: Path, inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["controls", "--model", str(model_dir), "--decoder", str(inputs["decoder"]), "--controls",
            str(inputs["controls"]), "--problems-per-feature", "2", "--problems", str(inputs["problems"]),
            "--out", str(out), *SMALL, *extra]


def _scripted_generation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace generation by texts where the answer rules disagree: at strength -1 the answer tag is followed by
    another line (TinyZero's rule finds nothing there, last_tag finds it), at 0 it closes the completion."""
    import interp_sot.experiments.sweep as sweep

    calls: list[int] = []

    def fake(model: Any, tokenizer: Any, prompts: Any, directions: Any, strengths: Any, config: Any, seed: int) -> Any:
        calls.append(len(prompts))
        out = []
        for prompt, s in zip(prompts, strengths.tolist(), strict=True):
            answer = next(v for k, v in SOLUTIONS.items() if k in prompt)
            text = {-1.0: f"<answer> {answer} </answer>\nthat is all", 0.0: f"so <answer> {answer} </answer>",
                    1.0: "<answer> 7 </answer> no\n<answer> 1 </answer> <answer> 2 + 4 </answer>"}[s]
            out.append((text, 10, 4, "stop"))
        return out

    monkeypatch.setattr(sweep, "generate_batch", fake)
    return calls


@pytest.mark.parametrize("rule", ["last_tag", "tinyzero"])
def test_scorer_flag_scores_like_score_completion(rule: str, model_dir: Path, inputs: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scripted_generation(monkeypatch)
    out = tmp_path / "run"
    assert main(_steer(model_dir, inputs, out, "--scorer", rule)) == 0
    assert sum(calls) == 6
    records = read_jsonl(out / "sweep.jsonl")
    for r in records:
        assert r["settings"]["answer_rule"] == rule
        problem = CountdownProblem(r["problem_id"], tuple(r["nums"]), r["target"])
        score = score_completion(r["completion"], problem, rule=rule)  # type: ignore[arg-type]
        assert (r["answer"], r["answer_source"], r["correct"], r["reason"]) == (
            score.answer, score.source, score.correct, score.reason)
    correct = {r["strength"]: sum(x["correct"] for x in records if x["strength"] == r["strength"]) for r in records}
    # the rules differ exactly where the tag is not on the last line
    assert correct == ({-1.0: 2, 0.0: 2, 1.0: 0} if rule == "last_tag" else {-1.0: 0, 0.0: 2, 1.0: 0})


def test_scorer_is_part_of_the_run_identity(model_dir: Path, inputs: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    _scripted_generation(monkeypatch)
    out = tmp_path / "run"
    assert main(_steer(model_dir, inputs, out, "--scorer", "tinyzero")) == 0
    assert main(_steer(model_dir, inputs, out)) == 2  # rerun with the default scorer into the same folder
    assert "answer_rule: tinyzero -> last_tag" in capsys.readouterr().err


def test_controls_scorer(model_dir: Path, inputs: dict[str, Path], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    import interp_sot.experiments.sweep as sweep

    monkeypatch.setattr(sweep, "generate_batch", lambda m, t, prompts, *a: [
        (f"<answer> {next(v for k, v in SOLUTIONS.items() if k in p)} </answer>\nok", 9, 4, "stop") for p in prompts])
    assert main(_controls(model_dir, inputs, tmp_path / "c", "--scorer", "tinyzero")) == 0
    rows = read_jsonl(tmp_path / "c" / "controls.jsonl")
    assert len(rows) == 8 and {r["settings"]["answer_rule"] for r in rows} == {"tinyzero"}
    assert not any(r["correct"] for r in rows)  # the tag is not on the last line
    assert main(_controls(model_dir, inputs, tmp_path / "d")) == 0
    assert all(r["correct"] for r in read_jsonl(tmp_path / "d" / "controls.jsonl"))


def test_tinyzero_split_flag(tmp_path: Path) -> None:
    """--tinyzero-split test takes rows 327,680.. of the train split (here: target = row number)."""
    from interp_sot.cli import build_parser
    from interp_sot.flags import from_flags
    from interp_sot.stages.sources import ProblemSource

    def load_problems(args: argparse.Namespace) -> list[CountdownProblem]:
        return from_flags(ProblemSource, args).load()

    n = 327_680 + 1_024 + 10
    table = pa.table({"target": pa.array(range(n), pa.int64()), "nums": pa.array([[1, 2]] * n)})
    pq.write_table(table, tmp_path / "countdown.parquet")
    argv = ["steer", "--layer", "1", "--out", str(tmp_path / "o"), "--problems", str(tmp_path / "countdown.parquet"),
            "--n-problems", "1024", "--tinyzero-split"]
    problems = load_problems(build_parser().parse_args([*argv, "test"]))
    assert sorted(p.target for p in problems) == list(range(327_680, 328_704))
    assert all(p.problem_id == f"countdown-{p.target}" for p in problems)
    train = load_problems(build_parser().parse_args([*argv, "train"]))
    assert len(train) == 1024 and max(p.target for p in train) < 327_680
    with pytest.raises(SystemExit, match="--tinyzero-split selects rows of a Countdown dataset"):
        load_problems(build_parser().parse_args(["steer", "--layer", "1", "--out", "o", "--tinyzero-split", "test"]))


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading weights or generating fails the test: a plan or a refusal must come first."""
    import interp_sot.experiments.sweep as sweep
    import interp_sot.models as models

    def forbidden(*a: Any, **k: Any) -> Any:
        raise AssertionError("weights loaded or generation started")

    monkeypatch.setattr(models, "load_model", forbidden)
    monkeypatch.setattr(sweep, "generate_batch", forbidden)


def _expected_plan(tiny_llama: Any, model_dir: Path, rows: int, **kw: Any) -> Any:
    """The plan computed here from the loaded model and the prompts (the reference for what the CLI prints)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = max(len(tok(build_prompt(CountdownProblem("p", tuple(p["nums"]), p["target"]), "tinyzero"),
                         add_special_tokens=True).input_ids) for p in PROBLEMS)
    return plan_generation(ModelShape.from_model(tiny_llama), rows=rows, batch_size=4, prompt_tokens=prompt,
                           max_new_tokens=4, dtype="float32", **kw)


def test_plan_prints_and_exits_without_loading(tiny_llama: Any, model_dir: Path, inputs: dict[str, Path],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _no_loading(monkeypatch)
    assert main(_steer(model_dir, inputs, tmp_path / "s", "--plan", "--dtype", "float32")) == 0
    printed = capsys.readouterr().out
    assert _expected_plan(tiny_llama, model_dir, rows=2 * 3).describe() in printed
    assert "rows 6 in 2 batches of 4" in printed
    assert main(_controls(model_dir, inputs, tmp_path / "c", "--plan", "--dtype", "float32",
                          "--device-memory-gib", "80")) == 0
    expected = _expected_plan(tiny_llama, model_dir, rows=4 * 2, device_bytes=int(80 * GIB * 0.9))
    assert expected.describe() in capsys.readouterr().out and "fits" in expected.describe()
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()  # nothing written


def test_batch_that_cannot_fit_is_refused_before_loading(tiny_llama: Any, model_dir: Path, inputs: dict[str, Path],
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _no_loading(monkeypatch)
    plan = _expected_plan(tiny_llama, model_dir, rows=6)
    per_row = (plan.kv_cache_bytes + plan.workspace_bytes) // 4
    gib = (plan.weights_bytes + 1.5 * per_row) / GIB / 0.9  # room for one row and a half
    argv = _steer(model_dir, inputs, tmp_path / "s", "--dtype", "float32", "--device-memory-gib", f"{gib:.12f}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp-sot steer: error: batch 4 x ") and "use a batch size of at most 1" in err
    assert not (tmp_path / "s").exists()  # refused before the run folder was claimed: the rerun starts clean
    assert main(_steer(model_dir, inputs, tmp_path / "s", "--dtype", "float32", "--device-memory-gib", "1e-9")) == 2
    assert "not even one row fits" in capsys.readouterr().err
    assert main(_controls(model_dir, inputs, tmp_path / "c", "--device-memory-gib", "1e-9")) == 2
    assert capsys.readouterr().err.startswith("interp-sot controls: error: batch 4 x ")


def test_stats_plan_and_refusal(tiny_llama: Any, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from features_helpers import make_sae

    make_sae("jumprelu", d_in=32, d_sae=48).save_model(str(tmp_path / "sae"))
    (tmp_path / "corpus.txt").write_text("hello world\nsome text\n")
    _no_loading(monkeypatch)
    base = ["stats", "--model", str(model_dir), "--sae", str(tmp_path / "sae"), "--layer", "1", "--corpus",
            str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "st"), "--device", "cpu", "--dtype", "float32",
            "--batch-tokens", "512", "--chunk-size", "128"]
    assert main([*base, "--plan", "--max-tokens", "5000"]) == 0
    expected = plan_stats(ModelShape.from_model(tiny_llama), tokens=5000, batch_tokens=512, d_sae=48, chunk_size=128,
                          dtype="float32")
    assert expected.describe() in capsys.readouterr().out
    assert main([*base, "--plan"]) == 2
    assert capsys.readouterr().err.startswith("interp-sot stats: error: --plan needs --max-tokens")
    assert main([*base, "--device-memory-gib", "1e-9"]) == 2
    assert capsys.readouterr().err.startswith("interp-sot stats: error: batches of 512 tokens need")
    assert not (tmp_path / "st" / "stage.json").exists()  # claimed (checked first) but nothing written


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_corpus_from_hub_dataset_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset fetched by huggingface-cli (hub cache layout) streams with HF_HUB_OFFLINE=1; a missing one says so."""
    from interp_sot.corpora.reader import open_corpus

    texts = [f"document {i}" for i in range(7)]
    builder.put_repo(tmp_path, "dataset", "org/corpus", {
        "data/train-00000-of-00002.parquet": _parquet(pd.DataFrame({"text": texts[:4]})),
        "data/train-00001-of-00002.parquet": _parquet(pd.DataFrame({"text": texts[4:]})),
        "data/validation-00000-of-00001.parquet": _parquet(pd.DataFrame({"text": ["held out"]})),
    })
    use_hub_cache(monkeypatch, tmp_path)
    assert [d["text"] for d in open_corpus("org/corpus")] == texts
    assert [d["text"] for d in open_corpus("org/corpus", split="validation")] == ["held out"]
    with pytest.raises(ValueError, match="no split 'test'"):
        open_corpus("org/corpus", split="test")
    with pytest.raises(FileNotFoundError, match=r"'org/missing'.*HF_HUB_OFFLINE"):
        open_corpus("org/missing")


def test_missing_hub_model_is_one_clear_line(inputs: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    use_hub_cache(monkeypatch, tmp_path / "empty_hf")
    for extra in (["--plan"], []):
        argv = ["steer", "--model", "org/missing-model", "--direction", str(inputs["direction"]), "--strengths=0",
                "--problems", str(inputs["problems"]), "--out", str(tmp_path / "o"), *SMALL, *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("interp-sot steer: error: model 'org/missing-model' is not in the Hugging Face cache")
        assert "HF_HUB_OFFLINE=1" in err and "huggingface-cli download org/missing-model" in err
