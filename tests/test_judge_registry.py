"""The judge-backend registry (``interp_sot.judging.registry``): a toy backend registered in the test reaches
``--judge``'s help, the ``screen`` and ``steer`` commands, the analysis tables and the report, with nothing else
changed. The toy's replies are deterministic functions of what it is shown, so every value can be checked where
it lands.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from screening_fakes import CONVERSATIONAL_TEXT, brute_force_stats, random_corpus
from test_screening_cli import FakeContexts

from interp_sot.cli import main
from interp_sot.errors import InterpSotError
from interp_sot.judging.base import Judge, Message
from interp_sot.judging.registry import (
    JUDGE_BACKENDS,
    can_code_behaviours,
    parse_judge_spec,
    register_judge_backend,
    spec_help,
    unregister_judge_backend,
)
from interp_sot.judging.spec import make_judge
from interp_sot.screening.conversation_ratio import ratio_from_labels
from interp_sot.screening.screen import load_table
from interp_sot.stages import screen_run
from interp_sot.steering import save_direction

pytestmark = pytest.mark.usefixtures("one_thread")

LEVEL = 7
"""The toy's argument (``--judge toy:7``): the count it gives every category but verification."""


def toy_verification(trace: str) -> int:
    """The toy's verification count: a deterministic function of the trace it was shown."""
    return sum(map(ord, trace)) % 10


class ToyJudge:
    """Implements the ``Judge`` protocol: scores excerpts and counts behaviours by fixed rules."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.calls = 0

    @property
    def name(self) -> str:
        return f"toy:{self.level}"

    def complete(self, messages: list[Message]) -> str:
        self.calls += 1
        user = messages[-1]["content"]
        if "### Excerpt" in user:  # conversational_score: every excerpt, conversational or not
            excerpts = re.split(r"^### Excerpt \d+\n", user, flags=re.MULTILINE)[1:]
            return json.dumps({"scores": [10 * self.level if CONVERSATIONAL_TEXT in e else 0 for e in excerpts]})
        # behaviour coding: the keys the prompt asks for, counts by rule
        keys = re.findall(r'"(\w+)"', user.rsplit("keys", 1)[1])
        trace = user.split("<trace>\n", 1)[1].rsplit("\n</trace>", 1)[0]
        return json.dumps({k: toy_verification(trace) if k == "verification" else self.level for k in keys})


def make_toy(argument: str, **options: Any) -> ToyJudge:
    if options:
        raise InterpSotError(f"the toy judge takes no options, got {sorted(options)}")
    if not argument.isdigit():
        raise InterpSotError(f"toy:LEVEL needs a whole number, got {argument!r}")
    return ToyJudge(int(argument))


@pytest.fixture
def toy() -> Iterator[None]:
    register_judge_backend("toy", make_toy, argument="LEVEL", help="deterministic test judge")
    try:
        yield
    finally:
        unregister_judge_backend("toy")


def test_registry_builds_lists_and_refuses(toy) -> None:
    judge = make_judge(" toy:4 ")
    assert isinstance(judge, ToyJudge) and isinstance(judge, Judge) and judge.name == "toy:4"
    assert "'toy:LEVEL' (deterministic test judge)" in spec_help()
    assert list(JUDGE_BACKENDS)[:4] == ["labels", "heuristic", "openai", "hf"]  # the built-ins, registered alike
    assert parse_judge_spec("hf:some/model")[1] == "some/model" and can_code_behaviours("toy:1")
    assert not can_code_behaviours("heuristic") and not can_code_behaviours("labels")
    with pytest.raises(InterpSotError, match=r"unknown judge spec 'gpt4'; registered: 'labels', .*'toy:LEVEL'"):
        make_judge("gpt4")
    with pytest.raises(InterpSotError, match="needs an argument; write toy:LEVEL"):
        make_judge("toy")
    with pytest.raises(InterpSotError, match="'heuristic' takes no argument"):
        make_judge("heuristic:x")
    with pytest.raises(InterpSotError, match="whole number"):
        make_judge("toy:x")
    with pytest.raises(ValueError, match="already registered"):
        register_judge_backend("toy", make_toy, help="again")
    with pytest.raises(ValueError, match="name must be"):
        register_judge_backend("to:y", make_toy, help="bad")


def test_unregistered_backend_is_gone() -> None:
    """The fixture's toy does not outlive its test; the built-ins are always there."""
    assert "toy" not in JUDGE_BACKENDS and "'toy:" not in spec_help()
    with pytest.raises(InterpSotError, match="unknown judge spec 'toy:1'"):
        make_judge("toy:1")


def test_registry_import_is_torch_free() -> None:
    code = ("import sys; import interp_sot.judging.registry, interp_sot.judging.spec as s; s.SPEC_HELP; "
            "print(sorted(m for m in ('torch', 'transformers', 'openai', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_toy_backend_reaches_the_judge_help(toy, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["screen", "--help"])
    assert done.value.code == 0
    assert "'toy:LEVEL' (deterministic test judge)" in " ".join(capsys.readouterr().out.split())


def test_toy_backend_screens_through_the_cli(toy, monkeypatch, tmp_path, capsys) -> None:
    """``screen --judge toy:7``: the toy's scores (70 for a conversational excerpt, else 0) make the ratio."""
    (tmp_path / "stats").mkdir()
    acts, onset, conv = random_corpus(seed=11, n_seq=16, seq_len=8, d=24)
    stats = brute_force_stats(acts, onset, k=5)
    monkeypatch.setattr(screen_run, "load_inputs", lambda inputs: (stats, FakeContexts(conv)))
    out = tmp_path / "o"
    assert main(["screen", "--stats", str(tmp_path / "stats"), "--out", str(out), "--k", "5",
                 "--judge", f"toy:{LEVEL}"]) == 0
    capsys.readouterr()
    table = load_table(out / "screen.parquet")
    np.testing.assert_array_equal(table["conversation_ratio"], ratio_from_labels(stats, conv, k=5).ratio)
    scores = [json.loads(line) for line in (out / "conversation_scores.jsonl").read_text().splitlines()]
    assert scores and {s["judge"] for s in scores} == {f"toy:{LEVEL}"}
    assert {s["value"] for s in scores} == {0.0, 10.0 * LEVEL}
    assert json.loads((out / "summary.json").read_text())["judge"] == f"toy:{LEVEL}"


@pytest.fixture
def steer_inputs(tiny_llama: Any, tmp_path: Path) -> list[str]:
    from builders import char_tokenizer

    model = tmp_path / "tiny"
    tiny_llama.save_pretrained(model)
    char_tokenizer().save_pretrained(model)
    config = json.loads((model / "config.json").read_text())
    config["max_position_embeddings"] = 1024  # room for the character-level prompt (coherence scores every trace)
    (model / "config.json").write_text(json.dumps(config))
    save_direction(tmp_path / "d.safetensors", torch.ones(32))
    return ["--model", str(model), "--direction", str(tmp_path / "d.safetensors"), "--strengths=0,2", "--layer", "1",
            "--n-problems", "2", "--max-new-tokens", "6", "--greedy", "--n-boot", "50", "--batch-size", "4"]


def _one_table(run: Path, names: tuple[str, ...]) -> pd.DataFrame:
    """The first of ``names`` found in the run's analysis or report folder (whichever stage writes it)."""
    for folder in ("analysis", "report"):
        for name in names:
            if (run / folder / name).is_file():
                return pd.read_parquet(run / folder / name) if name.endswith(".parquet") else pd.read_csv(
                    run / folder / name)
    raise AssertionError(f"none of {names} in {run}/analysis or {run}/report")


def test_toy_backend_codes_a_steer_run_into_tables_and_report(toy, steer_inputs, tmp_path, capsys) -> None:
    """``steer --judge toy:7``: its codings land in behaviours.jsonl, as ``judge.*`` columns of the per-trace
    table, as ``llm_judge`` rows of the behaviour table, and in the report's summary."""
    run = tmp_path / "run"
    assert main(["steer", *steer_inputs, "--judge", f"toy:{LEVEL}", "--schemes", "cognitive", "--out", str(run)]) == 0
    capsys.readouterr()
    codings = [json.loads(line) for line in (run / "behaviours.jsonl").read_text().splitlines()]
    assert len(codings) == 4 and {c["judge"] for c in codings} == {f"toy:{LEVEL}"}

    traces = _one_table(run, ("traces.parquet", "traces.csv"))
    assert len(traces) == 4
    assert (traces["judge.cognitive.backtracking"] == LEVEL).all()
    assert (traces["judge.cognitive.subgoal_setting"] == LEVEL).all()
    expected = [toy_verification(c) for c in traces["completion"]]
    assert traces["judge.cognitive.verification"].tolist() == expected

    rates = _one_table(run, ("behaviour_rates.parquet", "behaviour_rates.csv", "behaviours.parquet", "behaviours.csv"))
    judged = rates[rates["method"] == "llm_judge"].set_index(["behaviour", "strength"])["mean"]
    assert set(judged.index.get_level_values(0)) == {f"judge.cognitive.{c}" for c in
                                                    ("verification", "backtracking", "subgoal_setting",
                                                     "backward_chaining")}
    assert (judged.loc["judge.cognitive.backtracking"] == LEVEL).all()
    for strength, group in traces.groupby("strength"):
        assert judged.loc[("judge.cognitive.verification", strength)] == pytest.approx(
            group["judge.cognitive.verification"].mean())

    summaries = [p for p in (run / "report" / "summary.md", run / "analysis" / "summary.md") if p.is_file()]
    assert summaries
    text = "\n".join(p.read_text() for p in summaries)
    row = next(line for line in text.splitlines() if line.startswith("| judge.cognitive.backtracking"))
    assert f"{LEVEL} [{LEVEL}, {LEVEL}]" in row
