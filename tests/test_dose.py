"""Dose finder: the coherent-limit walk, auto strengths, and a real pre-sweep on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from builders import char_tokenizer

from interp_sot.experiments.coherence import score_traces, split_generated
from interp_sot.experiments.dose import DoseConfig, DoseResult, auto_strengths, coherent_limit, find_dose
from interp_sot.steering.strength_units import strength_scale


def _dose(pos: float, neg: float) -> DoseResult:
    return DoseResult(0, "unit", 0.25, 10.0, 1.0, -1.0, pos, neg, pos / 10, -neg / 10, 4, [])


def test_coherent_limit_walks_out_from_zero() -> None:
    s = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    ok = [True, False, True, True, True, True, False, True]  # +4 passes but lies beyond the failing +3
    assert coherent_limit(s, ok, +1) == 2.0
    assert coherent_limit(s, ok, -1) == -1.0
    assert coherent_limit(s, [False] * 8, +1) == 0.0


def test_degenerate_share_cap_marks_loops_incoherent() -> None:
    from interp_sot.experiments.coherence import Coherence
    from interp_sot.experiments.dose import _table

    scale = strength_scale(torch.eye(3), 0, "resid", residual_norm=2.0)
    fluent, loop = Coherence(-0.8, 10, 0.0, 0.2, False), Coherence(-0.4, 10, 0.9, 0.0, True)
    scores = [[loop, loop], [fluent, fluent], [fluent, loop], [Coherence(math.nan, 0, 0.0, 0.0, False)] * 2]
    strengths = [-0.2, 0.0, 0.1, 0.2]
    table, base = _table(strengths, scores, scale, DoseConfig(layer=0, strengths=tuple(strengths)))
    assert base == -0.8 and [r["coherent"] for r in table] == [True, True, True, False]  # NaN: no tokens
    assert table[0]["drop"] == pytest.approx(-0.4) and table[2]["degenerate_share"] == 0.5
    capped = DoseConfig(layer=0, strengths=tuple(strengths), max_degenerate_share=0.25)
    assert [r["coherent"] for r in _table(strengths, scores, scale, capped)[0]] == [False, True, False, False]


def test_auto_strengths_spread_over_the_range() -> None:
    assert auto_strengths(_dose(2.0, -2.0), 5) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert auto_strengths(_dose(3.0, -1.0), 5) == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert auto_strengths(_dose(2.0, 0.0), 3) == [0.0, 1.0, 2.0]
    assert auto_strengths(_dose(0.0, -2.0), 3) == [-2.0, -1.0, 0.0]
    assert auto_strengths(_dose(1.0, -1.0), 2) == [0.0, 1.0]
    assert auto_strengths(_dose(0.0, 0.0), 1) == [0.0]
    with pytest.raises(ValueError, match="no coherent"):
        auto_strengths(_dose(0.0, 0.0), 3)
    with pytest.raises(ValueError, match="n must be"):
        auto_strengths(_dose(1.0, -1.0), 0)


def test_config_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        DoseConfig(layer=1, tolerance=0.0)
    with pytest.raises(ValueError, match="include 0"):
        DoseConfig(layer=1, strengths=(-1.0, 1.0))
    with pytest.raises(ValueError, match="include 0"):
        DoseConfig(layer=1, ratios=(0.1, 0.2))
    with pytest.raises(ValueError, match="duplicates"):
        DoseConfig(layer=1, strengths=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="max_degenerate_share"):
        DoseConfig(layer=1, max_degenerate_share=2.0)
    with pytest.raises(ValueError, match="site"):
        DoseConfig(layer=1, site="mlp_out")  # type: ignore[arg-type]


def test_find_dose_on_a_tiny_model(tiny_llama: torch.nn.Module, tmp_path) -> None:
    tok = char_tokenizer()
    w = torch.randn(4, tiny_llama.config.hidden_size)
    scale = strength_scale(w, 2, "resid", residual_norm=3.0)
    cfg = DoseConfig(layer=1, ratios=(-8.0, -2.0, 0.0, 2.0, 8.0), max_new_tokens=6, do_sample=False,
                     batch_size=4, add_special_tokens=True)
    prompts = ["3 + 4 =", "Hi there", "x" * 1100]  # the last one exceeds the 1024-token context and is dropped
    res = find_dose(tiny_llama, tok, prompts, scale, cfg, out_dir=tmp_path, progress=False)
    assert res.n_prompts == 2 and [r["strength"] for r in res.table] == [-8.0, -2.0, 0.0, 2.0, 8.0]
    assert [r["ratio"] for r in res.table] == pytest.approx([-8.0, -2.0, 0.0, 2.0, 8.0])
    # the s = 0 rows are the model's own greedy continuations, scored by the unsteered model
    enc = tok(prompts[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = tiny_llama.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=0)
    prompt_ids, completion_ids = split_generated(out, enc["attention_mask"], [2, 0])
    ref = score_traces(tiny_llama, tok, prompt_ids, completion_ids)
    assert res.baseline_logprob == pytest.approx(sum(r.mean_logprob for r in ref) / 2, abs=1e-5)
    zero = res.table[2]
    assert zero["drop"] == 0.0 and zero["coherent"]
    ok = [r["drop"] <= 0.25 for r in res.table]
    assert [r["coherent"] for r in res.table] == ok
    assert res.positive == coherent_limit([-8, -2, 0, 2, 8], ok, +1)
    assert res.negative == coherent_limit([-8, -2, 0, 2, 8], ok, -1)
    assert res.positive_ratio == pytest.approx(res.positive)  # resid units: s is the ratio
    saved = json.loads((tmp_path / "dose.json").read_text())
    assert saved["positive"] == res.positive and saved["config"]["tolerance"] == 0.25
    assert len((tmp_path / "dose_traces.jsonl").read_text().splitlines()) == 10
    pytest.importorskip("matplotlib")
    assert (tmp_path / "dose.png").stat().st_size > 0


def test_all_prompts_too_long(tiny_llama: torch.nn.Module) -> None:
    scale = strength_scale(torch.eye(tiny_llama.config.hidden_size), 0, "unit", residual_norm=1.0)
    with pytest.raises(ValueError, match="exceed the model's context"):
        find_dose(tiny_llama, char_tokenizer(), ["y" * 1100], scale, DoseConfig(layer=1), progress=False)
