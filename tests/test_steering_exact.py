"""Steered activations equal the unsteered ones plus s_i * d_i, exactly, per row, at prompt and decode steps."""

from __future__ import annotations

import pytest
import torch
from conftest import D_MODEL, FAMILIES, VOCAB
from steering_utils import hook_count, record

from interp_sot.steering import build_offset, decoder_layers, steer

LAYER = 1


def _prefill_and_step(model, ids, mask):
    """Prefill with a cache, then one decode step with a fixed token: returns the cache-using outputs."""
    out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    nxt = torch.full((ids.shape[0], 1), 7)
    mask2 = torch.cat([mask, torch.ones_like(nxt)], dim=1)
    model(input_ids=nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True)


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_resid_post_equals_unsteered_plus_offset_every_family(build_model, prompt_batch, family):
    model = build_model(family)
    layer = decoder_layers(model)[LAYER]
    ids, mask = prompt_batch["input_ids"], prompt_batch["attention_mask"]
    strengths = torch.tensor([-5.0, 0.0, 10.0])
    direction = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(3))

    with record(layer) as base:
        _prefill_and_step(model, ids, mask)
    with steer(model, LAYER, direction, strengths), record(layer) as steered:
        _prefill_and_step(model, ids, mask)

    assert len(base) == len(steered) == 2  # prefill [B, T, d] and one decode step [B, 1, d]
    assert steered[1].shape[1] == 1
    offset = (strengths[:, None] * direction[None, :]).unsqueeze(1)
    for b, s in zip(base, steered, strict=True):
        assert torch.equal(s, b + offset)
    assert hook_count(model) == 0


@torch.no_grad()
def test_resid_pre_equals_unsteered_plus_offset(tiny_llama, prompt_batch):
    layer = decoder_layers(tiny_llama)[LAYER]
    direction = torch.randn(D_MODEL)
    with record(layer, "resid_pre") as base:
        _prefill_and_step(tiny_llama, prompt_batch["input_ids"], prompt_batch["attention_mask"])
    with steer(tiny_llama, LAYER, direction, 4.0, site="resid_pre"), record(layer, "resid_pre") as steered:
        _prefill_and_step(tiny_llama, prompt_batch["input_ids"], prompt_batch["attention_mask"])
    for b, s in zip(base, steered, strict=True):
        assert torch.equal(s, b + 4.0 * direction)


@torch.no_grad()
def test_resid_pre_at_layer_equals_resid_post_at_previous_layer(tiny_llama, prompt_batch):
    direction = torch.randn(D_MODEL)
    with steer(tiny_llama, LAYER, direction, 3.0, site="resid_pre"):
        pre = tiny_llama(**prompt_batch).logits
    with steer(tiny_llama, LAYER - 1, direction, 3.0, site="resid_post"):
        post = tiny_llama(**prompt_batch).logits
    base = tiny_llama(**prompt_batch).logits
    assert torch.equal(pre, post)
    assert not torch.allclose(pre, base)


@torch.no_grad()
def test_resid_pre_does_not_mutate_caller_inputs_embeds(tiny_llama):
    embeds = torch.randn(2, 5, D_MODEL)
    keep = embeds.clone()
    with steer(tiny_llama, 0, torch.ones(D_MODEL), 2.0, site="resid_pre"):
        tiny_llama(inputs_embeds=embeds)
    assert torch.equal(embeds, keep)


@torch.no_grad()
def test_per_row_direction_table_with_feature_index(tiny_llama, prompt_batch):
    layer = decoder_layers(tiny_llama)[LAYER]
    table = torch.randn(4, D_MODEL)  # F = 4 features
    index = torch.tensor([3, 0, 3])
    strengths = torch.tensor([1.0, -2.0, 0.5])
    with record(layer) as base:
        tiny_llama(**prompt_batch)
    with steer(tiny_llama, LAYER, table, strengths, feature_index=index), record(layer) as steered:
        tiny_llama(**prompt_batch)
    for row in range(3):
        expected = base[0][row] + strengths[row] * table[index[row]]
        assert torch.equal(steered[0][row], expected)


@torch.no_grad()
def test_per_row_directions_scalar_strength(tiny_llama, prompt_batch):
    layer = decoder_layers(tiny_llama)[LAYER]
    dirs = torch.randn(3, D_MODEL)
    with record(layer) as base:
        tiny_llama(**prompt_batch)
    with steer(tiny_llama, LAYER, dirs, 2.5), record(layer) as steered:
        tiny_llama(**prompt_batch)
    assert torch.equal(steered[0], base[0] + 2.5 * dirs[:, None, :])


@torch.no_grad()
def test_shared_direction_broadcasts_to_any_batch(tiny_llama):
    layer = decoder_layers(tiny_llama)[LAYER]
    d = torch.randn(D_MODEL)
    for batch in (1, 4):
        ids = torch.randint(3, VOCAB, (batch, 5))
        with record(layer) as base:
            tiny_llama(ids)
        with steer(tiny_llama, LAYER, d, -1.5), record(layer) as steered:
            tiny_llama(ids)
        assert torch.equal(steered[0], base[0] - 1.5 * d)


@torch.no_grad()
def test_several_layers_each_get_the_offset(tiny_llama, prompt_batch):
    layers = decoder_layers(tiny_llama)
    d = torch.randn(D_MODEL)
    with steer(tiny_llama, [0, 2], d, 1.0) as handle, record(layers[0]) as first:
        tiny_llama(**prompt_batch)
    with record(layers[0]) as base:
        tiny_llama(**prompt_batch)
    assert torch.equal(first[0], base[0] + d)
    assert handle.calls == 2 and not handle.active


@torch.no_grad()
def test_bfloat16_model_gets_offset_in_its_dtype(build_model, prompt_batch):
    model = build_model("llama").to(torch.bfloat16)
    layer = decoder_layers(model)[LAYER]
    d = torch.randn(D_MODEL)
    with record(layer) as base:
        model(**prompt_batch)
    with steer(model, LAYER, d, 3.0), record(layer) as steered:
        model(**prompt_batch)
    assert steered[0].dtype == torch.bfloat16
    assert torch.equal(steered[0], base[0] + (3.0 * d).to(torch.bfloat16))


def test_gradients_flow_through_out_of_place_path(tiny_llama, prompt_batch):
    """With autograd on, the hook must not modify a tensor autograd needs: gradients equal an explicit reference."""
    d = torch.randn(D_MODEL, requires_grad=False)
    with steer(tiny_llama, LAYER, d, 2.0):
        loss = tiny_llama(**prompt_batch).logits.square().mean()
    loss.backward()
    grad = tiny_llama.lm_head.weight.grad.clone()
    tiny_llama.zero_grad()

    def manual(module, args, output):
        return output + 2.0 * d

    h = decoder_layers(tiny_llama)[LAYER].register_forward_hook(manual)
    tiny_llama(**prompt_batch).logits.square().mean().backward()
    h.remove()
    assert torch.allclose(grad, tiny_llama.lm_head.weight.grad, atol=0, rtol=0)


def test_build_offset_shapes():
    d = torch.arange(4.0)
    assert build_offset(d, 2.0, 4).shape == (1, 1, 4)
    assert build_offset(d, [1.0, 2.0, 3.0], 4).shape == (3, 1, 4)
    assert torch.equal(build_offset(d, [1.0, -1.0], 4)[1, 0], -d)
    assert build_offset(torch.ones(5, 4), 1.0, 4, feature_index=[4, 4]).shape == (2, 1, 4)
    # integer directions are cast, not rejected
    assert build_offset(torch.arange(4), 1.0, 4).dtype == torch.float32


def test_nnsight_wrapped_model_is_steered(tiny_llama, prompt_batch):
    from nnsight import NNsight

    wrapped = NNsight(tiny_llama)
    d = torch.randn(D_MODEL)
    with torch.no_grad():
        with steer(tiny_llama, LAYER, d, 2.0):
            expected = tiny_llama(**prompt_batch).logits
        with steer(wrapped, LAYER, d, 2.0):
            with wrapped.trace(prompt_batch["input_ids"], attention_mask=prompt_batch["attention_mask"]):
                logits = wrapped.output.logits.save()
    assert torch.equal(logits, expected)
    assert hook_count(tiny_llama) == 0


class _OpLog:
    """Every ATen op dispatched while active (a TorchDispatchMode sees what actually runs)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        log = self.ops = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                log.append(str(func.overloadpacket))
                return func(*args, **(kwargs or {}))

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


@pytest.mark.parametrize("scope", ["all", "generated"])
@torch.no_grad()
def test_hook_is_one_in_place_add_per_call(tiny_llama, prompt_batch, scope):
    """Steering adds exactly one aten.add_ per steered call and no other op (no copies, casts or host tensors)."""
    from collections import Counter

    ids, mask = prompt_batch["input_ids"], prompt_batch["attention_mask"]
    with _OpLog() as base:
        _prefill_and_step(tiny_llama, ids, mask)
    handle = steer(tiny_llama, LAYER, torch.randn(D_MODEL), torch.tensor([1.0, 2.0, 3.0]), scope=scope)
    with handle, _OpLog() as steered:
        _prefill_and_step(tiny_llama, ids, mask)
    extra = Counter(steered.ops) - Counter(base.ops)
    missing = Counter(base.ops) - Counter(steered.ops)
    steered_calls = 2 if scope == "all" else 1  # "generated" leaves the prefill call alone
    assert extra == Counter({"aten.add_": steered_calls}) and not missing
