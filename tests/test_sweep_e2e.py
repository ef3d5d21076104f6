"""End-to-end steering sweeps on a tiny random Llama with a character tokenizer (and one SmolLM2 run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import char_tokenizer

import interp_sot.experiments.sweep as sweep_mod
from interp_sot.experiments import (
    ControlFeature,
    GenerationSettings,
    SweepConfig,
    control_rows,
    run_controls,
    run_sweep,
    sweep_rows,
)
from interp_sot.experiments.sweep import _finish
from interp_sot.steering import steer
from interp_sot.tasks.countdown import CountdownProblem, build_prompt, generate_problems

TESTS = Path(__file__).parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tok() -> Any:
    return char_tokenizer()


def greedy(max_new_tokens: int = 6, **kw: Any) -> GenerationSettings:
    return GenerationSettings(do_sample=False, max_new_tokens=max_new_tokens, **kw)


def _directions(model: Any) -> dict[Any, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {7: torch.randn(32, generator=g), "custom": torch.randn(32, generator=g)}


def test_sweep_rows_grid_and_validation() -> None:
    ps = generate_problems(2, seed=0)
    rows = sweep_rows(ps, [7, "x"], [-1, 0, 1])
    assert [r.key for r in rows[:4]] == ["7|-1.0|gen-0-0", "7|0.0|gen-0-0", "7|1.0|gen-0-0", "x|-1.0|gen-0-0"]
    assert len(rows) == 12 and rows[6].problem.problem_id == "gen-0-1"
    with pytest.raises(ValueError, match="duplicates"):
        sweep_rows(ps, [7], [1, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        sweep_rows([], [7], [1])
    with pytest.raises(ValueError, match="batch_size"):
        SweepConfig(layer=1, batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=0)


def test_batched_sweep_equals_one_row_at_a_time(tiny_llama: Any, tok: Any) -> None:
    """Mixed batches (2 features x 3 strengths x 2 problems, batch 5) give what each row gives alone."""
    problems = generate_problems(2, seed=0)
    assert len(build_prompt(problems[0])) != len(build_prompt(problems[1]))  # batches hold left padding
    dirs = _directions(tiny_llama)
    cfg = SweepConfig(layer=1, generation=greedy(6), batch_size=5)
    records = run_sweep(tiny_llama, tok, problems, dirs, [-3, 0, 3], config=cfg, progress=False)
    assert len(records) == 12
    for rec in records:
        prob = next(p for p in problems if p.problem_id == rec.problem_id)
        enc = tok([build_prompt(prob)], return_tensors="pt")
        with steer(tiny_llama, 1, dirs[rec.feature], strength=rec.strength):
            out = tiny_llama.generate(**enc, do_sample=False, max_new_tokens=6, pad_token_id=0)
        expected = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert rec.completion == expected, rec.key
        assert (
            rec.n_new_tokens == 6 and rec.finish_reason == "length" and rec.n_prompt_tokens == len(build_prompt(prob))
        )
        assert rec.settings["layer"] == 1 and rec.settings["generation"]["do_sample"] is False
    by_key = {r.key: r.completion for r in records}
    assert by_key["7|3.0|gen-0-0"] != by_key["7|0.0|gen-0-0"]  # steering changes the output
    assert by_key["7|0.0|gen-0-0"] == by_key["custom|0.0|gen-0-0"]  # s = 0 is the unsteered model


def test_stop_string_cuts_rows_independently(tiny_llama: Any, tok: Any) -> None:
    """A direction along the unembedding of 'd' makes steered rows write 'ddd' and stop; s = 0 rows run on."""
    w = tiny_llama.lm_head.weight[tok.convert_tokens_to_ids("d")].detach()
    cfg = SweepConfig(layer=2, generation=greedy(8, stop_strings=("ddd",)), batch_size=4)
    recs = run_sweep(
        tiny_llama, tok, generate_problems(1, seed=0), {"d": w / w.norm()}, [0, 20], config=cfg, progress=False
    )
    assert (recs[0].finish_reason, recs[0].n_new_tokens) == ("length", 8) and "ddd" not in recs[0].completion
    assert (recs[1].completion, recs[1].finish_reason, recs[1].n_new_tokens) == ("ddd", "stop", 3)
    assert recs[1].answer is None and recs[1].reason == "no answer found" and not recs[1].correct


def test_finish_reasons(tok: Any) -> None:
    ids = tok("ab</answer>xy")["input_ids"]
    assert _finish(tok, ids, {0, 2}, ("</answer>",)) == ("ab</answer>", len(ids), "stop")
    assert _finish(tok, [*ids[:5], 0, 0], {0, 2}, ("</answer>",)) == ("ab</a", 6, "eos")  # pad-filled row
    assert _finish(tok, [*ids[:5], 2, 0], {0, 2}, ("</answer>",)) == ("ab</a", 6, "eos")
    assert _finish(tok, ids[:5], {0, 2}, ("</answer>",)) == ("ab</a", 5, "length")


def _sampled_config(batch_size: int = 3) -> SweepConfig:
    return SweepConfig(
        layer=1, generation=GenerationSettings(max_new_tokens=5, seed=11, temperature=1.0), batch_size=batch_size
    )


def test_resume_after_interrupt_is_identical(
    tiny_llama: Any, tok: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling too: batches re-form exactly and are seeded by their first row, so resuming changes nothing."""
    problems = generate_problems(3, seed=1)
    dirs = _directions(tiny_llama)
    full = run_sweep(
        tiny_llama,
        tok,
        problems,
        dirs,
        [-2, 0, 2],
        config=_sampled_config(),
        out_path=tmp_path / "a.jsonl",
        progress=False,
    )
    calls = {"append": 0, "generate": 0}
    real_append, real_generate = sweep_mod.append_jsonl, sweep_mod.generate_batch

    def dying_append(path: Any, records: Any) -> None:
        calls["append"] += 1
        if calls["append"] == 3:
            with open(path, "a") as fh:
                fh.write(json.dumps(records[0])[:50])  # killed mid-write: a torn line
            raise KeyboardInterrupt
        real_append(path, records)

    monkeypatch.setattr(sweep_mod, "append_jsonl", dying_append)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            tiny_llama,
            tok,
            problems,
            dirs,
            [-2, 0, 2],
            config=_sampled_config(),
            out_path=tmp_path / "b.jsonl",
            progress=False,
        )
    monkeypatch.setattr(sweep_mod, "append_jsonl", real_append)

    def counting_generate(*a: Any, **k: Any) -> Any:
        calls["generate"] += 1
        return real_generate(*a, **k)

    monkeypatch.setattr(sweep_mod, "generate_batch", counting_generate)
    resumed = run_sweep(
        tiny_llama,
        tok,
        problems,
        dirs,
        [-2, 0, 2],
        config=_sampled_config(),
        out_path=tmp_path / "b.jsonl",
        progress=False,
    )
    assert calls["generate"] == 6 - 2  # 18 rows in batches of 3; 2 batches had been saved
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in full]
    assert len({r.completion for r in full}) > 3  # sampling did produce varied traces
    again = run_sweep(
        tiny_llama,
        tok,
        problems,
        dirs,
        [-2, 0, 2],
        config=_sampled_config(),
        out_path=tmp_path / "b.jsonl",
        progress=False,
    )
    assert calls["generate"] == 4 and again == resumed


def test_resume_refuses_other_settings_or_directions(tiny_llama: Any, tok: Any, tmp_path: Path) -> None:
    problems = generate_problems(1, seed=0)
    dirs = _directions(tiny_llama)
    out = tmp_path / "r.jsonl"
    run_sweep(
        tiny_llama,
        tok,
        problems,
        dirs,
        [1],
        config=SweepConfig(layer=1, generation=greedy(2)),
        out_path=out,
        progress=False,
    )
    with pytest.raises(ValueError, match="different settings"):
        run_sweep(
            tiny_llama,
            tok,
            problems,
            dirs,
            [1],
            config=SweepConfig(layer=2, generation=greedy(2)),
            out_path=out,
            progress=False,
        )
    other = {k: v + 1 for k, v in dirs.items()}
    with pytest.raises(ValueError, match="different direction"):
        run_sweep(
            tiny_llama,
            tok,
            problems,
            other,
            [1],
            config=SweepConfig(layer=1, generation=greedy(2)),
            out_path=out,
            progress=False,
        )
    with pytest.raises(ValueError, match=r"no direction given for features \['9'\]"):
        run_sweep(tiny_llama, tok, problems, dirs, [1], features=[9], config=SweepConfig(layer=1), progress=False)


_CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from builders import _build
from test_sweep_e2e import char_tokenizer, _directions, _sampled_config
from interp_sot.experiments import run_sweep
from interp_sot.tasks.countdown import generate_problems
model = _build("llama")
run_sweep(model, char_tokenizer(), generate_problems(6, seed=2), _directions(model), [-2, 0, 2],
          config=_sampled_config(batch_size=1), out_path={out!r}, progress=False)
"""


@pytest.mark.slow
def test_resume_after_sigkill(tiny_llama: Any, tok: Any, tmp_path: Path) -> None:
    """A real process killed with SIGKILL mid-sweep; the resumed log equals an uninterrupted run."""
    out = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD.format(tests=str(TESTS), out=str(out)))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    n_saved = len(out.read_bytes().splitlines())
    assert 2 <= n_saved < 18
    problems, dirs = generate_problems(6, seed=2), _directions(tiny_llama)
    resumed = run_sweep(
        tiny_llama, tok, problems, dirs, [-2, 0, 2], config=_sampled_config(batch_size=1), out_path=out, progress=False
    )
    fresh = run_sweep(
        tiny_llama,
        tok,
        problems,
        dirs,
        [-2, 0, 2],
        config=_sampled_config(batch_size=1),
        out_path=tmp_path / "fresh.jsonl",
        progress=False,
    )
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in fresh]


def test_control_rows_and_run(tiny_llama: Any, tok: Any) -> None:
    problems = generate_problems(6, seed=4)
    feats = [ControlFeature(7, 2.0, "conversational"), ControlFeature("custom", 4.0, "non_conversational")]
    rows = control_rows(feats, problems, problems_per_feature=3, seed=5)
    assert len(rows) == 6 and {r.group for r in rows} == {"conversational", "non_conversational"}
    alone = control_rows(feats[:1], problems, problems_per_feature=3, seed=5)
    assert {r.problem.problem_id for r in alone} == {r.problem.problem_id for r in rows if r.feature == 7}
    order = [p.problem_id for p in problems]
    assert [order.index(r.problem.problem_id) for r in rows] == sorted(order.index(r.problem.problem_id) for r in rows)
    recs = run_controls(
        tiny_llama,
        tok,
        feats,
        problems,
        _directions(tiny_llama),
        config=SweepConfig(layer=1, generation=greedy(3), batch_size=4),
        problems_per_feature=3,
        seed=5,
        progress=False,
    )
    assert [(r.feature, r.strength, r.group) for r in recs] == [(r.feature, r.strength, r.group) for r in rows]
    with pytest.raises(ValueError, match="more than once"):
        control_rows([feats[0], feats[0]], problems)
    with pytest.raises(ValueError, match="only 6 problems"):
        control_rows(feats, problems, problems_per_feature=7)


@pytest.mark.integration
def test_smollm2_sweep_chat_prompt(smollm2: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = smollm2
    problems = [CountdownProblem("p1", (3, 5, 7), 22), CountdownProblem("p2", (2, 4, 9), 17)]
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(model.config.hidden_size, generator=g)
    direction = direction / direction.norm()
    cfg = SweepConfig(layer=10, generation=greedy(20), prompt_style="chat", batch_size=4)
    recs = run_sweep(
        model,
        tokenizer,
        problems,
        {"rand": direction},
        [0, 50],
        config=cfg,
        out_path=tmp_path / "s.jsonl",
        progress=False,
    )
    assert len(recs) == 4 and all(r.prompt.startswith("<|im_start|>") for r in recs)
    assert all(r.prompt.count("<|im_start|>assistant") == 1 for r in recs)
    assert all(1 <= r.n_new_tokens <= 20 and r.finish_reason in ("stop", "eos", "length") for r in recs)
    # s = 0 rows equal plain unsteered greedy generation of the same prompt
    for rec in (r for r in recs if r.strength == 0):
        enc = tokenizer([rec.prompt], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=False, max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)
        assert tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True) == rec.completion
    assert {r.completion for r in recs if r.strength == 50} != {r.completion for r in recs if r.strength == 0}
