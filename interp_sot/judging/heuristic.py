"""An offline, rule-based judge (labelled ``heuristic`` in its name): no model, deterministic, instant.

It is a baseline and a stand-in for tests and dry runs, not a substitute for an LLM. It recognises a task by the
template's system message and answers in the JSON the template asks for.

Rules for ``conversational_score`` (score per excerpt, markers ``<<``/``>>`` removed, clamped to 0-100):
  +35  a speaker tag opens a line (``User:``, ``Q:``, ``Alice:``, ``Speaker 2:``, ``> `` quote reply)
  +15  second-person pronoun (you, your, you're, ...), +5 per further one, at most +25 in all
  +10  first-person singular (I, I'm, me, my, ...), +5 per further one, at most +20 in all
  +10  a question mark
  +10  quoted speech (a pair of straight or curly double quotes)
  +15  a spoken-style discourse marker (oh, ah, wow, hey, yeah, okay, hmm, well, thanks, please, sorry, lol, ...),
       +5 per further one, at most +30 in all
  +5   a contraction (n't, 're, 'm, 'll, 've), at most +10
  -20  citation/reference style (``et al.``, ``doi``, ``[12]``), -20 code-like text (``{``, ``}``, ``;`` or ``=``
       three or more times), -20 digit-heavy text (more than 15% of non-space characters are digits)

Rules for ``feature_category`` (two scores per description): each distinct keyword from
:data:`PERSONALITY_WORDS` / :data:`EXPERTISE_WORDS` found adds 40 to that score (at most 100).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from interp_sot.judging.base import Message
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY, split_descriptions
from interp_sot.judging.prompts.conversational import (
    CONVERSATIONAL_SCORE,
    MARK_CLOSE,
    MARK_OPEN,
    split_excerpts,
)
from interp_sot.judging.prompts.template import PromptTemplate

Handler = Callable[[str], str]
"""Takes the user message of a recognised template, returns the reply text."""

_SPEAKER = re.compile(r"^\s*(?:>\s|(?:[A-Z][\w.]{0,20}(?: \d+)?|[QA]|user|assistant|human)\s?:\s)", re.MULTILINE)
_YOU = re.compile(r"\b(?:you|your|yours|yourself|you're|you've|you'll|you'd|ya)\b", re.IGNORECASE)
_ME = re.compile(r"\b(?:I|I'm|I've|I'll|I'd|me|my|mine|myself)\b")
_QUOTES = re.compile(r"\"[^\"\n]{1,200}\"|“[^”\n]{1,200}”")
_MARKERS = re.compile(
    r"\b(?:oh|ah|aha|wow|hey|hi|hello|yeah|yep|nope|okay|ok|hmm|um|uh|well|thanks|thank you|please|sorry|lol|"
    r"right\?|huh|oops|whoa|gosh|alright)\b",
    re.IGNORECASE,
)
_CONTRACTION = re.compile(r"\w(?:n't|'re|'m|'ll|'ve)\b", re.IGNORECASE)
_CITATION = re.compile(r"\bet al\.|\bdoi\b|\[\d+(?:,\s*\d+)*\]", re.IGNORECASE)

PERSONALITY_WORDS = (
    "personality", "emotion", "emotional", "feeling", "mood", "tone", "attitude", "sentiment", "trait", "humor",
    "humour", "polite", "politeness", "friendly", "rude", "anger", "angry", "surprise", "realization", "excitement",
    "empathy", "sympathy", "agreement", "disagreement", "doubt", "confidence", "hesitation", "enthusiasm", "sarcasm",
    "apology", "gratitude", "praise", "criticism", "social", "interpersonal", "acknowledgment", "fear", "joy",
)
"""Keywords that mark a description as personality-related for the heuristic category rule."""
EXPERTISE_WORDS = (
    "math", "mathematics", "mathematical", "equation", "arithmetic", "algebra", "physics", "chemistry", "chemical",
    "biology", "medical", "medicine", "clinical", "law", "legal", "finance", "financial", "economics", "programming",
    "code", "python", "javascript", "software", "algorithm", "scientific", "science", "engineering", "history",
    "historical", "technical", "statistics", "geography", "astronomy", "genetics", "accounting",
)
"""Keywords that mark a description as expertise-related for the heuristic category rule."""


def _capped(count: int, first: int, more: int, cap: int) -> int:
    return 0 if count == 0 else min(cap, first + more * (count - 1))


def conversational_score(text: str) -> int:
    """The 0-100 rule score of one excerpt (see module doc)."""
    text = text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
    score = 0
    score += 35 if _SPEAKER.search(text) else 0
    score += _capped(len(_YOU.findall(text)), 15, 5, 25)
    score += _capped(len(_ME.findall(text)), 10, 5, 20)
    score += 10 if "?" in text else 0
    score += 10 if _QUOTES.search(text) else 0
    score += _capped(len(_MARKERS.findall(text)), 15, 5, 30)
    score += min(10, 5 * len(_CONTRACTION.findall(text)))
    score -= 20 if _CITATION.search(text) else 0
    score -= 20 if sum(text.count(c) for c in "{};=") >= 3 else 0
    chars = [c for c in text if not c.isspace()]
    score -= 20 if chars and sum(c.isdigit() for c in chars) > 0.15 * len(chars) else 0
    return max(0, min(100, score))


def category_scores(description: str) -> tuple[int, int]:
    """``(personality, expertise)`` rule scores of one feature description (see module doc)."""
    words = set(re.findall(r"[a-z]+", description.lower()))
    personality = min(100, 40 * len(words & set(PERSONALITY_WORDS)))
    expertise = min(100, 40 * len(words & set(EXPERTISE_WORDS)))
    return personality, expertise


def _answer_conversational(user: str) -> str:
    return json.dumps({"scores": [conversational_score(t) for t in split_excerpts(user)]})


def _answer_category(user: str) -> str:
    items = []
    for description in split_descriptions(user):
        personality, expertise = category_scores(description)
        items.append({"personality": personality, "expertise": expertise})
    return json.dumps({"items": items})


class HeuristicJudge:
    """Answers the toolkit's own prompts by rule; other callers can :meth:`register` more templates."""

    max_concurrency = 1

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[PromptTemplate, Handler]] = {}
        self.register(CONVERSATIONAL_SCORE, _answer_conversational)
        self.register(FEATURE_CATEGORY, _answer_category)

    @property
    def name(self) -> str:
        return "heuristic-v1"

    def register(self, template: PromptTemplate, handler: Handler) -> None:
        """Answer prompts rendered from ``template`` with ``handler(user_message) -> reply``."""
        self._handlers[template.system] = (template, handler)

    def complete(self, messages: list[Message]) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        users = [m["content"] for m in messages if m["role"] == "user"]
        if system not in self._handlers or not users:
            known = sorted(t.key for t, _ in self._handlers.values())
            raise ValueError(f"the heuristic judge cannot answer this prompt; it knows only the templates {known}")
        _, handler = self._handlers[system]
        return handler(users[0])
