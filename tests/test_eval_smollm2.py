"""``interp-sot eval`` on SmolLM2 and the two shipped local lm-eval tasks, against lm-eval's own models.

- At s = 0 it equals lm-eval's plain ``hf`` model on the same weights and batch size (every per-document
  log-likelihood and generation, and the metrics).
- At s != 0 it equals lm-eval's own ``steered`` model loading the ``.pt`` that ``interp-sot export-steer`` wrote:
  per-document log-likelihoods to 1e-5 and identical generations.
The demo's feature 1107 of the shipped SAE in ``resid`` units; one CLI run (two strengths, 10 documents per task)
is shared by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interp_sot.cli import main
from interp_sot.errors import InterpSotError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = "tests/data/lm_eval_tasks"
"""Relative to the repository root, like the tasks' data_files (the tests run there)."""
TASKS = ("interp_sot_addition_mc", "interp_sot_addition_gen")
LIMIT = 10
STRENGTH = 0.2
"""Inside feature 1107's coherent range in resid units (about [-0.15, +0.20] of the median residual norm)."""
FEATURE = 1107
LAYER = 15


@pytest.fixture(scope="module")
def at_root() -> Iterator[None]:
    """At the repository root (where the tasks' data files are found), on one torch thread: a 135M model gains
    little from a second one, and on a busy 2-core machine two threads thrash."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manager(at_root: None) -> Any:
    from interp_sot.evaluation.harness import task_manager

    return task_manager(TASKS_DIR, TASKS)


@pytest.fixture(scope="module")
def spec_path(smollm2: tuple[Any, Any], at_root: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Feature 1107 of the shipped SAE in resid units, judged against SmolLM2's median residual norm at layer 15
    on a few Countdown prompts (as the dose stage measures it), written as a steering.json."""
    from interp_sot.data import embedded_sae_path
    from interp_sot.stages.strengths import residual_norm, run_prompts
    from interp_sot.steering.spec import DirectionSource, SteeringSpec, write_spec
    from interp_sot.tasks.countdown import generate_problems

    model, tokenizer = smollm2
    r = residual_norm(model, tokenizer, run_prompts(generate_problems(8, seed=0), "chat", tokenizer), LAYER)
    spec = SteeringSpec(model="smollm2", d_model=576, layer=LAYER, units="resid", residual_norm=r, unit_norm=r,
                        direction=DirectionSource(feature=FEATURE, sae_path=str(embedded_sae_path())))
    return write_spec(tmp_path_factory.mktemp("spec") / "steering.json", spec)


@pytest.fixture(scope="module")
def run(spec_path: Path, manager: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``interp-sot eval`` at s = 0 and s = 0.2 (the CLI, with the task index shared by the module)."""
    out = tmp_path_factory.mktemp("eval") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("interp_sot.evaluation.harness.task_manager", lambda *a, **k: manager)
        code = main(["eval", "--spec", str(spec_path), f"--strengths=0,{STRENGTH}", "--tasks", ",".join(TASKS),
                     "--include-path", TASKS_DIR, "--limit", str(LIMIT), "--out", str(out)])
    assert code == 0
    return out


def _samples(folder: Path, task: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"samples_{task}.jsonl").read_text().splitlines()]


def _lm_eval_samples(lm: Any, manager: Any) -> dict[str, list[dict[str, Any]]]:
    """Per-document samples of one lm-eval run, through the same JSON conversion as the stage's files."""
    from interp_sot.evaluation.harness import evaluate, samples_jsonl

    results = evaluate(lm, TASKS, manager, limit=LIMIT)
    return {t: [json.loads(line) for line in samples_jsonl(s).splitlines()] for t, s in results["samples"].items()}


def _loglikelihoods(samples: list[dict[str, Any]]) -> list[float]:
    return [float(resp[0][0]) for s in samples for resp in s["resps"]]


def _generations(samples: list[dict[str, Any]]) -> list[str]:
    return [resp[0] for s in samples for resp in s["resps"]]


def test_writes_the_table_plots_and_lm_eval_results(run: Path) -> None:
    import pandas as pd

    table = pd.read_csv(run / "eval.csv")
    assert list(table.columns) == ["task", "metric", "strength", "value", "stderr", "n"]
    assert sorted(zip(table.task, table.metric, table.strength, strict=True)) == sorted(
        (t, m, s) for s in (0.0, STRENGTH) for t, m in zip(TASKS, ("acc", "exact_match/first-number"), strict=True))
    assert set(table.n) == {LIMIT}
    for s in (0.0, STRENGTH):
        results = json.loads((run / f"strength_{s:+.6g}" / "results.json").read_text())
        for row in table[table.strength == s].itertuples():
            metric, _, filt = row.metric.partition("/")
            assert results["results"][row.task][f"{metric},{filt or 'none'}"] == row.value
        assert results["interp_sot"]["strength"] == s and results["interp_sot"]["feature"] == FEATURE
    assert (run / "eval_acc.png").is_file() and (run / "eval_exact_match_first-number.png").is_file()
    assert json.loads((run / "manifest.json").read_text())["stage"] == "eval"


def test_strength_zero_equals_lm_eval_plain_hf(run: Path, manager: Any) -> None:
    from lm_eval.models.huggingface import HFLM

    from interp_sot.models import model_source

    plain = _lm_eval_samples(HFLM(pretrained=model_source("smollm2"), batch_size=8, device="cpu"), manager)
    ours = {t: _samples(run / "strength_+0", t) for t in TASKS}
    assert _loglikelihoods(ours["interp_sot_addition_mc"]) == _loglikelihoods(plain["interp_sot_addition_mc"])
    assert _generations(ours["interp_sot_addition_gen"]) == _generations(plain["interp_sot_addition_gen"])
    assert len(_loglikelihoods(ours["interp_sot_addition_mc"])) == 4 * LIMIT


def test_nonzero_strength_equals_lm_eval_steered_on_the_export(run: Path, spec_path: Path, manager: Any,
                                                               tmp_path: Path) -> None:
    from lm_eval.models.hf_steered import SteeredModel

    from interp_sot.models import model_source

    pt = tmp_path / "steer.pt"
    assert main(["export-steer", "--spec", str(spec_path), "--strength", str(STRENGTH), "--format", "lm-eval",
                 "--out", str(pt)]) == 0
    steered = SteeredModel(pretrained=model_source("smollm2"), steer_path=str(pt), batch_size=8, device="cpu")
    theirs = _lm_eval_samples(steered, manager)
    ours = {t: _samples(run / f"strength_{STRENGTH:+.6g}", t) for t in TASKS}
    ll_ours = _loglikelihoods(ours["interp_sot_addition_mc"])
    ll_theirs = _loglikelihoods(theirs["interp_sot_addition_mc"])
    assert len(ll_ours) == len(ll_theirs) == 4 * LIMIT
    assert max(abs(a - b) for a, b in zip(ll_ours, ll_theirs, strict=True)) <= 1e-5
    assert _generations(ours["interp_sot_addition_gen"]) == _generations(theirs["interp_sot_addition_gen"])
    unsteered = _loglikelihoods(_samples(run / "strength_+0", "interp_sot_addition_mc"))
    assert max(abs(a - b) for a, b in zip(ll_ours, unsteered, strict=True)) > 0.1  # the steering did something


def test_rerun_resumes_without_evaluating(run: Path, spec_path: Path, manager: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before = (run / "eval.csv").read_text()

    def no_evaluation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished strength was evaluated again")

    monkeypatch.setattr("interp_sot.evaluation.harness.task_manager", lambda *a, **k: manager)
    monkeypatch.setattr("interp_sot.stages.eval.evaluate", no_evaluation)
    assert main(["eval", "--spec", str(spec_path), f"--strengths=0,{STRENGTH}", "--tasks", ",".join(TASKS),
                 "--include-path", TASKS_DIR, "--limit", str(LIMIT), "--out", str(run)]) == 0
    assert (run / "eval.csv").read_text() == before


def test_unknown_task_lists_lm_eval_close_matches(spec_path: Path, manager: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The close matches come from lm-eval's TaskManager (here over the local tasks: indexing all of lm-eval's
    ~15,000 tasks costs ~10 s)."""
    monkeypatch.setattr("interp_sot.evaluation.harness.task_manager", lambda *a, **k: manager)
    code = main(["eval", "--spec", str(spec_path), "--strengths=0", "--tasks", "interp_sot_addition_mcq",
                 "--include-path", TASKS_DIR, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "unknown lm-eval task 'interp_sot_addition_mcq' (close matches: interp_sot_addition_mc" in err


def test_spec_of_another_width_is_refused(smollm2: tuple[Any, Any], tmp_path: Path, manager: Any,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from interp_sot.stages.eval import EvalConfig, eval_stage
    from interp_sot.steering import save_direction
    from interp_sot.steering.spec import DirectionSource, SteeringSpec, write_spec

    save_direction(tmp_path / "v.safetensors", torch.ones(64))
    spec = SteeringSpec(model="smollm2", d_model=64, layer=LAYER, direction=DirectionSource(vector="v.safetensors"))
    path = write_spec(tmp_path / "steering.json", spec)
    with pytest.raises(InterpSotError, match=r"made for d_model 64 .* the model has d_model 576"):
        eval_stage(*smollm2, spec, EvalConfig(tasks=TASKS, strengths=(0.0,)), tmp_path / "run", manager=manager)
    monkeypatch.setattr("interp_sot.evaluation.harness.task_manager", lambda *a, **k: manager)
    monkeypatch.chdir(ROOT)
    assert main(["eval", "--spec", str(path), "--strengths=1", "--tasks", TASKS[0], "--include-path", TASKS_DIR,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "made for d_model 64" in err and "d_model 576" in err
