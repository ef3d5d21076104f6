"""Sentence/turn onset distances on hand-written token sequences."""

from __future__ import annotations

import pytest
from features_helpers import char_tokenizer

from interp_sot.features.onsets import OnsetRule, OnsetTracker, onset_distances, token_flags


def dist(pieces: list[str], rule: OnsetRule | None = None) -> list[int]:
    rule = rule or OnsetRule()
    return onset_distances([token_flags(p, rule) for p in pieces])


def test_sentence_end_needs_following_whitespace() -> None:
    assert dist(["Hello", " there", ".", " Oh", ",", " I", " see"]) == [0, 1, 2, 0, 1, 2, 3]
    assert dist(["Pi", " is", " 3", ".", "14", " ok"]) == [0, 1, 2, 3, 4, 5]
    assert dist(["Wait", "!", '"', " Then"]) == [0, 1, 2, 3]  # the quote is its own token, no space after '!'
    assert dist(["Wait", '!"', " Then", " go"]) == [0, 1, 0, 1]  # closers may follow the punctuation


def test_newlines_and_whitespace_only_tokens() -> None:
    assert dist(["Yes", "!", "\n", "\n", "No", " way"]) == [0, 1, 2, 3, 0, 1]
    assert dist(["a", "\nOh", " b"]) == [0, 0, 1]
    assert dist(["x", ". ", "Oh", " y"]) == [0, 1, 0, 1]
    assert dist([" ", " ", "Start", " b"]) == [0, 1, 0, 1]


def test_turn_markers_open_a_turn_and_are_not_onsets() -> None:
    pieces = ["<|im_start|>", "user", "\n", "Hi", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n", "Oh", ",",
              " right"]
    assert dist(pieces) == [0, 0, 1, 0, 1, 2, 3, 0, 1, 0, 1, 2]
    assert dist(["<｜Assistant｜>", "Oh", " well"]) == [0, 0, 1]


def test_rule_is_a_parameter() -> None:
    no_newline = OnsetRule(newline=False)
    assert dist(["a", "\n", "b"], no_newline) == [0, 1, 2]
    semicolon = OnsetRule(sentence_end=";")
    assert dist(["a", ";", " b", ".", " c"], semicolon) == [0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match="opens no boundaries"):
        OnsetRule(sentence_end="", newline=False, boundary_tokens=())
    assert OnsetRule.from_dict(semicolon.to_dict()) == semicolon


def test_tracker_decodes_token_ids() -> None:
    tok = char_tokenizer()
    ids = tok("Hi. Oh!\nOk", add_special_tokens=False)["input_ids"]
    assert OnsetTracker(tok).distances(ids) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
