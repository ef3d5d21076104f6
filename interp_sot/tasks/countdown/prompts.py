"""Countdown prompts: TinyZero's base-model prompt verbatim, and a chat-template variant for instruct/R1 models.

TinyZero formats ``nums`` with Python's list repr (``[44, 19, 35]``); so do we. The base prompt already ends with
the assistant's opening (``Let me solve this step by step.\\n<think>``), so the completion is the reasoning itself.
The paper does not say which form it used with DeepSeek-R1-Distill (a chat model whose template opens ``<think>``
itself); the style is therefore a parameter of every sweep, recorded with each trace.
"""

from __future__ import annotations

from typing import Any, Literal

from interp_sot.tasks.countdown.problems import CountdownProblem

PromptStyle = Literal["tinyzero", "chat"]
PROMPT_STYLES: tuple[str, ...] = ("tinyzero", "chat")

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


def user_message(problem: CountdownProblem) -> str:
    return USER_TEMPLATE.format(numbers=format_numbers(problem.nums), target=problem.target)


def tinyzero_prompt(problem: CountdownProblem) -> str:
    return TINYZERO_TEMPLATE.format(numbers=format_numbers(problem.nums), target=problem.target)


def chat_prompt(
    problem: CountdownProblem, tokenizer: Any, *, system: str | None = None, assistant_prefix: str = ""
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
    messages.append({"role": "user", "content": user_message(problem)})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix


def build_prompt(problem: CountdownProblem, style: PromptStyle = "tinyzero", tokenizer: Any = None) -> str:
    """The prompt text for ``style``; ``tokenizer`` is needed for ``"chat"``."""
    if style == "tinyzero":
        return tinyzero_prompt(problem)
    if style == "chat":
        if tokenizer is None:
            raise ValueError("prompt_style='chat' needs the tokenizer (its chat template)")
        return chat_prompt(problem, tokenizer)
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


def adds_special_tokens(style: PromptStyle) -> bool:
    """Whether tokenising the prompt should add BOS: chat templates already write it, raw prompts do not."""
    return style != "chat"
