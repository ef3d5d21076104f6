"""Prompt for scoring feature contexts as conversational (0-100), several contexts per call.

The paper's prompt is unpublished; this one asks for exactly what its filter needs: one 0-100 score per context,
later thresholded at 50. The feature's max-activating token is marked ``<<like this>>`` (see
:data:`MARK_OPEN` / :data:`MARK_CLOSE`).
"""

from interp_sot.judging.prompts.template import PromptTemplate

MARK_OPEN = "<<"
"""Opens the marked (max-activating) token in a rendered context."""
MARK_CLOSE = ">>"
"""Closes the marked token."""

CONVERSATIONAL_SCORE = PromptTemplate(
    name="conversational_score",
    version="1",
    system=(
        "You rate short text excerpts. Each excerpt is a window of a document in which one token is marked "
        "<<like this>>: a feature of a neural network fires most strongly there.\n"
        "An excerpt is CONVERSATIONAL when it is part of a dialogue or turn-taking exchange, or direct speech "
        "addressed to someone: chat messages, interviews, forum replies, question-and-answer exchanges, quoted "
        "speech, spoken-style reactions. It is NOT conversational when it is expository, narrative, reference or "
        "technical prose, code, lists or tables.\n"
        "Give every excerpt a score from 0 (certainly not conversational) to 100 (certainly conversational), "
        "judging the excerpt as a whole and the role of the marked token in it.\n"
        'Reply with JSON only, in the form {"scores": [s1, s2, ...]}: one integer per excerpt, in the order given.'
    ),
    user=(
        "Rate these {n} excerpts.\n\n{excerpts}\n\n"
        'Reply with JSON only: {{"scores": [...]}} with exactly {n} integers from 0 to 100.'
    ),
)
"""Fields: ``n`` (number of excerpts), ``excerpts`` (numbered excerpts, see ``screening.conversation_ratio``)."""

_HEADER = "### Excerpt {i}"


def format_excerpts(texts: list[str]) -> str:
    """The ``excerpts`` field: each text under a numbered ``### Excerpt i`` header (1-based)."""
    return "\n\n".join(f"{_HEADER.format(i=i)}\n{t}" for i, t in enumerate(texts, start=1))


def split_excerpts(user_message: str) -> list[str]:
    """Inverse of :func:`format_excerpts` applied to a rendered user message (for offline judges)."""
    import re

    parts = re.split(r"^### Excerpt (\d+)\n", user_message, flags=re.MULTILINE)
    texts = [parts[i + 1] for i in range(1, len(parts) - 1, 2)]
    if texts:
        texts[-1] = texts[-1].split("\n\nReply with JSON only:", 1)[0]
        texts[:-1] = [t[:-2] if t.endswith("\n\n") else t for t in texts[:-1]]
    return texts
