"""Sentence and turn onsets: how far each token is from the start of its sentence or chat turn.

The paper keeps features that fire "in the first four tokens" of a sentence or turn but never defines the
boundary, so the rule is an explicit, documented parameter (:class:`OnsetRule`). Default rule, on the decoded
text of each token:

* The start of the sequence opens a boundary.
* A token containing a newline opens a boundary (text after its last newline, as in ``"\\nOh"``, is an onset).
* Sentence-final punctuation (``.!?…``, optionally followed by closing quotes/brackets) opens a boundary when
  whitespace follows: inside the same token (``". "``) or at the start of the next one (``"." + " Oh"``).
  ``"3.14"`` is not a boundary because no whitespace follows the dot.
* A boundary token (chat-turn markers such as ``<|im_start|>``, ``<|end_header_id|>``, ``<｜Assistant｜>``,
  ``<think>``) opens a boundary and is never an onset itself.
* The onset is the first token after an open boundary that contains non-whitespace text; its distance is 0,
  the next token's 1, and so on. Tokens before the first onset count from the sequence start.

A firing "at onset" is one whose token has distance ``< n`` (``n = 4`` by default, a parameter of
:class:`~interp_sot.features.stats.FeatureStats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from interp_sot.protocols import decode_text

if TYPE_CHECKING:
    from interp_sot.protocols import Tokenizer

DEFAULT_BOUNDARY_TOKENS: tuple[str, ...] = (
    "<|im_start|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<start_of_turn>",
    "[INST]",
    "[/INST]",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<think>",
    "</think>",
)


@dataclass(frozen=True)
class OnsetRule:
    """Which token texts open a sentence/turn boundary (see the module docstring)."""

    sentence_end: str = ".!?…"
    """Characters that end a sentence when whitespace follows them."""
    closers: str = "\"')]”’»"
    """Characters allowed between the sentence-final character and the whitespace (closing quotes, brackets)."""
    newline: bool = True
    """Whether a newline opens a boundary."""
    boundary_tokens: tuple[str, ...] = DEFAULT_BOUNDARY_TOKENS
    """Exact token texts (after stripping whitespace) that open a boundary and are never onsets."""

    def __post_init__(self) -> None:
        if not self.sentence_end and not self.newline and not self.boundary_tokens:
            raise ValueError("OnsetRule opens no boundaries at all: give sentence_end, newline or boundary_tokens")
        object.__setattr__(self, "boundary_tokens", tuple(self.boundary_tokens))

    def to_dict(self) -> dict[str, Any]:
        return {"sentence_end": self.sentence_end, "closers": self.closers, "newline": self.newline,
                "boundary_tokens": list(self.boundary_tokens)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> OnsetRule:
        tokens = d["boundary_tokens"]
        if not isinstance(tokens, (list, tuple)):
            raise ValueError(f"onset rule: boundary_tokens must be a list of strings, got {tokens!r}")
        return cls(str(d["sentence_end"]), str(d["closers"]), bool(d["newline"]), tuple(str(t) for t in tokens))


class TokenFlags(NamedTuple):
    """What the onset rule needs to know about one token's text."""

    boundary: bool
    """A boundary token (never an onset)."""
    lead_ws: bool
    """Starts with whitespace."""
    has_text: bool
    """Contains non-whitespace characters."""
    text_after_newline: bool
    """Contains a newline followed (within the token) by non-whitespace text."""
    opens: bool
    """Its end opens a boundary by itself (trailing newline, or sentence end followed by whitespace)."""
    ends_sentence: bool
    """Ends with a sentence-final character (plus closers) and no whitespace: a boundary if whitespace follows."""


def token_flags(text: str, rule: OnsetRule) -> TokenFlags:
    stripped = text.strip()
    if stripped and stripped in rule.boundary_tokens:
        return TokenFlags(True, False, True, False, True, False)
    has_text = bool(stripped)
    lead_ws = text[:1].isspace()
    has_newline = rule.newline and "\n" in text
    after_nl = text.rsplit("\n", 1)[1] if has_newline else text
    text_after_newline = has_newline and bool(after_nl.strip())
    core = text.rstrip()
    trailing_ws = len(core) < len(text)
    core = core.rstrip(rule.closers)
    sentence_final = bool(core) and core[-1] in rule.sentence_end
    if has_newline and not after_nl.strip():
        opens = True
    else:
        opens = sentence_final and trailing_ws
    ends_sentence = sentence_final and not trailing_ws
    return TokenFlags(False, lead_ws, has_text, text_after_newline, opens, ends_sentence)


def onset_distances(flags: Sequence[TokenFlags]) -> list[int]:
    """Distance of each token from the latest sentence/turn onset (0 = the onset token)."""
    out: list[int] = []
    pending, maybe_end, last = True, False, 0
    for i, fl in enumerate(flags):
        if maybe_end and fl.lead_ws:
            pending = True
        maybe_end = False
        if fl.boundary:
            out.append(i - last)
            pending = True
            continue
        if (pending and fl.has_text) or fl.text_after_newline:
            last, pending = i, False
        out.append(i - last)
        if fl.opens:
            pending = True
        elif fl.ends_sentence:
            maybe_end = True
    return out


class OnsetTracker:
    """Onset distances for token ids of one tokenizer, decoding each distinct id once."""

    def __init__(self, tokenizer: Tokenizer, rule: OnsetRule | None = None) -> None:
        self.tokenizer = tokenizer
        self.rule = rule or OnsetRule()
        self._cache: dict[int, TokenFlags] = {}

    def flags(self, token_id: int) -> TokenFlags:
        fl = self._cache.get(token_id)
        if fl is None:
            fl = token_flags(decode_text(self.tokenizer, [token_id]), self.rule)
            self._cache[token_id] = fl
        return fl

    def distances(self, token_ids: Sequence[int]) -> list[int]:
        """``[len(token_ids)]`` onset distances for the counted tokens of one sequence."""
        return onset_distances([self.flags(int(t)) for t in token_ids])
