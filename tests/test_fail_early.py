"""Fail early and never silently (issue 22): every case the hostile user found, as a test, in one list.

Cheap checks before anything heavy (each run against a model folder whose ``model.safetensors`` is garbage, so
reading the weights would fail with another error: the error asserted proves the weights were never read):
 1. steer --strengths=1,1 / nan / inf,0 / = : exit 2, one line (was exit 1)
 2. controls --match-run /nonexistent: exit 2 (was exit 1)
 3. --out that is a regular file (steer, controls, dose, stats): the error names --out
 4. a rerun with changed settings (steer): refused naming the changed setting
 5. steer --units max_act --stats /nonexistent: refused before the SAE or the model loads
 6. measure --run /nonexistent: refused before the model loads; a changed measure rerun is refused likewise
 7. a refused measure at the end of steer is an error (exit 2), not a printed warning with exit 0
 8. analyze --sweep /nonexistent --out X writes nothing into X, so the corrected rerun runs
 9. a corpus with invalid UTF-8: the error names file and line, and no stage.json is left behind
One error path:
10. a library bug (a ValueError from inside the work) keeps its traceback; --debug shows expected errors' too
Locked run directories:
11. a second process writing into a claimed run directory is refused at once, naming the holder's pid; the lock
    is released when the holder dies; within one process the claim is re-entrant
    (under torchrun the ranks share rank 0's claim while any other process is refused: test_torchrun_claim.py)
The Python stage API as strict as the CLI:
12. stats_stage with corpus B after corpus A (no inputs given) is refused; a one-pass iterator asks for inputs
Bounded inputs:
13. a prompt longer than the model's context is refused before generation, naming the problem id and token count
14. targets and numbers stay integers (12345678901234567891 exact); a float beyond 2**53 and a negative target are
    refused; a 1 MB target is cut in the error
15. truncated documents are counted (logged once) and recorded in the stats' info
Checks that can fail:
16. the GPU check's path agreement and kernel mismatch fail its exit status
    (the real judge server's replies are non-empty, and its verdicts parse into the screen table:
    test_judging_real_server.py; a bad --prompt-file is a one-line error: test_judging_prompts.py)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import _common, char_tokenizer
from features_helpers import collect_setup

from interp_sot.cli import main
from interp_sot.errors import InterpSotError
from interp_sot.stages.rundir import RunDirError, claim_dir, release_dir

CONTEXT = 2048
"""The test model's context: Countdown prompts (~560 characters) fit, a 10,000-number problem does not."""
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``good``: a tiny Llama with a 2,048-token context; ``corrupt``: the same config and tokenizer with garbage
    weights; plus a decoder matrix and a problem file."""
    import transformers as tf

    root = tmp_path_factory.mktemp("fail_early")
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(**_common(max_position_embeddings=CONTEXT))).eval()
    tok = char_tokenizer()
    for name in ("good", "corrupt"):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    (root / "corrupt" / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file" * 8)
    from interp_sot.steering import save_direction

    save_direction(root / "wdec.safetensors", torch.randn(6, 32))
    save_direction(root / "d.safetensors", torch.ones(32))
    (root / "problems.jsonl").write_text("".join(json.dumps({"nums": n, "target": sum(n)}) + "\n"
                                                 for n in ([1, 2, 3], [4, 5, 6])))
    return {"root": root, "good": root / "good", "corrupt": root / "corrupt"}


def _steer(f: dict[str, Path], model: str, out: Path, *extra: str) -> list[str]:
    return ["steer", "--model", str(f[model]), "--direction", str(f["root"] / "d.safetensors"), "--strengths=0,2",
            "--layer", "1", "--problems", str(f["root"] / "problems.jsonl"), "--n-problems", "2",
            "--max-new-tokens", "3", "--greedy", "--batch-size", "4", "--out", str(out), *extra]


def _one_line_error(capsys: pytest.CaptureFixture[str], stage: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars of the work before it
    assert err.startswith(f"interp-sot {stage}: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# 1 --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "message"), [
    ("1,1", "listed twice"), ("nan", "finite"), ("inf,0", "finite"), ("", "at least one value")])
def test_bad_strengths_exit_2_with_one_line(folders, tmp_path, capsys, value, message) -> None:
    argv = _steer(folders, "corrupt", tmp_path / "o")
    argv[argv.index("--strengths=0,2")] = f"--strengths={value}"
    assert main(argv) == 2
    assert message in _one_line_error(capsys, "steer")
    assert not (tmp_path / "o").exists()


# 2 --------------------------------------------------------------------------------------------------------------
def test_controls_match_run_missing_exits_2(folders, tmp_path, capsys) -> None:
    argv = ["controls", "--model", str(folders["corrupt"]), "--decoder", str(folders["root"] / "wdec.safetensors"),
            "--layer", "1", "--controls", str(tmp_path / "c.csv"), "--strength-mode", "matched", "--match-run",
            str(tmp_path / "nonexistent"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--match-run" in _one_line_error(capsys, "controls")


# 3 --------------------------------------------------------------------------------------------------------------
def test_out_that_is_a_file_is_named_before_any_weights_load(folders, tmp_path, capsys) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file")
    root = folders["root"]
    (tmp_path / "c.csv").write_text("feature,strength,group\n1,2.0,conversational\n2,2.0,non_conversational\n")
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"text": "hello there"}) + "\n")
    sae = tmp_path / "sae"
    collect_setup(1)[2].save_model(sae)
    cases = {
        "steer": _steer(folders, "corrupt", taken),
        "controls": ["controls", "--model", str(folders["corrupt"]), "--decoder", str(root / "wdec.safetensors"),
                     "--layer", "1", "--controls", str(tmp_path / "c.csv"), "--units", "unit",
                     "--problems-per-feature", "1", "--problems", str(root / "problems.jsonl"), "--n-problems", "2",
                     "--out", str(taken)],
        "dose": ["dose", "--model", str(folders["corrupt"]), "--decoder", str(root / "wdec.safetensors"), "--layer",
                 "1", "--feature", "3", "--n-problems", "2", "--max-new-tokens", "4", "--prompt-style", "tinyzero",
                 "--out", str(taken)],
        "stats": ["stats", "--model", str(folders["corrupt"]), "--sae", str(sae), "--layer", "1", "--corpus",
                  str(tmp_path / "corpus.jsonl"), "--device", "cpu", "--out", str(taken)],
    }
    for stage, argv in cases.items():
        assert main(argv) == 2, stage
        err = _one_line_error(capsys, stage)
        assert "--out" in err and "is a file" in err, err


# 4 --------------------------------------------------------------------------------------------------------------
def test_changed_rerun_is_refused_naming_the_setting_before_the_weights_load(folders, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_steer(folders, "good", out, "--no-report")) == 0
    stage = (out / "stage.json").read_bytes()
    capsys.readouterr()
    # the same model folder with its weights corrupted would fail to load: the refusal must come first
    corrupt_copy = tmp_path / "good_corrupt"
    import shutil

    shutil.copytree(folders["corrupt"], corrupt_copy)
    argv = _steer(folders, "good", out, "--no-report", "--temperature", "0.3")
    argv[argv.index("--model") + 1] = str(corrupt_copy)
    assert main(argv) == 2
    err = _one_line_error(capsys, "steer")
    assert "temperature" in err and "--out" in err
    assert (out / "stage.json").read_bytes() == stage  # nothing rewritten


# 5 --------------------------------------------------------------------------------------------------------------
def test_max_act_with_missing_stats_fails_before_loading(folders, tmp_path, capsys, monkeypatch) -> None:
    def no_sae(*a: Any, **k: Any) -> Any:
        raise AssertionError("the SAE was loaded before --stats was checked")

    monkeypatch.setattr("interp_sot.steering.load_direction", no_sae)
    argv = ["steer", "--model", str(folders["corrupt"]), "--decoder", str(folders["root"] / "wdec.safetensors"),
            "--features", "3", "--units", "max_act", "--stats", str(tmp_path / "nonexistent"), "--layer", "1",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--stats" in _one_line_error(capsys, "steer")
    assert not (tmp_path / "o").exists()


# 6, 7 -----------------------------------------------------------------------------------------------------------
def test_measure_refusals_are_errors_before_the_model_loads(folders, tmp_path, capsys) -> None:
    assert main(["measure", "--run", str(tmp_path / "nonexistent"), "--model", str(folders["corrupt"]), "--layer",
                 "1", "--no-diversity"]) == 2
    assert "no such run directory" in _one_line_error(capsys, "measure")
    run = tmp_path / "run"
    assert main(_steer(folders, "good", run, "--no-report")) == 0
    assert main(["measure", "--run", str(run), "--model", str(folders["good"]), "--layer", "1",
                 "--no-diversity"]) == 0
    capsys.readouterr()
    assert main(["measure", "--run", str(run), "--model", str(folders["corrupt"]), "--layer", "1", "--no-diversity",
                 "--threshold", "0.5"]) == 2
    assert "config.threshold" in _one_line_error(capsys, "measure")
    # at the end of steer: a measure that is refused is an error with exit 2, not a warning
    other = tmp_path / "other"
    from interp_sot.stages.measure import MEASURES_DIR
    from interp_sot.stages.rundir import begin_stage

    begin_stage(other / MEASURES_DIR, "measure", {"layer": 99})  # a measure of other settings already there
    release_dir(other / MEASURES_DIR)
    capsys.readouterr()
    assert main(_steer(folders, "good", other)) == 2
    err = _one_line_error(capsys, "steer")
    assert "measuring its traces failed" in err and "--no-measure" in err and "config.layer" in err
    assert (other / "manifest.json").is_file()  # the sweep itself finished


# 8 --------------------------------------------------------------------------------------------------------------
def test_analyze_typo_does_not_claim_the_output_folder(tmp_path, capsys) -> None:
    out = tmp_path / "analysis"
    assert main(["analyze", "--sweep", str(tmp_path / "nonexistent"), "--out", str(out)]) == 2
    assert "--sweep" in _one_line_error(capsys, "analyze")
    assert not (out / "stage.json").exists()


# 9 --------------------------------------------------------------------------------------------------------------
def test_invalid_utf8_corpus_names_file_and_line(folders, tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"fine line\nsecond \xff\xfe bad\n")
    sae = tmp_path / "sae"
    collect_setup(1)[2].save_model(sae)
    out = tmp_path / "stats"
    assert main(["stats", "--model", str(folders["corrupt"]), "--sae", str(sae), "--layer", "1", "--corpus",
                 str(corpus), "--device", "cpu", "--out", str(out)]) == 2
    err = _one_line_error(capsys, "stats")
    assert "corpus.txt" in err and "line 2" in err and "UTF-8" in err
    assert not (out / "stage.json").exists()
    from interp_sot.io import iter_jsonl

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(InterpSotError, match=r"bad\.jsonl: line 2 is not valid UTF-8"):
        list(iter_jsonl(bad))


# 10 -------------------------------------------------------------------------------------------------------------
def test_library_bugs_keep_their_traceback(folders, tmp_path, monkeypatch, capsys) -> None:
    def bug(*a: Any, **k: Any) -> Any:
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr("interp_sot.stages.steer.steer_stage", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        main(_steer(folders, "good", tmp_path / "o", "--no-report"))
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(RunDirError):
        main(["--debug", *_steer(folders, "corrupt", taken)])


# 11 -------------------------------------------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_holder(folders, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    code = ("import sys, time; from pathlib import Path; from interp_sot.stages.rundir import claim_dir; "
            "claim_dir(Path(sys.argv[1])); print('claimed', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        assert main(_steer(folders, "corrupt", out)) == 2
        err = _one_line_error(capsys, "steer")
        assert f"pid {holder.pid}" in err and "in use by another process" in err
        assert not (out / "stage.json").exists()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel dropped the dead holder's lock
        try:
            assert claim_dir(out) is True
            break
        except RunDirError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert claim_dir(out) is False  # re-entrant in this process
    release_dir(out)


# 12 -------------------------------------------------------------------------------------------------------------
def test_stats_stage_without_inputs_refuses_another_corpus(tmp_path) -> None:
    from interp_sot.features.collect import CollectConfig
    from interp_sot.io import iter_jsonl
    from interp_sot.stages.stats import StatsConfig, stats_stage

    model, tok, sae = collect_setup(1)
    sae.cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    for name, texts in (("a", ["Hi there. Oh, I see!", "We think so."]), ("b", ["The cell makes ATP.", "Fine."])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cfg = StatsConfig(1, CollectConfig(batch_tokens=64, top_k=2, progress=False))
    stats_stage(model, tok, sae, iter_jsonl(tmp_path / "a.jsonl"), cfg, tmp_path / "out")
    with pytest.raises(RunDirError, match=r"inputs\.corpus\.sha256"):
        stats_stage(model, tok, sae, iter_jsonl(tmp_path / "b.jsonl"), cfg, tmp_path / "out")
    with pytest.raises(InterpSotError, match="pass inputs="):
        stats_stage(model, tok, sae, iter(["a generator"]), cfg, tmp_path / "other")
    assert stats_stage(model, tok, sae, iter_jsonl(tmp_path / "a.jsonl"), cfg, tmp_path / "out") is not None


# 13 -------------------------------------------------------------------------------------------------------------
def test_prompt_longer_than_the_context_is_refused_naming_problem_and_tokens(folders, tmp_path, capsys) -> None:
    problems = tmp_path / "huge.jsonl"
    problems.write_text(json.dumps({"problem_id": "huge", "nums": list(range(1, 1001)), "target": 7}) + "\n")
    argv = _steer(folders, "corrupt", tmp_path / "o")
    argv[argv.index("--problems") + 1] = str(problems)
    assert main(argv) == 2
    err = _one_line_error(capsys, "steer")
    assert "problem huge" in err and f"context of {CONTEXT:,} tokens" in err
    n = int(err.split("its prompt is ")[1].split(" tokens")[0].replace(",", ""))
    from interp_sot.tasks.countdown import build_prompt, load_tinyzero

    assert n == len(char_tokenizer()(build_prompt(load_tinyzero(problems)[0]))["input_ids"]) > CONTEXT
    assert not (tmp_path / "o").exists()
    # the Python stage refuses it too, before it claims anything
    import transformers as tf

    from interp_sot.experiments import GenerationSettings, SweepConfig
    from interp_sot.stages.steer import steer_stage

    model = tf.LlamaForCausalLM(tf.LlamaConfig(**_common(max_position_embeddings=CONTEXT))).eval()
    with pytest.raises(InterpSotError, match="problem huge: its prompt is"):
        steer_stage(model, char_tokenizer(), load_tinyzero(problems), {"d": torch.ones(32)}, [0.0],
                    SweepConfig(layer=1, generation=GenerationSettings(max_new_tokens=2)), tmp_path / "py")
    assert not (tmp_path / "py").exists()


# 14 -------------------------------------------------------------------------------------------------------------
def test_numbers_stay_integers_and_bad_targets_are_refused(tmp_path, folders, capsys) -> None:
    from interp_sot.tasks.countdown import build_prompt, load_tinyzero

    big = 12345678901234567891
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"nums": [1, 2], "target": big}) + "\n"
                    + json.dumps({"nums": ["3", 4.0], "target": "12"}) + "\n")
    first, second = load_tinyzero(path)
    assert first.target == big and str(big) in build_prompt(first)
    assert second.nums == (3, 4) and second.target == 12
    for target, message in ((2.0**60, "beyond 2\\*\\*53"), (-5, "negative"), (1.5, "not an integer")):
        path.write_text(json.dumps({"nums": [1, 2], "target": target}) + "\n")
        with pytest.raises(InterpSotError, match=message):
            load_tinyzero(path)
    path.write_text(json.dumps({"nums": [1, 2], "target": "x" * 1_000_000}) + "\n")
    argv = _steer(folders, "corrupt", tmp_path / "o")
    argv[argv.index("--problems") + 1] = str(path)
    assert main(argv) == 2
    err = _one_line_error(capsys, "steer")
    assert "not a number" in err and len(err) < 600


# 15 -------------------------------------------------------------------------------------------------------------
def test_truncated_documents_are_counted_in_the_stats_info(tmp_path, caplog) -> None:
    import logging

    from interp_sot.features.collect import CollectConfig
    from interp_sot.stages.stats import StatsConfig, stats_stage

    model, tok, sae = collect_setup(1)
    sae.cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    texts = ["short one", "y" * 100, "z" * 50, "ok"]  # char tokens + BOS: two documents exceed max_length 40
    cfg = StatsConfig(1, CollectConfig(batch_tokens=128, max_length=40, top_k=2, progress=False))
    with caplog.at_level(logging.INFO, logger="interp_sot"):
        result = stats_stage(model, tok, sae, texts, cfg, tmp_path / "out")
    assert result is not None and result.stats.info["truncated_documents"] == 2
    cut_logs = [r for r in caplog.records if "is cut to it" in r.getMessage()]
    assert len(cut_logs) == 1  # logged once, with the total in the stage's warning
    assert any("2 document(s) were cut" in r.getMessage() for r in caplog.records)
    summary = json.loads((tmp_path / "out" / "manifest.json").read_text())["summary"]
    assert summary["truncated_documents"] == 2
    again = stats_stage(model, tok, sae, texts, cfg, tmp_path / "out")  # read back: the count stays
    assert again is not None and again.stats.info["truncated_documents"] == 2


# 16 -------------------------------------------------------------------------------------------------------------
def test_gpu_check_fails_on_disagreement() -> None:
    bench_dir = ROOT / "benchmarks" / "gpu"
    sys.path.insert(0, str(bench_dir))
    try:
        spec = importlib.util.spec_from_file_location("gpu_bench_for_test", bench_dir / "bench.py")
        assert spec is not None and spec.loader is not None
        bench = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = bench  # its dataclasses look their module up
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(bench_dir))
        sys.modules.pop("gpu_bench_for_test", None)
    ok = {"shapes": {"d_sae": 32768},
          "sections": {"stats": {"paths_agree": True, "kernel": {"count_mismatches": 3, "max_rel_diff": 1e-3}}}}
    assert bench.failed_checks(ok) == []
    paths = json.loads(json.dumps(ok))
    paths["sections"]["stats"]["paths_agree"] = False
    assert len(bench.failed_checks(paths)) == 1
    kernel = json.loads(json.dumps(ok))
    kernel["sections"]["stats"]["kernel"] = {"count_mismatches": 500, "max_rel_diff": float("nan")}
    assert len(bench.failed_checks(kernel)) == 2
