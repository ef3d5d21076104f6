"""Every failure raises a ValueError naming the problem and leaves zero hooks attached."""

from __future__ import annotations

import pytest
import torch
from conftest import D_MODEL, N_LAYERS
from steering_utils import hook_count, record

from interp_sot.steering import decoder_layers, feature_direction, steer

D = torch.ones(D_MODEL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": N_LAYERS}, "out of range"),
        ({"layer": -1}, "out of range"),
        ({"layer": [0, 99]}, "out of range"),
        ({"layer": [1, 1]}, "duplicate"),
        ({"direction": torch.ones(D_MODEL + 1)}, "width"),
        ({"direction": torch.ones(2, 3, D_MODEL)}, "shape"),
        ({"direction": torch.ones(D_MODEL, dtype=torch.complex64)}, "cannot be cast"),
        ({"direction": torch.ones(D_MODEL, dtype=torch.bool)}, "cannot be cast"),
        ({"direction": torch.full((D_MODEL,), float("nan"))}, "NaN"),
        ({"direction": "not a tensor"}, "cannot be converted"),
        ({"strength": float("inf")}, "NaN or inf"),
        ({"strength": torch.ones(2, 2)}, "1-D"),
        ({"direction": torch.ones(3, D_MODEL), "strength": torch.ones(2)}, "one strength per batch row"),
        ({"direction": torch.ones(4, D_MODEL), "feature_index": torch.tensor([0, 4])}, "feature_index"),
        ({"direction": torch.ones(4, D_MODEL), "feature_index": torch.tensor([0.0])}, "integer"),
        ({"feature_index": torch.tensor([0])}, "direction table"),
        ({"site": "mlp_out"}, "site"),
        ({"scope": "prompt"}, "scope"),
        ({"layers_path": "model.nothing"}, "layers_path"),
    ],
)
def test_bad_arguments_raise_and_attach_nothing(tiny_llama, kwargs, message):
    args = {"layer": 1, "direction": D, "strength": 1.0, **kwargs}
    layer = args.pop("layer")
    direction = args.pop("direction")
    with pytest.raises(ValueError, match=message):
        steer(tiny_llama, layer, direction, **args)
    assert hook_count(tiny_llama) == 0


def test_dtype_overflow_is_reported(build_model):
    model = build_model("llama").to(torch.float16)
    with pytest.raises(ValueError, match="overflows"):
        steer(model, 1, D, 1e6)
    assert hook_count(model) == 0


def test_unsupported_architecture_lists_families():
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4)])

    with pytest.raises(ValueError, match="Llama, Mistral, Qwen2"):
        steer(Odd(), 0, torch.ones(4))
    # ... and the module path can be given explicitly
    odd = Odd()
    with steer(odd, 0, torch.ones(4), 2.0, layers_path="blocks"):
        y = odd.blocks[0](torch.zeros(1, 1, 4))
    assert torch.equal(y, odd.blocks[0](torch.zeros(1, 1, 4)) + 2.0)
    # without a stated d_model the width is checked at the first call
    handle = steer(odd, 0, torch.ones(3), layers_path="blocks")
    with pytest.raises(ValueError, match="width 3 != residual width 4"):
        odd.blocks[0](torch.zeros(1, 1, 4))
    assert not handle.active and hook_count(odd) == 0


def test_not_a_module_is_rejected():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        steer(object(), 0, D)


def test_batch_mismatch_at_first_call_raises_and_removes_hooks(tiny_llama):
    handle = steer(tiny_llama, 1, D, torch.tensor([1.0, 2.0, 3.0]))
    assert hook_count(tiny_llama) == 1
    with pytest.raises(ValueError, match="batch size 3"):
        tiny_llama(torch.randint(3, 90, (2, 4)))
    assert hook_count(tiny_llama) == 0 and not handle.active


def test_exception_in_with_block_removes_hooks(tiny_llama):
    with pytest.raises(RuntimeError, match="boom"):
        with steer(tiny_llama, [0, 2], D, 1.0, scope="generated"):
            assert hook_count(tiny_llama) == 4  # pre + post hook on each of two layers
            raise RuntimeError("boom")
    assert hook_count(tiny_llama) == 0


def test_registration_failure_on_later_layer_detaches_earlier_ones(tiny_llama, monkeypatch):
    """The steering-vectors bug: a failure on layer 2 must not leave layer 0's hook attached."""
    late = decoder_layers(tiny_llama)[2]

    def fail(*args, **kwargs):
        raise RuntimeError("cannot register here")

    monkeypatch.setattr(late, "register_forward_hook", fail)
    with pytest.raises(RuntimeError, match="cannot register"):
        steer(tiny_llama, [0, 2], D, 1.0)
    assert hook_count(tiny_llama) == 0


def test_remove_is_idempotent_and_attach_twice_fails(tiny_llama):
    handle = steer(tiny_llama, 0, D)
    with pytest.raises(RuntimeError, match="already attached"):
        handle.attach()
    handle.remove()
    handle.remove()
    assert hook_count(tiny_llama) == 0


# -- feature_direction on a real sae-lens SAE ------------------------------------------------------------------
@pytest.fixture
def sae():
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    return StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=64))


def test_feature_direction_conventions(sae):
    raw = feature_direction(sae, 5, units="sae")
    assert torch.equal(raw, sae.W_dec[5].detach())
    unit = feature_direction(sae, 5)
    assert torch.allclose(unit.norm(), torch.tensor(1.0)) and torch.allclose(unit * raw.norm(), raw)
    table = feature_direction(sae, [5, 7, 5])
    assert table.shape == (3, D_MODEL) and torch.equal(table[0], unit)


@pytest.mark.parametrize(("index", "norm", "message"), [(64, "unit", "out of range"), (-1, "unit", "out of range"),
                                                       ([], "unit", "at least one"), (0, "l2", "norm")])
def test_feature_direction_errors(sae, index, norm, message):
    with pytest.raises(ValueError, match=message):
        feature_direction(sae, index, units=norm)


def test_feature_direction_dead_feature(sae):
    with torch.no_grad():
        sae.W_dec[3] = 0
    with pytest.raises(ValueError, match=r"features \[3\]"):
        feature_direction(sae, [2, 3])
    assert torch.equal(feature_direction(sae, 3, units="sae"), torch.zeros(D_MODEL))


def test_feature_direction_steers_like_the_raw_row(tiny_llama, sae):
    """'sae' convention: strength s adds exactly s * W_dec[f]."""
    layer = decoder_layers(tiny_llama)[1]
    ids = torch.randint(3, 90, (1, 4))
    with torch.no_grad():
        with record(layer) as base:
            tiny_llama(ids)
        with steer(tiny_llama, 1, feature_direction(sae, 9, units="sae"), 10.0), record(layer) as steered:
            tiny_llama(ids)
    assert torch.equal(steered[0], base[0] + 10.0 * sae.W_dec[9].detach())
