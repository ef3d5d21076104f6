"""Strength units: the added vector of each convention against its definition, the record, and bad input."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from interp_sot.steering.strength_units import STRENGTH_UNITS, added_vector, feature_max_act, strength_scale

W = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
"""Decoder rows: feature 0 has norm 5, feature 1 is dead, feature 2 has norm 2."""


@pytest.mark.parametrize("strength", [2.5, -1.5, 0.0])
def test_each_unit_adds_what_its_definition_says(strength: float) -> None:
    r = 20.0
    u0 = W[0] / 5.0
    expected = {
        "unit": strength * u0,
        "sae": strength * W[0],
        "max_act": strength * 7.0 * u0,
        "resid": strength * r * u0,
    }
    for units in STRENGTH_UNITS:
        vec, rec = added_vector(W, 0, strength, units, residual_norm=r, max_act=7.0)  # type: ignore[arg-type]
        torch.testing.assert_close(vec, expected[units])
        assert rec["units"] == units and rec["strength"] == strength
        assert rec["added_norm"] == pytest.approx(float(expected[units].norm()))
        assert rec["ratio_to_residual"] == pytest.approx(float(expected[units].norm()) / r)
        assert rec["residual_norm"] == r


def test_max_act_from_feature_stats_and_inverse_conversions() -> None:
    stats = SimpleNamespace(max_act=torch.tensor([4.0, 0.0, 1.0]))
    scale = strength_scale(W, 2, "max_act", residual_norm=10.0, stats=stats)
    assert scale.max_act == 1.0 and scale.unit_norm == pytest.approx(1.0)
    torch.testing.assert_close(scale.vector(3.0), torch.tensor([0.0, 3.0, 0.0]))
    sae = SimpleNamespace(W_dec=W)
    sc = strength_scale(sae, 0, "sae", residual_norm=10.0)
    s = sc.strength_for_ratio(-0.2)
    assert s == pytest.approx(-0.4) and sc.ratio(s) == pytest.approx(0.2)
    assert sc.added_norm(sc.strength_for_norm(3.0)) == pytest.approx(3.0)


def test_resid_units_use_the_measured_median_residual_norm(tiny_llama: torch.nn.Module) -> None:
    from builders import char_tokenizer

    from interp_sot.steering import median_residual_norm

    tok = char_tokenizer()
    r = median_residual_norm(tiny_llama, tok, ["3 + 4 = 7", "abc def"], 1)
    w = torch.randn(5, tiny_llama.config.hidden_size)
    vec, rec = added_vector(w, 3, 0.25, "resid", residual_norm=r)
    assert float(vec.norm()) == pytest.approx(0.25 * r, rel=1e-5)
    assert rec["ratio_to_residual"] == pytest.approx(0.25)


def test_bad_input_is_named() -> None:
    for units in STRENGTH_UNITS:
        with pytest.raises(ValueError, match="all-zero decoder row"):
            strength_scale(W, 1, units, residual_norm=1.0, max_act=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="never fired"):
        strength_scale(W, 0, "max_act", residual_norm=1.0, stats=SimpleNamespace(max_act=torch.zeros(3)))
    with pytest.raises(ValueError, match="never fired"):
        strength_scale(W, 0, "max_act", residual_norm=1.0, max_act=0.0)
    with pytest.raises(ValueError, match="max_act= or stats="):
        strength_scale(W, 0, "max_act", residual_norm=1.0)
    with pytest.raises(ValueError, match=r"unknown strength units .* registered: unit, sae, max_act, resid"):
        strength_scale(W, 0, "norm", residual_norm=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="residual_norm"):
        strength_scale(W, 0, "unit", residual_norm=0.0)
    with pytest.raises(ValueError, match="out of range"):
        strength_scale(W, 3, "unit", residual_norm=1.0)
    with pytest.raises(ValueError, match="out of range"):
        feature_max_act(SimpleNamespace(max_act=torch.ones(2)), 5)
