"""The truncated forward shared by statistics collection and contrastive directions."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import char_tokenizer

from interp_sot.steering import decoder_layers, mean_residual


@pytest.mark.parametrize(
    "statement",
    ["import interp_sot.activations", "import interp_sot.steering", "from interp_sot.features import forward_to_layer"],
)
def test_every_import_order_works(statement):
    """interp_sot.steering imports activations, which needs steering.layers: no import cycle may break."""
    result = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@torch.no_grad()
def test_mean_residual_equals_full_forward_and_skips_later_layers(tiny_llama):
    tok = char_tokenizer()
    texts = ["Oh, wait!", "The cell makes ATP."]
    layers = decoder_layers(tiny_llama)
    seen: list[torch.Tensor] = []
    h = layers[1].register_forward_hook(lambda m, a, o: seen.append(o.detach().clone()))
    enc = tok(texts, return_tensors="pt", padding=True)
    tiny_llama(**enc)
    h.remove()
    mask = enc["attention_mask"].bool() & (enc["input_ids"] != tok.bos_token_id)
    expected = seen[0][mask].mean(dim=0)

    later_calls = []
    h2 = layers[2].register_forward_hook(lambda m, a, o: later_calls.append(1))
    try:
        got = mean_residual(tiny_llama, tok, texts, 1)
    finally:
        h2.remove()
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    assert later_calls == []  # layers after the one read never run
