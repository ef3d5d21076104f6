"""The glue between "feature ids in some units" and the sweep lives in the stages (``steer_features``,
``steer_controls``): it equals building the directions by hand, and a dose run's coherent range is enforced
there for every caller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import _common, char_tokenizer

from interp_sot.experiments import GenerationSettings, SweepConfig
from interp_sot.experiments.dose import DoseResult
from interp_sot.io import read_jsonl
from interp_sot.stages.controls import matched_norms
from interp_sot.stages.steer import steer_features, steer_stage
from interp_sot.stages.strengths import directions_of, feature_scales, read_units, units_record
from interp_sot.tasks.countdown import generate_problems

pytestmark = pytest.mark.usefixtures("one_thread")
LAYER = 1


@pytest.fixture(scope="module")
def model() -> Any:
    import transformers as tf

    torch.manual_seed(0)
    return tf.LlamaForCausalLM(tf.LlamaConfig(**_common(max_position_embeddings=1024))).eval()


@pytest.fixture(scope="module")
def w_dec() -> torch.Tensor:
    return torch.randn(12, 32, generator=torch.Generator().manual_seed(3))


def _sweep() -> SweepConfig:
    return SweepConfig(layer=LAYER, generation=GenerationSettings(max_new_tokens=4, do_sample=False, stop_strings=()),
                       batch_size=8)


def test_steer_features_equals_the_hand_built_directions(model: Any, w_dec: torch.Tensor, tmp_path: Path) -> None:
    tok, problems, strengths = char_tokenizer(), generate_problems(2, seed=4), [-2.0, 0.0, 3.0]
    glued = steer_features(model, tok, w_dec, problems, [5], strengths, _sweep(), tmp_path / "glue", units="resid",
                           residual=7.0, progress=False)
    scales = feature_scales(w_dec, [5], "resid", residual=7.0)
    by_hand = steer_stage(model, tok, problems, directions_of(scales), strengths, _sweep(), tmp_path / "hand",
                          progress=False, strength_units=units_record(scales, strengths))
    assert [r.completion for r in glued.records] == [r.completion for r in by_hand.records]
    assert read_jsonl(tmp_path / "glue/sweep.jsonl") == read_jsonl(tmp_path / "hand/sweep.jsonl")
    record = read_units(tmp_path / "glue")
    assert record == json.loads((tmp_path / "hand/strength_units.json").read_text())
    assert record is not None and record["units"] == "resid" and record["residual_norm"] == 7.0
    # what matched controls steer at: the signed added norms of the non-zero strengths, ascending
    unit = 7.0  # resid units: one unit of s adds the residual norm
    assert matched_norms(record) == pytest.approx((-2.0 * unit, 3.0 * unit))


def test_a_dose_range_is_enforced_by_the_stage(model: Any, w_dec: torch.Tensor, tmp_path: Path) -> None:
    tok, problems = char_tokenizer(), generate_problems(2, seed=4)
    dose = DoseResult(5, "resid", 0.25, 7.0, 7.0, -1.0, 0.1, -0.1, 0.1, 0.1, 8, [])
    with pytest.raises(ValueError, match=r"outside the coherent range \[-0.1, 0.1\]"):
        steer_features(model, tok, w_dec, problems, [5], [0.0, 0.2], _sweep(), tmp_path / "far", units="resid",
                       residual=7.0, dose=dose, progress=False)
    with pytest.raises(ValueError, match="measured strengths in 'resid' units"):
        steer_features(model, tok, w_dec, problems, [5], [0.0, 0.1], _sweep(), tmp_path / "units", units="unit",
                       residual=7.0, dose=dose, progress=False)
    with pytest.raises(ValueError, match="dose run is for feature 5, not 6"):
        steer_features(model, tok, w_dec, problems, [6], [0.0, 0.1], _sweep(), tmp_path / "other", units="resid",
                       residual=7.0, dose=dose, progress=False)
    assert not any((tmp_path / d).exists() for d in ("far", "units", "other"))  # refused before anything is written
    done = steer_features(model, tok, w_dec, problems, [5], [0.0, 0.1], _sweep(), tmp_path / "inside",
                          units="resid", residual=7.0, dose=dose, progress=False)
    assert len(done.records) == 4
