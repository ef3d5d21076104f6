"""Per-trace SAE feature totals: sparse storage, unsteered and steered streams, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from features_helpers import make_sae

from interp_sot.analysis.diversity import set_diversity
from interp_sot.experiments.trace_features import SparseTotals, diversity_frame, feature_sets, trace_feature_totals

LAYER = 1
PROMPTS = [[1, 10, 11, 12, 13], [1, 20], [1, 30, 31, 32, 33, 34, 35]]
COMPLETIONS = [[50, 51, 52, 53], [60, 61, 62, 63, 64, 65, 66, 67], [70]]


def brute_force(model, sae, prompt, completion, offset=None, threshold=0.0):
    """resid_post of LAYER from an unpadded pass (hidden_states[L + 1]), encoded token by token."""
    with torch.no_grad():
        hs = model(input_ids=torch.tensor([prompt + completion]), output_hidden_states=True).hidden_states
        resid = hs[LAYER + 1][0, len(prompt):]
        if offset is not None:
            resid = resid + offset
        acts = sae.encode(resid).double()
    active = acts > threshold
    mass = torch.where(active, acts, torch.zeros_like(acts)).sum(0).numpy()
    return mass, active.sum(0).numpy()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_unsteered_totals_equal_brute_force(tiny_llama, batch_size: int) -> None:
    sae = make_sae("standard", d_in=tiny_llama.config.hidden_size, d_sae=48)
    got = trace_feature_totals(tiny_llama, sae, LAYER, PROMPTS, COMPLETIONS, batch_size=batch_size)
    for t, p, c in zip(got, PROMPTS, COMPLETIONS, strict=True):
        mass, count = brute_force(tiny_llama, sae, p, c)
        dense = t.dense()
        assert t.n_tokens == len(c) and t.d_sae == 48
        np.testing.assert_allclose(dense.mass, mass, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(dense.count, count)
        np.testing.assert_array_equal(t.indices, np.flatnonzero(count))  # stored sparse: active features only


def test_steered_stream_adds_the_steering_vector(tiny_llama) -> None:
    sae = make_sae("standard", d_in=tiny_llama.config.hidden_size, d_sae=48)
    d = torch.randn(tiny_llama.config.hidden_size)
    strengths = [0.0, 2.0, -3.0]
    got = trace_feature_totals(tiny_llama, sae, LAYER, PROMPTS, COMPLETIONS, stream="steered", direction=d,
                               strengths=strengths, threshold=0.1)
    for t, p, c, s in zip(got, PROMPTS, COMPLETIONS, strengths, strict=True):
        mass, count = brute_force(tiny_llama, sae, p, c, offset=s * d, threshold=0.1)
        np.testing.assert_allclose(t.dense().mass, mass, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(t.dense().count, count)


def test_round_trip_and_diversity_frame(tiny_llama) -> None:
    sae = make_sae("standard", d_in=tiny_llama.config.hidden_size, d_sae=48)
    totals = trace_feature_totals(tiny_llama, sae, LAYER, PROMPTS, COMPLETIONS)
    back = [SparseTotals.from_dict(t.to_dict()) for t in totals]
    sets = {"low": list(range(0, 24)), "high": list(range(24, 48))}
    frame = diversity_frame(back, sets, keys=["a", "b", "c"])
    assert len(frame) == 6 and list(frame["key"]) == ["a", "a", "b", "b", "c", "c"]
    for (key, t), p, c in zip(zip("abc", totals, strict=True), PROMPTS, COMPLETIONS, strict=True):
        mass, count = brute_force(tiny_llama, sae, p, c)
        for name, idx in sets.items():
            row = frame[(frame["key"] == key) & (frame["feature_set"] == name)].iloc[0]
            assert row["coverage"] == int((count[idx] > 0).sum())
            w = mass[idx][mass[idx] > 0]
            ref = float(-(w / w.sum() * np.log(w / w.sum())).sum()) if w.size else 0.0
            assert row["entropy"] == pytest.approx(ref, rel=1e-4, abs=1e-6)
            assert row["entropy"] == pytest.approx(set_diversity(t.dense(), idx).entropy)


def test_bad_input(tiny_llama) -> None:
    sae = make_sae("standard", d_in=tiny_llama.config.hidden_size, d_sae=48)
    with pytest.raises(ValueError, match="at least one generated token"):
        trace_feature_totals(tiny_llama, sae, LAYER, [[1, 2]], [[]])
    with pytest.raises(ValueError, match="needs a"):
        trace_feature_totals(tiny_llama, sae, LAYER, PROMPTS, COMPLETIONS, stream="steered")
    with pytest.raises(ValueError, match="sorted"):
        SparseTotals.from_dict({"indices": [3, 1], "mass": [1.0, 1.0], "count": [1, 1], "n_tokens": 2, "d_sae": 4})
    with pytest.raises(ValueError, match="not a sparse"):
        SparseTotals.from_dict({"indices": [1]})


def test_feature_sets_from_screen_and_categories() -> None:
    import pandas as pd

    table = pd.DataFrame({"feature": [3, 0, 1, 2], "conversation_ratio": [0.9, 0.5, np.nan, 0.51]})
    cats = pd.DataFrame({"is_personality": [True, False, False, False], "is_expertise": [False] * 4},
                        index=pd.Index([2, 0, 1, 3], name="feature_id"))
    sets = feature_sets(table, cats)
    assert sets["conversational"].tolist() == [2, 3]
    assert sets["non_conversational"].tolist() == [0, 1]
    assert sets["personality"].tolist() == [2] and "expertise" not in sets  # empty sets are left out


def test_shared_prefix_residuals_equal_the_unshared_pass(tiny_llama) -> None:
    """A few-shot prefix shared by every prompt runs once per batch; the completion residuals are unchanged."""
    from interp_sot.experiments.trace_features import _resid_batches

    torch.manual_seed(0)
    shots = torch.randint(4, 90, (40,)).tolist()
    prompts = [shots + torch.randint(4, 90, (k,)).tolist() for k in (3, 5, 1)]
    completions = [torch.randint(4, 90, (k,)).tolist() for k in (6, 2, 9)]
    shared = dict(_resid_batches(tiny_llama, 1, prompts, completions, batch_size=3, min_shared_prefix=8))
    full = dict(_resid_batches(tiny_llama, 1, prompts, completions, batch_size=3, min_shared_prefix=10_000))
    for i in range(3):
        assert shared[i].shape == (len(completions[i]), full[i].shape[1])
        assert torch.allclose(shared[i], full[i], atol=1e-4)
