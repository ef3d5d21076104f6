"""Prompt for classifying feature descriptions as personality- or expertise-related (two 0-100 scores each).

The paper classified every feature with an LLM (threshold 50) into personality-related, expertise-related or other;
its prompt is unpublished. Here each description gets two independent scores so that "both" stays visible.
"""

from interp_sot.judging.prompts.template import PromptTemplate

FEATURE_CATEGORY = PromptTemplate(
    name="feature_category",
    version="1",
    system=(
        "You classify descriptions of features of a language model (what text makes a feature fire).\n"
        "For every description give two scores from 0 to 100:\n"
        '- "personality": how much the feature is about personality, emotion, attitude, tone, social or '
        "interpersonal behaviour, or traits of a speaker (e.g. surprise, politeness, humour, agreement, doubt).\n"
        '- "expertise": how much the feature is about domain knowledge or a specialised skill (e.g. mathematics, '
        "programming, chemistry, law, medicine, finance, history).\n"
        "The two scores are independent; both can be high or both low.\n"
        'Reply with JSON only, in the form {"items": [{"personality": p, "expertise": e}, ...]}: one object per '
        "description, in the order given."
    ),
    user=(
        "Classify these {n} feature descriptions.\n\n{descriptions}\n\n"
        'Reply with JSON only: {{"items": [...]}} with exactly {n} objects.'
    ),
)
"""Fields: ``n`` (number of descriptions), ``descriptions`` (numbered, one per line)."""


def format_descriptions(descriptions: list[str]) -> str:
    """The ``descriptions`` field: one ``i. description`` line each (1-based; newlines flattened)."""
    return "\n".join(f"{i}. {' '.join(d.split())}" for i, d in enumerate(descriptions, start=1))


def split_descriptions(user_message: str) -> list[str]:
    """Inverse of :func:`format_descriptions` applied to a rendered user message (for offline judges)."""
    import re

    return [m.group(1) for m in re.finditer(r"^\d+\. (.*)$", user_message, flags=re.MULTILINE)]
