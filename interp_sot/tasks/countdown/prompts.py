"""Countdown prompts: TinyZero's base-model prompt verbatim, a chat-template variant for instruct/R1 models, and a
plain few-shot form (``fewshot``) that small models follow (see :mod:`interp_sot.tasks.countdown.presets`).

A *question template* (the prompting arm's instruction file) rewrites the question itself: its ``{problem}``
field stands for the question text each style would ask (the user turn for ``tinyzero``/``chat``, the
``Numbers: ... Target: ...`` line for ``fewshot``), so one instruction file serves every style.

TinyZero formats ``nums`` with Python's list repr (``[44, 19, 35]``); so do we. The base prompt already ends with
the assistant's opening (``Let me solve this step by step.\\n<think>``), so the completion is the reasoning itself.
The paper does not say which form it used with DeepSeek-R1-Distill (a chat model whose template opens ``<think>``
itself); the style is therefore a parameter of every sweep, recorded with each trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from interp_sot.protocols import render_chat
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    from interp_sot.protocols import Tokenizer

PromptStyle = Literal["tinyzero", "chat", "fewshot"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("tinyzero", "chat", "fewshot")
FEWSHOT_QUESTION = "Numbers: {numbers}. Target: {target}."
"""The ``fewshot`` question line; a shot adds ``Thoughts: ...`` and ``Answer: ...`` lines, the asked problem
``Thoughts:`` alone."""

USER_TEMPLATE = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic operations "
    "(+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. And return the "
    "final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
"""The user turn shared by both styles (TinyZero's wording)."""

TINYZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer.\n"
    "User: " + USER_TEMPLATE + "\nAssistant: Let me solve this step by step.\n<think>"
)
"""TinyZero's base prompt, fields ``{numbers}`` and ``{target}``."""


def format_numbers(nums: tuple[int, ...] | list[int]) -> str:
    """``[44, 19, 35]``: how TinyZero renders the numbers (``str`` of a Python list)."""
    return str([int(n) for n in nums])


def apply_question_template(question: str, question_template: str | None) -> str:
    """``question`` put into the template's ``{problem}`` field (unchanged without a template)."""
    if question_template is None:
        return question
    return question_template.replace("{problem}", question)


def user_message(problem: CountdownProblem, question_template: str | None = None) -> str:
    return apply_question_template(
        USER_TEMPLATE.format(numbers=format_numbers(problem.nums), target=problem.target), question_template)


def tinyzero_prompt(problem: CountdownProblem, question_template: str | None = None) -> str:
    head, tail = TINYZERO_TEMPLATE.split(USER_TEMPLATE)
    return head + user_message(problem, question_template) + tail


def shot_thoughts(problem: CountdownProblem) -> tuple[str, str]:
    """(thoughts, answer) of a two-number few-shot example: compute +, *, -, / in turn until one reaches the target.

    The line is written out so that the model copies a compute-then-check pattern (``4 + 2 = 6. 4 * 2 = 8. That is
    8.``) and stops at the first hit, which keeps traces short. Calibrated on SmolLM2-135M-Instruct: an earlier
    wording that also said "not T" after each miss drew the model into writing the value, not the expression, as
    its answer (0% accuracy)."""
    if len(problem.nums) != 2:
        raise ValueError(f"shot {problem.problem_id}: the thoughts pattern covers two numbers, "
                         f"got {list(problem.nums)}")
    a, b = problem.nums
    hi, lo = max(a, b), min(a, b)
    candidates = [(f"{a} + {b}", Fraction(a + b)), (f"{a} * {b}", Fraction(a * b)), (f"{hi} - {lo}", Fraction(hi - lo))]
    if lo:
        candidates.append((f"{hi} / {lo}", Fraction(hi, lo)))
    parts = []
    for expr, value in candidates:
        parts.append(f"{expr} = {value}.")
        if value == problem.target:
            return " ".join(parts) + f" That is {problem.target}.", expr
    raise ValueError(f"shot {problem.problem_id}: no single operation of {list(problem.nums)} reaches {problem.target}")


def fewshot_question(problem: CountdownProblem) -> str:
    return FEWSHOT_QUESTION.format(numbers=", ".join(str(int(n)) for n in problem.nums), target=problem.target)


def fewshot_prompt(
    problem: CountdownProblem, shots: Sequence[CountdownProblem], question_template: str | None = None
) -> str:
    """The shots (question, ``Thoughts:`` line, ``Answer:`` line; blank line between), then the question and an
    open ``Thoughts:``. Only the asked question goes through ``question_template``: the shots show the format."""
    if not shots:
        raise ValueError("the fewshot prompt style needs at least one shot")
    blocks = []
    for shot in shots:
        thoughts, answer = shot_thoughts(shot)
        blocks.append(f"{fewshot_question(shot)}\nThoughts: {thoughts}\nAnswer: {answer}\n")
    asked = apply_question_template(fewshot_question(problem), question_template)
    return "\n".join(blocks) + f"\n{asked}\nThoughts:"


def chat_prompt(
    problem: CountdownProblem, tokenizer: Tokenizer, *, system: str | None = None, assistant_prefix: str = "",
    question_template: str | None = None,
) -> str:
    """The user turn rendered with the tokenizer's chat template, generation prompt appended.

    system: optional system message (None: the template's default, if any).
    assistant_prefix: text forced at the start of the assistant turn (e.g. ``"<think>\\n"`` for templates that
        do not open the reasoning block themselves).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{type(tokenizer).__name__} has no chat template; use prompt_style='tinyzero' for base models"
        )
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user_message(problem, question_template)})
    return render_chat(tokenizer, messages) + assistant_prefix


@dataclass(frozen=True)
class PromptSpec:
    """Everything that decides a prompt's text besides the problem: the style, its shots, a question template.

    Why a bundle: the sweep, the dose stage, the residual-norm measurement and the context-length check must all
    build the same prompt; passing the bundle (``SweepConfig.prompt_spec``) keeps them from drifting."""

    style: PromptStyle = "tinyzero"
    """How the problem is put (``PROMPT_STYLES``)."""
    shots: tuple[CountdownProblem, ...] = ()
    """Few-shot examples (``fewshot`` style)."""
    question_template: str | None = None
    """Text with a ``{problem}`` field that replaces the question (the prompting arm); None: the question as is."""

    def __post_init__(self) -> None:
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {self.style!r}")
        object.__setattr__(self, "shots", tuple(self.shots))
        if self.question_template is not None:
            check_question_template(self.question_template)


def check_question_template(text: str, source: str = "question template") -> str:
    """``text`` if it holds the ``{problem}`` field exactly once, else an error naming ``source``."""
    count = text.count("{problem}")
    if count != 1:
        raise ValueError(f"{source} must contain the placeholder {{problem}} exactly once (where the question goes), "
                         f"found it {count} times")
    return text


def read_question_template(path: str | Path | None = None) -> str:
    """The text of a question template file (default: the shipped prompting arm,
    ``interp_sot.data.prompting_instruction_path``), refused without exactly one ``{problem}`` (the error names the
    file)."""
    from interp_sot.data import prompting_instruction_path

    file = Path(path) if path is not None else prompting_instruction_path()
    if not file.is_file():
        raise FileNotFoundError(f"question template {file} not found")
    return check_question_template(file.read_text(encoding="utf-8").strip("\n"), f"question template {file}")


def as_prompt_spec(style: PromptStyle | PromptSpec) -> PromptSpec:
    return style if isinstance(style, PromptSpec) else PromptSpec(style)


def build_prompt(
    problem: CountdownProblem,
    style: PromptStyle | PromptSpec = "tinyzero",
    tokenizer: Tokenizer | None = None,
    *,
    shots: Sequence[CountdownProblem] = (),
    question_template: str | None = None,
) -> str:
    """The prompt text for ``style`` (a style name or a whole :class:`PromptSpec`, whose shots and template then
    apply); ``tokenizer`` is needed for ``"chat"``, ``shots`` for ``"fewshot"``."""
    if isinstance(style, PromptSpec):
        shots, question_template, style = style.shots, style.question_template, style.style
    if style == "tinyzero":
        return tinyzero_prompt(problem, question_template)
    if style == "fewshot":
        return fewshot_prompt(problem, shots, question_template)
    if style == "chat":
        if tokenizer is None:
            raise ValueError("prompt_style='chat' needs the tokenizer (its chat template)")
        return chat_prompt(problem, tokenizer, question_template=question_template)
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


def adds_special_tokens(style: PromptStyle | PromptSpec) -> bool:
    """Whether tokenising the prompt should add BOS: chat templates already write it, raw prompts do not."""
    return as_prompt_spec(style).style != "chat"
