"""Coherence guard: batched unsteered log-probs equal one forward pass per trace; degenerate-text flag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from builders import char_tokenizer

from interp_sot.experiments.coherence import (
    CoherenceConfig,
    completion_logprobs,
    score_texts,
    score_traces,
    split_generated,
    text_shares,
)

PROMPTS = [[1, 10, 11, 12, 13, 14, 15], [1, 20, 21], [1, 30, 31, 32, 33], [1, 40]]
COMPLETIONS = [[50, 51, 52], [60, 61, 62, 63, 64, 65], [], [70]]


def brute_force(model: torch.nn.Module, prompt: list[int], completion: list[int]) -> list[float]:
    """One unpadded forward pass, summed token by token."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].double().log_softmax(-1)
    return [float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(completion)]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_batched_logprobs_equal_per_trace_forward(build_model, family: str, batch_size: int) -> None:
    model = build_model(family)
    got = completion_logprobs(model, PROMPTS, COMPLETIONS, batch_size=batch_size)
    for g, p, c in zip(got, PROMPTS, COMPLETIONS, strict=True):
        assert g.shape == (len(c),)
        assert g.tolist() == pytest.approx(brute_force(model, p, c), abs=1e-5)


def test_split_generated_strips_left_padding_and_keeps_the_end_token() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    out = torch.tensor([[0, 0, 5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 13, 14, 15]])
    prompts, completions = split_generated(out, mask, end_ids=[2, 0])
    assert prompts == [[5, 6], [8, 9, 10, 11]]
    assert completions == [[7, 2], [12, 13, 14, 15]]


def test_score_traces_on_generated_rows(tiny_llama: torch.nn.Module) -> None:
    tok = char_tokenizer()
    enc = tok(["1+2=", "abc de"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = tiny_llama.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=0)
    prompts, completions = split_generated(out, enc["attention_mask"], [2, 0])
    scores = score_traces(tiny_llama, tok, prompts, completions)
    for s, p, c in zip(scores, prompts, completions, strict=True):
        ref = brute_force(tiny_llama, p, c)
        assert s.n_tokens == len(c) and s.mean_logprob == pytest.approx(sum(ref) / len(ref), abs=1e-5)
    empty = score_traces(tiny_llama, tok, [[1, 5]], [[]])[0]
    assert math.isnan(empty.mean_logprob) and empty.n_tokens == 0


def test_score_texts_tokenises_prompt_and_completion_separately(tiny_llama: torch.nn.Module) -> None:
    tok = char_tokenizer()
    got = score_texts(tiny_llama, tok, ["ab", "3*4"], ["cd e", "=12"])
    ref = score_traces(tiny_llama, tok, [tok("ab")["input_ids"], tok("3*4")["input_ids"]],
                       [tok("cd e")["input_ids"], tok("=12")["input_ids"]])
    assert [g.mean_logprob for g in got] == pytest.approx([r.mean_logprob for r in ref])


def test_degenerate_text_flag() -> None:
    assert text_shares("<" * 40).degenerate  # the demo's s = +-10 samples
    loop = "Let me try again. " * 8
    assert text_shares(loop).repeat_share > 0.5 and text_shares(loop).degenerate
    assert text_shares("#$%&@!?*^~" * 3).symbol_share == 1.0
    fluent = ("We need 24 from 3, 4, 6 and 2. First, 3 * 4 = 12, then 12 + 6 = 18, and 18 + 2 = 20, "
              "which is not 24. Instead try 6 * 4 = 24 and 3 - 2 = 1, so 24 * 1 = 24. "
              "<answer> 6 * 4 * (3 - 2) </answer>")
    shares = text_shares(fluent)
    assert not shares.degenerate and shares.symbol_share < 0.6 and shares.repeat_share < 0.2
    assert not text_shares("<<<<").degenerate  # too short to judge (min_units)
    assert text_shares("").repeat_share == 0.0


def test_bad_config_and_input(tiny_llama: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="max_repeat_share"):
        CoherenceConfig(max_repeat_share=1.5)
    with pytest.raises(ValueError, match="min_units"):
        CoherenceConfig(ngram=5, min_units=3)
    with pytest.raises(ValueError, match="exceed the model's context"):
        completion_logprobs(tiny_llama, [[1] * 1020], [[5] * 10])
    with pytest.raises(ValueError, match="2 prompts for 1"):
        completion_logprobs(tiny_llama, [[1], [1]], [[5]])
    with pytest.raises(ValueError, match="at least one token"):
        completion_logprobs(tiny_llama, [[]], [[5]])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_shared_prefix_pass_equals_the_full_pass(build_model, family) -> None:
    """A few-shot prefix shared by every prompt is run once per batch; the log-probs equal the unshared pass."""
    from interp_sot.experiments.coherence import completion_logprobs, shared_prefix_length

    model = build_model(family).eval()
    torch.manual_seed(0)
    shots = torch.randint(4, 90, (40,)).tolist()
    prompts = [shots + torch.randint(4, 90, (k,)).tolist() for k in (3, 5, 1, 7)]
    completions = [torch.randint(4, 90, (k,)).tolist() for k in (6, 2, 9, 4)]
    assert shared_prefix_length(prompts) >= 40
    shared = completion_logprobs(model, prompts, completions, batch_size=4, min_shared_prefix=8)
    full = completion_logprobs(model, prompts, completions, batch_size=4, min_shared_prefix=10_000)
    for a, b in zip(shared, full, strict=True):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-4)
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # the last prompt token stays outside the prefix
