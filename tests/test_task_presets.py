"""Task presets (issue 20): the calibrated few-shot task, its answer rule and graded outcomes, held-out splits,
and the prompting arm's question template."""

from __future__ import annotations

import pytest

from interp_sot.experiments.sweep import SweepConfig
from interp_sot.tasks.countdown.answers import find_answer
from interp_sot.tasks.countdown.presets import (
    PRESETS,
    check_disjoint,
    get_preset,
    held_out_split,
    problem_signature,
)
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import (
    PromptSpec,
    build_prompt,
    check_question_template,
    read_question_template,
    shot_thoughts,
)
from interp_sot.tasks.countdown.scoring import score_completion


def test_answer_line_rule_reads_the_last_answer_line_only() -> None:
    text = "Thoughts: Try 3 + 8 = 11, not 24.\nAnswer: 3 + 8\nAnswer: 3 * 8\n\nNumbers: 1, 2"
    assert find_answer(text, rule="answer_line") == ("3 * 8", "answer_line")
    assert find_answer("Answer: 5 - 2", rule="answer_line") == ("5 - 2", "answer_line")  # no newline after it
    assert find_answer("Thoughts: no answer yet", rule="answer_line") is None
    assert find_answer("<answer> 1 + 2 </answer>", rule="answer_line") is None  # tags are another rule's format


def test_graded_outcomes_separate_found_valid_and_close() -> None:
    p = CountdownProblem("p", (3, 8), 24)
    ok = score_completion("Thoughts: ...\nAnswer: 3 * 8", p, rule="answer_line")
    assert ok.correct and ok.found and ok.valid and ok.abs_error == 0.0
    near = score_completion("Answer: 3 + 8", p, rule="answer_line")
    assert not near.correct and near.valid and near.abs_error == 13.0 and near.reason == "value 11 != target 24"
    invalid = score_completion("Answer: 24", p, rule="answer_line")  # the bare target ignores the numbers
    assert invalid.found and not invalid.valid and invalid.abs_error is None
    twice = score_completion("Answer: 3 * 8 * 8", p, rule="answer_line")
    assert not twice.valid and twice.abs_error is None
    none = score_completion("Thoughts: hmm", p, rule="answer_line")
    assert not none.found and not none.valid and none.abs_error is None


def test_fewshot_prompt_is_shots_then_the_question() -> None:
    preset = get_preset("arith2")
    problem = CountdownProblem("q", (5, 7), 12)
    text = build_prompt(problem, SweepConfig.for_task(preset, layer=0).prompt_spec)
    blocks = text.split("\n\n")
    assert len(blocks) == len(preset.shots) + 1
    assert blocks[1] == "Numbers: 4, 2. Target: 8.\nThoughts: 4 + 2 = 6. 4 * 2 = 8. That is 8.\nAnswer: 4 * 2"
    assert blocks[2] == ("Numbers: 9, 4. Target: 5.\nThoughts: 9 + 4 = 13. 9 * 4 = 36. 9 - 4 = 5. That is 5.\n"
                         "Answer: 9 - 4")
    assert blocks[-1] == "Numbers: 5, 7. Target: 12.\nThoughts:"
    for shot in preset.shots:  # every shot's answer solves it
        thoughts, answer = shot_thoughts(shot)
        assert score_completion(f"Thoughts: {thoughts}\nAnswer: {answer}", shot, rule="answer_line").correct


def test_question_template_wraps_only_the_asked_question() -> None:
    preset = get_preset("arith2")
    spec = PromptSpec("fewshot", preset.shots, "{problem}\nDiscuss it as a conversation.")
    text = build_prompt(CountdownProblem("q", (5, 7), 12), spec)
    assert text.endswith("Numbers: 5, 7. Target: 12.\nDiscuss it as a conversation.\nThoughts:")
    assert text.count("Discuss it") == 1
    tiny = build_prompt(CountdownProblem("q", (5, 7), 12), PromptSpec("tinyzero", (), "Please: {problem}"))
    assert "User: Please: Using the numbers [5, 7], create an equation that equals 12." in tiny


def test_question_template_needs_the_placeholder(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"placeholder \{problem\} exactly once.*found it 0 times"):
        check_question_template("Reason as a conversation.")
    bad = tmp_path / "instruction.txt"
    bad.write_text("{problem} and again {problem}\n")
    with pytest.raises(ValueError, match=r"instruction\.txt must contain the placeholder"):
        read_question_template(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        read_question_template(tmp_path / "missing.txt")
    assert "{problem}" in read_question_template()  # the shipped default
    with pytest.raises(ValueError, match="placeholder"):
        SweepConfig.for_task("arith2", layer=0, question_template="no field here")


def test_preset_problems_are_distinct_tasks_and_never_shots() -> None:
    preset = get_preset("arith2")
    problems = preset.problems(100, seed=0)
    sigs = [problem_signature(p) for p in problems]
    assert len(set(sigs)) == 100
    assert not set(sigs) & {problem_signature(s) for s in preset.shots}
    assert all(len(p.nums) == 2 and max(p.nums) <= 12 and 1 <= p.target <= 60 for p in problems)
    assert problems == preset.problems(100, seed=0)  # seeded
    with pytest.raises(ValueError, match="distinct problems"):
        preset.problems(10_000, seed=0)
    with pytest.raises(ValueError, match="unknown task preset 'nope'; known: \\['arith2', 'paper'\\]"):
        get_preset("nope")
    assert PRESETS["paper"].prompt_style == "tinyzero" and PRESETS["paper"].answer_rule == "last_tag"


def test_held_out_split_is_disjoint_by_id_and_task() -> None:
    held, evaluation = held_out_split(get_preset("arith2"), 12, 60, seed=3)
    assert len(held) == 12 and len(evaluation) == 60
    assert all(p.problem_id.startswith("dose-3-") for p in held)
    assert all(p.problem_id.startswith("eval-3-") for p in evaluation)
    check_disjoint(evaluation, held, "dose problems")  # no error
    assert not {problem_signature(p) for p in held} & {problem_signature(p) for p in evaluation}


def test_overlap_is_refused_by_id_and_by_content() -> None:
    a = CountdownProblem("a", (3, 8), 24)
    with pytest.raises(ValueError, match="'a' is also one of the dose problems"):
        check_disjoint([a], [CountdownProblem("a", (1, 2), 3)], "dose problems")
    with pytest.raises(ValueError, match=r"'a' \(\[3, 8\] -> 24\) is the same task as 'z'"):
        check_disjoint([a], [CountdownProblem("z", (8, 3), 24)], "few-shot examples")


def test_sweep_refuses_an_evaluation_problem_among_the_shots(tiny_llama) -> None:
    import torch
    from builders import char_tokenizer

    from interp_sot.experiments.sweep import run_sweep

    preset = get_preset("arith2")
    shot = preset.shots[1]
    leaked = CountdownProblem("eval-0", tuple(reversed(shot.nums)), shot.target)
    config = SweepConfig.for_task(preset, layer=0, batch_size=2)
    with pytest.raises(ValueError, match="same task as 'shot-1' of the few-shot examples"):
        run_sweep(tiny_llama, char_tokenizer(), [leaked], {0: torch.zeros(16)}, [0.0], config=config)
