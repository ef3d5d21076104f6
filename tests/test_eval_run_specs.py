"""Every dose and steer run writes ``steering.json``: a spec that reproduces exactly the direction it steered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from builders import _common, char_tokenizer
from features_helpers import make_sae

from interp_sot.experiments.dose import DoseConfig
from interp_sot.experiments.sweep import GenerationSettings, SweepConfig
from interp_sot.stages.dose import dose_stage
from interp_sot.stages.steer import steer_stage
from interp_sot.stages.strengths import feature_scales, run_prompts, units_record
from interp_sot.steering import steer
from interp_sot.steering.spec import read_spec, spec_direction, steer_from_spec
from interp_sot.tasks.countdown import generate_problems

LAYER = 1
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Any:
    import transformers as tf

    torch.manual_seed(0)
    return tf.LlamaForCausalLM(tf.LlamaConfig(**_common(max_position_embeddings=1024))).eval()


def test_dose_run_writes_a_spec_of_its_feature_and_range(model: Any, tmp_path: Path) -> None:
    sae = make_sae("standard", d_in=32, d_sae=48)
    tok = char_tokenizer()
    prompts = run_prompts(generate_problems(2, seed=0), "tinyzero", tok)
    config = DoseConfig(layer=LAYER, ratios=(-0.5, 0.0, 0.5), max_new_tokens=4, do_sample=False, batch_size=8,
                        add_special_tokens=True)
    res = dose_stage(model, tok, sae, 3, prompts, config, tmp_path, inputs={"model": {"hub": "org/tiny"}},
                     progress=False)
    spec = read_spec(tmp_path / "steering.json")
    scale = feature_scales(sae, [3], "resid", residual=res.residual_norm)[3]
    assert (spec.model, spec.layer, spec.units, spec.direction.feature) == ("org/tiny", LAYER, "resid", 3)
    assert spec.strengths == (res.negative, 0.0, res.positive) and spec.residual_norm == res.residual_norm
    assert torch.equal(spec_direction(spec), scale.direction)
    assert spec.direction.decoder_norm == pytest.approx(float(sae.W_dec[3].detach().norm()))
    assert "steering.json" in (tmp_path / "manifest.json").read_text()
    ids = tok(["Solve 3 + 4."], return_tensors="pt").input_ids
    with torch.no_grad():
        with steer(model, LAYER, scale.direction, 0.5):
            want = model(ids).logits
        with steer_from_spec(model, spec, 0.5):
            assert torch.equal(model(ids).logits, want)


def test_steer_run_writes_one_spec_per_feature(model: Any, tmp_path: Path) -> None:
    sae = make_sae("standard", d_in=32, d_sae=48)
    scales = feature_scales(sae, [5, 9], "unit", residual=10.0)
    strengths = [0.0, 2.0]
    gen = GenerationSettings(max_new_tokens=3, do_sample=False, stop_strings=())
    steer_stage(model, char_tokenizer(), generate_problems(2, seed=1), {f: s.direction for f, s in scales.items()},
                strengths, SweepConfig(layer=LAYER, generation=gen, batch_size=8), tmp_path, progress=False,
                strength_units=units_record(scales, strengths), inputs={"model": {"name": "smollm2"}})
    for f in (5, 9):
        spec = read_spec(tmp_path, feature=f)
        assert (spec.model, spec.units, spec.strengths, spec.residual_norm) == ("smollm2", "unit", (0.0, 2.0), 10.0)
        assert torch.equal(spec_direction(spec), scales[f].direction)
