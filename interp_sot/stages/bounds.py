"""Bounded inputs: every prompt fits the model's context, checked before anything is generated or scored.

Why: a problem with 10,000 numbers is ~59k prompt tokens; a model with an 8,192-token context would run a forward
pass for minutes over positions it never saw in training, its memory rising, and return garbage. The check costs one
tokenizer pass over the prompts. The CLI runs it right after reading the model's ``config.json`` and tokenizer
(before any weights load); the stages run it again before their first batch, so the Python API is as strict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from interp_sot.errors import InterpSotError, shorten
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import PromptSpec, PromptStyle, adds_special_tokens, build_prompt

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from interp_sot.protocols import CausalLM, Tokenizer

CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""Config attributes that hold a model's context length, in the order they are looked up."""


def context_length(model_or_config: CausalLM | PretrainedConfig) -> int | None:
    """The context length (tokens) of a model or its config (``text_config`` of a multimodal one); None if unknown."""
    config = getattr(model_or_config, "config", model_or_config)
    config = getattr(config, "text_config", None) or config
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def prompt_lengths(problems: Sequence[CountdownProblem], style: PromptStyle | PromptSpec, tokenizer: Tokenizer
                   ) -> list[int]:
    """Each problem's prompt length in tokens, tokenized exactly as the sweep tokenizes it."""
    special = adds_special_tokens(style)
    return [len(tokenizer(build_prompt(p, style, tokenizer), add_special_tokens=special)["input_ids"])
            for p in problems]


def check_prompts_fit(problems: Sequence[CountdownProblem], style: PromptStyle | PromptSpec, tokenizer: Tokenizer,
                      context: int | None, new_tokens: int = 1) -> int:
    """The longest prompt in tokens; :class:`InterpSotError` naming the first problem (id and token count) whose
    prompt leaves no room for ``new_tokens`` generated tokens in a context of ``context`` tokens (None: unknown,
    nothing is refused)."""
    lengths = prompt_lengths(problems, style, tokenizer)
    if context is not None:
        too_long = [(p, n) for p, n in zip(problems, lengths, strict=True) if n + new_tokens > context]
        if too_long:
            p, n = too_long[0]
            more = f" ({len(too_long) - 1} more problems too)" if len(too_long) > 1 else ""
            raise InterpSotError(
                f"problem {shorten(p.problem_id, 80)}: its prompt is {n:,} tokens, too long for the model's context "
                f"of {context:,} tokens (which must also hold {new_tokens:,} generated token(s)){more}; drop or "
                "shorten such problems")
    return max(lengths, default=0)


def check_texts_fit(texts: Sequence[str], tokenizer: Tokenizer, context: int | None, new_tokens: int,
                    add_special_tokens: bool) -> int:
    """For plain prompt strings (the dose pre-sweep, which drops the prompts that do not fit, with a warning):
    :class:`InterpSotError` when none of ``texts`` leaves room for ``new_tokens`` in ``context``. Returns the
    shortest length."""
    lengths = [len(tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"]) for t in texts]
    shortest = min(lengths, default=0)
    if context is not None and lengths and shortest + new_tokens > context:
        raise InterpSotError(
            f"all {len(texts)} prompts plus max_new_tokens={new_tokens:,} exceed the model's context of {context:,} "
            f"tokens (shortest prompt {shortest:,} tokens); lower --max-new-tokens")
    return shortest
