"""Countdown problem generation, loading and prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interp_sot.tasks.countdown import (
    TINYZERO_TEMPLATE,
    CountdownProblem,
    GeneratorConfig,
    build_prompt,
    generate_problems,
    load_tinyzero,
    sample_problems,
    solve,
    tinyzero_prompt,
    verify,
)

# TinyZero's prompt as written in /work/shared/REFERENCE.md (typed out independently of the module).
REFERENCE_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer.\nUser: Using "
    "the numbers [44, 19, 35], create an equation that equals 98. You can use basic arithmetic operations (+, -, *, /) "
    "and each number can only be used once. Show your work in <think> </think> tags. And return the final answer in "
    "<answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\nAssistant: Let me solve this step by "
    "step.\n<think>"
)


def test_generator_always_solvable_and_deterministic() -> None:
    seen_sizes = set()
    for seed in range(200):
        problems = generate_problems(2, seed=seed)
        if seed < 5:
            assert problems == generate_problems(2, seed=seed)
        for p in problems:
            seen_sizes.add(len(p.nums))
            assert 1 <= p.target <= 100 and all(1 <= n <= 99 for n in p.nums)
            assert p.solution is not None and verify(p.solution, p.nums, p.target), p
            assert solve(p.nums, p.target) is not None
    assert seen_sizes == {3, 4}
    assert generate_problems(5, seed=1) != generate_problems(5, seed=2)


def test_generator_config_and_errors() -> None:
    cfg = GeneratorConfig(n_numbers=(2,), num_range=(1, 5), target_range=(10, 25))
    for p in generate_problems(40, seed=3, config=cfg):
        assert len(p.nums) == 2 and 10 <= p.target <= 25 and verify(p.solution, p.nums, p.target)
    with pytest.raises(ValueError, match="no reachable target"):
        generate_problems(
            1, config=GeneratorConfig(n_numbers=(1,), num_range=(1, 3), target_range=(50, 60), max_tries=5)
        )
    with pytest.raises(ValueError, match="num_range"):
        GeneratorConfig(num_range=(5, 1))
    with pytest.raises(ValueError, match="n_numbers"):
        GeneratorConfig(n_numbers=(9,))


def test_unsolvable_problem_has_no_solution() -> None:
    assert solve([1, 1, 1], 100) is None
    assert solve([2, 3], 5) == "2 + 3"
    assert solve([2, 3, 50], 5) is None
    assert solve([2, 3, 50], 5, use_all=False) is not None


def test_sample_problems() -> None:
    ps = generate_problems(20, seed=0)
    a = sample_problems(ps, 8, seed=4)
    assert a == sample_problems(ps, 8, seed=4) and len({p.problem_id for p in a}) == 8
    with pytest.raises(ValueError, match="only 20"):
        sample_problems(ps, 21)


def test_prompt_matches_reference() -> None:
    p = CountdownProblem("x", (44, 19, 35), 98)
    assert tinyzero_prompt(p) == REFERENCE_PROMPT
    assert build_prompt(p) == REFERENCE_PROMPT
    assert TINYZERO_TEMPLATE.count("{numbers}") == 1


def test_chat_prompt_uses_template() -> None:
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):  # type: ignore[no-untyped-def]
            assert not tokenize and add_generation_prompt
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    p = CountdownProblem("x", (44, 19, 35), 98)
    text = build_prompt(p, "chat", Tok())
    assert text.startswith("<user>Using the numbers [44, 19, 35], create an equation that equals 98.")
    assert text.endswith("for example <answer> (1 + 2) / 3 </answer>.<assistant>")
    with pytest.raises(ValueError, match="chat template"):
        build_prompt(p, "chat", object())
    with pytest.raises(ValueError, match="prompt style"):
        build_prompt(p, "other")  # type: ignore[arg-type]


def test_loader_formats_roundtrip(tmp_path: Path) -> None:
    recs = [{"target": 98, "nums": [44, 19, 35]}, {"target": 24, "nums": [3, 8, 8, 3]}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "a.json").write_text(json.dumps(recs))
    (tmp_path / "cols.json").write_text(json.dumps({"target": [98, 24], "nums": [[44, 19, 35], [3, 8, 8, 3]]}))
    pd.DataFrame(recs).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"target": [98.0, 24.0], "nums": ["[44, 19, 35]", "[3, 8, 8, 3]"]}).to_csv(tmp_path / "a.csv")
    for name in ("a.jsonl", "a.json", "cols.json", "a.parquet", "a.csv"):
        ps = load_tinyzero(tmp_path / name)
        assert [(p.nums, p.target) for p in ps] == [((44, 19, 35), 98), ((3, 8, 8, 3), 24)], name
        assert ps[0].problem_id == f"{Path(name).stem}-0"
    assert len(load_tinyzero(tmp_path / "a.jsonl", limit=1)) == 1
    (tmp_path / "ids.jsonl").write_text(json.dumps({"id": "q7", "target": 3, "nums": [1, 2]}) + "\n")
    assert load_tinyzero(tmp_path / "ids.jsonl")[0].problem_id == "q7"


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_tinyzero(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"target": 5}\n')
    with pytest.raises(ValueError, match=r"record 0 lacks field\(s\) \['nums'\]"):
        load_tinyzero(tmp_path / "bad.jsonl")
    (tmp_path / "frac.jsonl").write_text('{"target": 5.5, "nums": [1, 2]}\n')
    with pytest.raises(ValueError, match="not an integer"):
        load_tinyzero(tmp_path / "frac.jsonl")
    (tmp_path / "neg.jsonl").write_text('{"target": 5, "nums": [1, -2]}\n')
    with pytest.raises(ValueError, match="non-negative"):
        load_tinyzero(tmp_path / "neg.jsonl")
    (tmp_path / "torn.jsonl").write_text('{"target": 5, "nums": [1, 4]}\n{"target"\n')
    with pytest.raises(ValueError, match="line 2"):
        load_tinyzero(tmp_path / "torn.jsonl")
    (tmp_path / "dup.jsonl").write_text(
        '{"id": 1, "target": 5, "nums": [1, 4]}\n{"id": 1, "target": 5, "nums": [1, 4]}\n'
    )
    with pytest.raises(ValueError, match="more than once"):
        load_tinyzero(tmp_path / "dup.jsonl")
