"""Steering during generate(): KV cache, left padding, scope="generated", and one-batch strength sweeps."""

from __future__ import annotations

import pytest
import torch
from conftest import D_MODEL, VOCAB
from steering_utils import greedy, hook_count, record

from interp_sot.steering import decoder_layers, steer

LAYER = 1
STRENGTHS = [-10.0, -5.0, 0.0, 5.0, 10.0]


@pytest.fixture
def direction() -> torch.Tensor:
    d = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(11))
    return d / d.norm()


@pytest.mark.parametrize("scope", ["all", "generated"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_greedy_output_same_with_and_without_kv_cache(build_model, prompt_batch, direction, scope, family):
    model = build_model(family)
    strengths = torch.tensor([8.0, -8.0, 4.0])
    with steer(model, LAYER, direction, strengths, scope=scope):
        cached = greedy(model, prompt_batch, use_cache=True)
    with steer(model, LAYER, direction, strengths, scope=scope):
        uncached = greedy(model, prompt_batch, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, greedy(model, prompt_batch))  # steering did change the continuation
    assert hook_count(model) == 0


@pytest.mark.parametrize("use_cache", [True, False])
@torch.no_grad()
def test_scope_generated_leaves_prompt_positions_bit_identical(tiny_llama, prompt_batch, direction, use_cache):
    layer = decoder_layers(tiny_llama)[LAYER]
    prompt_len = prompt_batch["input_ids"].shape[1]
    with record(layer) as base:
        greedy(tiny_llama, prompt_batch, n=4, use_cache=use_cache)
    with steer(tiny_llama, LAYER, direction, 6.0, scope="generated") as handle, record(layer) as steered:
        greedy(tiny_llama, prompt_batch, n=4, use_cache=use_cache)
    assert handle.calls == 4  # one call per forward pass: steering is checked at every decode step
    assert torch.equal(steered[0], base[0])  # the prefill call is untouched
    if use_cache:
        assert all(s.shape[1] == 1 for s in steered[1:])  # decode steps are [B, 1, d] and all steered
    else:
        for b, s in zip(base[1:], steered[1:], strict=True):  # each call re-runs the prompt positions
            assert torch.equal(s[:, :prompt_len], b[:, :prompt_len])


@pytest.mark.parametrize("use_cache", [True, False])
@torch.no_grad()
def test_scope_generated_steps_equal_replay_plus_offset(tiny_llama, prompt_batch, direction, use_cache):
    """Replay the steered token sequence unsteered in one pass: generated positions differ by exactly s*d.

    Layer LAYER's output depends only on layers <= LAYER, which resid_post steering at LAYER leaves alone.
    """
    layer = decoder_layers(tiny_llama)[LAYER]
    prompt_len = prompt_batch["input_ids"].shape[1]
    with steer(tiny_llama, LAYER, direction, 6.0, scope="generated"), record(layer) as steered:
        new = greedy(tiny_llama, prompt_batch, n=4, use_cache=use_cache)
    full_ids = torch.cat([prompt_batch["input_ids"], new], dim=1)
    full_mask = torch.cat([prompt_batch["attention_mask"], torch.ones_like(new)], dim=1)
    with record(layer) as replay:
        tiny_llama(input_ids=full_ids, attention_mask=full_mask)
    ref = replay[0]
    offset = 6.0 * direction
    assert torch.allclose(steered[0], ref[:, :prompt_len], atol=1e-5, rtol=0)
    # Calls 1..3 carry positions prompt_len .. prompt_len+2 (the last sampled token is never fed back).
    for step, out in enumerate(steered[1:]):
        pos = prompt_len + step
        assert torch.allclose(out[:, -1], ref[:, pos] + offset, atol=1e-5, rtol=0)
        if not use_cache:
            gen = out[:, prompt_len:]
            assert torch.allclose(gen, ref[:, prompt_len : pos + 1] + offset, atol=1e-5, rtol=0)


def test_handle_reused_across_generate_calls_with_scope_generated(tiny_llama, prompt_batch, direction):
    """A new generate() with a shorter prompt is recognised as a new prompt (cache length restarts at 0)."""
    with steer(tiny_llama, LAYER, direction, 6.0, scope="generated"):
        first = greedy(tiny_llama, prompt_batch, n=4)
        short = {k: v[:, 3:] for k, v in prompt_batch.items()}
        second = greedy(tiny_llama, short, n=4)
    with steer(tiny_llama, LAYER, direction, 6.0, scope="generated"):
        alone = greedy(tiny_llama, short, n=4)
    assert torch.equal(second, alone)
    assert first.shape == second.shape


def test_five_strength_sweep_in_one_batch_equals_five_runs(tiny_llama, direction):
    prompt = torch.randint(3, VOCAB, (1, 6), generator=torch.Generator().manual_seed(5))
    batch = {"input_ids": prompt.repeat(5, 1), "attention_mask": torch.ones(5, 6, dtype=torch.long)}
    with steer(tiny_llama, LAYER, direction, torch.tensor(STRENGTHS)):
        swept = greedy(tiny_llama, batch, n=8)
    for row, s in enumerate(STRENGTHS):
        single = {"input_ids": prompt, "attention_mask": torch.ones(1, 6, dtype=torch.long)}
        with steer(tiny_llama, LAYER, direction, s):
            assert torch.equal(swept[row : row + 1], greedy(tiny_llama, single, n=8)), f"strength {s}"
    assert len({tuple(r.tolist()) for r in swept}) > 1  # the strengths produce different continuations


def test_sweep_over_left_padded_prompts_matches_per_strength_batches(tiny_llama, prompt_batch, direction):
    """3 prompts x 5 strengths in one batch of 15 == five batches of 3, row by row (left padding included)."""
    reps = {k: v.repeat(len(STRENGTHS), 1) for k, v in prompt_batch.items()}
    strengths = torch.tensor(STRENGTHS).repeat_interleave(3)
    with steer(tiny_llama, LAYER, direction, strengths):
        swept = greedy(tiny_llama, reps, n=6)
    for i, s in enumerate(STRENGTHS):
        with steer(tiny_llama, LAYER, direction, s):
            assert torch.equal(swept[3 * i : 3 * i + 3], greedy(tiny_llama, prompt_batch, n=6)), f"strength {s}"


def test_zero_strength_is_identical_to_no_steering(tiny_llama, prompt_batch, direction):
    with steer(tiny_llama, LAYER, direction, 0.0):
        steered = greedy(tiny_llama, prompt_batch)
    assert torch.equal(steered, greedy(tiny_llama, prompt_batch))
