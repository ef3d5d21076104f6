"""Run directories that cannot lie (issue 17): every case a hostile user found, as a test.

1. stats rerun into the same --out with another corpus (complete or partial checkpoint) is refused;
2. steer rerun after the problems file changed (same name, new numbers) is refused;
3. an unusable --out fails before the model is loaded;
4. a torn last line of sweep.jsonl resumes to the bitwise uninterrupted run (original batch boundaries);
6. a mistyped local corpus path is reported missing, never looked up on the Hub;
7. an SAE trained on another layer is refused unless --allow-layer-mismatch;
8. CLI errors are one line ``interp-sot <stage>: error: ...`` (traceback with --debug); a stats directory cut
   between two files is reported as unfinished, not as a keep_contexts problem.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from features_helpers import collect_setup

from interp_sot.cli import main

TEXTS = ["Hi there. Oh, I see!", "Wait\nyes no maybe.", "We think so. Right? Hmm ok.", "Oh no", "So. Well."]
OTHER = ["The cell makes ATP.", "Python lists are mutable.", "A loop repeats code.", "Oh, really?", "Fine."]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rundirs")
    model, tok, sae = collect_setup(1)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    sae.cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    sae.save_model(root / "sae")
    for name, texts in (("a.jsonl", TEXTS), ("b.jsonl", OTHER)):
        (root / name).write_text("".join(json.dumps({"text": t, "conversational": i % 2 == 0}) + "\n"
                                         for i, t in enumerate(texts)))
    return root


def stats_argv(root: Path, out: Path, corpus: str = "a.jsonl", *extra: str) -> list[str]:
    return ["stats", "--model", str(root / "model"), "--sae", str(root / "sae"), "--layer", "1", "--out", str(out),
            "--corpus", str(root / corpus), "--top-k", "3", "--batch-tokens", "64", "--no-progress", "--device",
            "cpu", "--metadata-field", "conversational", *extra]


def test_stats_rerun_with_another_corpus_is_refused(saved: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "stats"
    assert main(stats_argv(saved, out)) == 0
    before = (out / "stats.safetensors").read_bytes()
    assert main(stats_argv(saved, out, "b.jsonl")) == 2
    err = capsys.readouterr().err
    assert "interp-sot stats: error:" in err and "inputs.corpus" in err and "new output folder" in err
    assert (out / "stats.safetensors").read_bytes() == before  # nothing was overwritten
    # a partial checkpoint (max_tokens) is refused as well, instead of skipping the new corpus's first documents
    part = tmp_path / "partial"
    assert main(stats_argv(saved, part, "a.jsonl", "--max-tokens", "10", "--checkpoint-every", "8")) == 0
    assert main(stats_argv(saved, part, "b.jsonl", "--max-tokens", "10", "--checkpoint-every", "8")) == 2


def test_unusable_out_fails_before_the_model_loads(saved: Path, tmp_path: Path, monkeypatch: Any,
                                                   capsys: Any) -> None:
    def no_load(*a: Any, **k: Any) -> Any:
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr("interp_sot.models.load_model", no_load)
    (tmp_path / "taken").write_text("a file")
    assert main(stats_argv(saved, tmp_path / "taken")) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert main(stats_argv(saved, tmp_path / "taken" / "sub")) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_sae_of_another_layer_is_refused_unless_allowed(saved: Path, tmp_path: Path, capsys: Any) -> None:
    argv = stats_argv(saved, tmp_path / "s")
    argv[argv.index("--layer") + 1] = "0"
    assert main(argv) == 2
    assert "blocks.1.hook_resid_post" in capsys.readouterr().err
    assert main([*argv, "--allow-layer-mismatch"]) == 0


def test_mistyped_corpus_path_is_missing_not_a_hub_lookup(saved: Path, tmp_path: Path, capsys: Any) -> None:
    from interp_sot.corpora.reader import open_corpus

    with pytest.raises(FileNotFoundError, match="no such file"):
        open_corpus("bad/does_not_exist.jsonl")
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_corpus("bad/nested/corpus")
    argv = stats_argv(saved, tmp_path / "s")
    argv[argv.index("--corpus") + 1] = "bad/does_not_exist.jsonl"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Hub" not in err and "Traceback" not in err


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path, capsys: Any) -> None:
    argv = ["analyze", "--sweep", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "a")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp-sot analyze: error:") and "table not found" in err and "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", *argv])


def test_stats_cut_between_two_files_is_unfinished_not_a_contexts_problem(saved: Path, tmp_path: Path,
                                                                         capsys: Any) -> None:
    out = tmp_path / "stats"
    assert main(stats_argv(saved, out)) == 0
    (out / "manifest.json").unlink()  # killed after stats.safetensors, before contexts and the manifest
    (out / "contexts.safetensors").unlink()
    assert main(["screen", "--stats", str(out), "--out", str(tmp_path / "screen"), "--k", "3"]) == 2
    err = capsys.readouterr().err
    assert "unfinished stats run" in err and "keep_contexts" not in err
    assert main(stats_argv(saved, out)) == 0  # rerunning the stage finishes it
    assert main(["screen", "--stats", str(out), "--out", str(tmp_path / "screen"), "--k", "3"]) == 0


# -- steer: problems identity and torn-line resume ---------------------------------------------------------


@pytest.fixture
def model_dir(tiny_llama: Any, tmp_path: Path) -> Path:
    from builders import char_tokenizer

    path = tmp_path / "tiny"
    tiny_llama.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


def _problems(path: Path, numbers: list[list[int]]) -> Path:
    path.write_text("".join(json.dumps({"nums": n, "target": sum(n)}) + "\n" for n in numbers))
    return path


def test_steer_rerun_after_the_problems_changed_is_refused(model_dir: Path, tmp_path: Path, capsys: Any) -> None:
    from interp_sot.steering import save_direction

    save_direction(tmp_path / "d.safetensors", torch.ones(32))
    problems = _problems(tmp_path / "problems.jsonl", [[1, 2, 3], [4, 5, 6]])
    argv = ["steer", "--model", str(model_dir), "--direction", str(tmp_path / "d.safetensors"), "--strengths=0,2",
            "--layer", "1", "--problems", str(problems), "--n-problems", "2", "--max-new-tokens", "3", "--greedy",
            "--batch-size", "4", "--no-report", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    _problems(problems, [[7, 8, 9], [4, 5, 6]])  # same file, same positional ids, new numbers
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "interp-sot steer: error:" in err and "problems.sha256" in err
    rows = [json.loads(x) for x in (tmp_path / "run" / "sweep.jsonl").read_text().splitlines()]
    assert {tuple(r["nums"]) for r in rows} == {(1, 2, 3), (4, 5, 6)}


def test_run_rows_checks_problem_content_not_only_ids(tiny_llama: Any, tmp_path: Path) -> None:
    from builders import char_tokenizer

    from interp_sot.experiments import GenerationSettings, SweepConfig, run_sweep
    from interp_sot.tasks.countdown import CountdownProblem

    cfg = SweepConfig(layer=1, generation=GenerationSettings(max_new_tokens=2, do_sample=False), batch_size=2)
    first = [CountdownProblem("p0", (1, 2, 3), 6)]
    d = {"f": torch.ones(32)}
    run_sweep(tiny_llama, char_tokenizer(), first, d, [0.0], config=cfg, out_path=tmp_path / "s.jsonl",
              progress=False)
    with pytest.raises(ValueError, match=r"problem p0 = \[1, 2, 3\] -> 6, but that problem is now"):
        run_sweep(tiny_llama, char_tokenizer(), [CountdownProblem("p0", (1, 2, 4), 7)], d, [0.0], config=cfg,
                  out_path=tmp_path / "s.jsonl", progress=False)


@pytest.mark.parametrize("keep_lines", [5.5, 2.5])  # torn inside the last batch / inside the first batch
def test_torn_sweep_log_resumes_to_the_uninterrupted_run(tiny_llama: Any, tmp_path: Path, keep_lines: float) -> None:
    from builders import char_tokenizer

    from interp_sot.experiments import GenerationSettings, SweepConfig, run_sweep
    from interp_sot.tasks.countdown import generate_problems

    torch.manual_seed(0)
    tok = char_tokenizer()
    cfg = SweepConfig(layer=1, generation=GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=3),
                      batch_size=4)
    problems = generate_problems(3, seed=1)
    d = {"f": torch.randn(32)}
    full = tmp_path / "full.jsonl"
    run_sweep(tiny_llama, tok, problems, d, [-2.0, 2.0], config=cfg, out_path=full, progress=False)
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 6
    whole = int(keep_lines)
    torn = tmp_path / "torn.jsonl"
    torn.write_text("".join(lines[:whole]) + lines[whole][: len(lines[whole]) // 2])
    run_sweep(tiny_llama, tok, problems, d, [-2.0, 2.0], config=cfg, out_path=torn, progress=False)
    assert torn.read_bytes() == full.read_bytes()


def test_stage_directories_copy_and_resume(saved: Path, tmp_path: Path) -> None:
    """A run directory moved elsewhere still resumes: identities hold content hashes, not locations."""
    out = tmp_path / "stats"
    assert main(stats_argv(saved, out)) == 0
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    assert main(stats_argv(saved, moved)) == 0


def test_mistyped_problems_path_is_missing_not_a_hub_lookup(model_dir: Path, tmp_path: Path, capsys: Any,
                                                            monkeypatch: Any) -> None:
    from interp_sot.steering import save_direction

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()  # the user's data folder exists; the file in it is mistyped
    save_direction(tmp_path / "d.safetensors", torch.ones(32))
    argv = ["steer", "--model", str(model_dir), "--direction", str(tmp_path / "d.safetensors"), "--strengths=0,2",
            "--layer", "1", "--problems", "bad/nope_problems", "--n-problems", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp-sot steer: error:") and "not found" in err and "Hub" not in err
    assert not (tmp_path / "run").exists()  # nothing was claimed or written


def test_relative_run_directory_finishes(tmp_path: Path, monkeypatch: Any) -> None:
    """Stages name their outputs as ``out / name``; with a relative ``out`` (the demo's ``runs/demo``) the
    manifest must still find them (found by running the demo: it failed at its screen stage)."""
    from interp_sot.stages.rundir import RunDirError, begin_stage, finish_stage

    monkeypatch.chdir(tmp_path)
    out = Path("runs/demo/screen")
    begin_stage(out, "screen", {"k": 1})
    (out / "screen.csv").write_text("x\n")
    (out / "summary.json").write_text("{}")
    manifest = finish_stage(out, "screen", [out / "screen.csv", "summary.json", (tmp_path / out / "screen.csv")])
    assert json.loads(manifest.read_text())["files"] == ["screen.csv", "summary.json"]
    with pytest.raises(RunDirError, match="not inside the run directory"):
        finish_stage(out, "screen", [tmp_path / "elsewhere.csv"])
