"""Named Countdown task presets: the paper's setting, and an easy few-shot one a 135M model can solve.

Why presets: a steering effect on accuracy is measurable only where the unsteered accuracy leaves headroom on both
sides. SmolLM2-135M-Instruct never writes the ``<answer>`` tag of the paper's prompt (0% on 2-4 numbers, greedy and
sampled), so the paper's task cannot show an accuracy effect on the embedded model. ``arith2`` is the calibrated
alternative: two numbers 1-12, targets up to 60 (222 distinct tasks, enough for the demo's power), and a few-shot
prompt whose short "Thoughts:" line checks candidate
operations before the ``Answer:`` line, so every trace has reasoning text for the behaviour markers and the
diversity measures to work on while the accuracy stays in the measurable range (README, "The main job", records the
calibration). A preset bundles what must agree: the problem generator, the prompt style and its shots, the answer
rule and the stop strings; ``SweepConfig.for_task`` turns it into the sweep's config, so each of them is declared
once. New presets go into :data:`PRESETS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interp_sot.tasks.countdown.answers import AnswerRule
from interp_sot.tasks.countdown.problems import CountdownProblem, GeneratorConfig, generate_problems
from interp_sot.tasks.countdown.prompts import PromptStyle, shot_thoughts

PROBLEM_PLACEHOLDER = "problem"
"""The field a question template (the prompting arm's instruction file) must hold: ``{problem}``."""


def problem_signature(problem: CountdownProblem) -> tuple[tuple[int, ...], int]:
    """What makes two problems the same task: the numbers as a multiset and the target (order is presentation)."""
    return tuple(sorted(problem.nums)), int(problem.target)


def check_disjoint(evaluation: Sequence[CountdownProblem], other: Sequence[CountdownProblem], what: str) -> None:
    """Refuse ``evaluation`` problems that also appear in ``other`` (few-shot examples, the dose split), by
    ``problem_id`` or by content (same numbers and target): anything tuned or shown on them would leak."""
    ids = {p.problem_id for p in other}
    sigs = {problem_signature(p): p.problem_id for p in other}
    for p in evaluation:
        if p.problem_id in ids:
            raise ValueError(f"evaluation problem {p.problem_id!r} is also one of the {what} (same problem_id); "
                             f"the {what} must be disjoint from the evaluation problems")
        hit = sigs.get(problem_signature(p))
        if hit is not None:
            raise ValueError(f"evaluation problem {p.problem_id!r} ({list(p.nums)} -> {p.target}) is the same task as "
                             f"{hit!r} of the {what}; the {what} must be disjoint from the evaluation problems")


@dataclass(frozen=True)
class TaskPreset:
    """A Countdown setting: which problems, how they are asked, how answers are read."""

    name: str
    """Registry key (``--task``)."""
    description: str
    """One line for ``--help`` and reports."""
    generator: GeneratorConfig
    """How evaluation (and dose) problems are drawn."""
    prompt_style: PromptStyle
    """How a problem is put to the model (``prompts.build_prompt``)."""
    answer_rule: AnswerRule
    """How the final answer is found in a completion (``answers.find_answer``)."""
    stop_strings: tuple[str, ...]
    """Generation of a row stops once it writes one of these."""
    shots: tuple[CountdownProblem, ...] = ()
    """Few-shot examples (``fewshot`` style); never among the evaluation problems (``check_disjoint``)."""
    distinct: bool = True
    """Draw distinct tasks (small task spaces repeat often). ``paper`` keeps the plain seeded generator, whose
    space is large, so a seed gives the same problems as before presets existed."""

    def __post_init__(self) -> None:
        if self.prompt_style == "fewshot" and not self.shots:
            raise ValueError(f"task preset {self.name!r}: the fewshot style needs shots")
        for shot in self.shots:
            shot_thoughts(shot)  # every shot must be writable in the thoughts pattern

    def problems(self, n: int, *, seed: int, id_prefix: str = "gen") -> list[CountdownProblem]:
        """``n`` distinct tasks (no two share numbers and target; see ``problem_signature``), none of them a shot
        (``distinct=False``: the seeded generator's first ``n``).

        Why distinct: a repeated task is not an independent observation, and the power figures count problems."""
        if not self.distinct:
            return generate_problems(n, seed=seed, config=self.generator, id_prefix=id_prefix)
        pool = generate_problems(n * 8 + 64, seed=seed, config=self.generator, id_prefix=id_prefix)
        taken = {problem_signature(s) for s in self.shots}
        out = []
        for p in pool:
            sig = problem_signature(p)
            if sig not in taken:
                taken.add(sig)
                out.append(p)
                if len(out) == n:
                    return out
        raise ValueError(f"task {self.name!r} has only {len(out)} distinct problems in {len(pool)} draws, "
                         f"fewer than the {n} asked for; ask for fewer or widen its ranges")


def held_out_split(
    preset: TaskPreset, n_held_out: int, n_evaluation: int, *, seed: int
) -> tuple[list[CountdownProblem], list[CountdownProblem]]:
    """(held-out, evaluation) problems: one pool of distinct tasks cut in two, ids ``dose-{seed}-{i}`` and
    ``eval-{seed}-{i}``. Anything tuned (the dose stage's strengths) is tuned on the held-out part, so no
    evaluation problem shares an id or a task with it."""
    from dataclasses import replace

    if n_held_out < 0 or n_evaluation < 1:
        raise ValueError(f"need n_held_out >= 0 and n_evaluation >= 1, got {n_held_out}, {n_evaluation}")
    pool = preset.problems(n_held_out + n_evaluation, seed=seed)
    held = [replace(p, problem_id=f"dose-{seed}-{i}") for i, p in enumerate(pool[:n_held_out])]
    evaluation = [replace(p, problem_id=f"eval-{seed}-{i}") for i, p in enumerate(pool[n_held_out:])]
    return held, evaluation


def _shot(i: int, a: int, b: int, target: int) -> CountdownProblem:
    return CountdownProblem(f"shot-{i}", (a, b), target)


PRESETS: dict[str, TaskPreset] = {
    "paper": TaskPreset(
        "paper", "the paper's Countdown: 3-4 numbers 1-99, TinyZero's prompt, <answer> tags",
        GeneratorConfig(), "tinyzero", "last_tag", ("</answer>",), distinct=False),
    "arith2": TaskPreset(
        "arith2", "two numbers 1-12, targets <= 60, three-shot prompt with a 'Thoughts:' line before 'Answer:'",
        GeneratorConfig(n_numbers=(2,), num_range=(1, 12), target_range=(1, 60)), "fewshot", "answer_line",
        ("\n\n", "\nNumbers:"),
        # Short thoughts (the first hit ends them): +, *, -. Calibrated on SmolLM2 at T = 0.3 (128 problems):
        # these three shots 19.5%, two (*, -) 12.5%, four (+, *, *, -) 16.4% with a 30% longer prompt; a shot that
        # needs all four operations made the model enumerate past its token budget.
        (_shot(0, 1, 8, 9), _shot(1, 4, 2, 8), _shot(2, 9, 4, 5))),
}
"""Task presets by name; ``paper`` is the default of ``interp-sot steer`` and the GPU runbook, ``arith2`` the
demo's."""


def get_preset(name: str) -> TaskPreset:
    """The preset called ``name``; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown task preset {name!r}; known: {sorted(PRESETS)}") from None
