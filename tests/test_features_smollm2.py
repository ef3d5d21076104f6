"""collect() on the real SmolLM2-135M-Instruct: layer-L residual, BOS handling and chat-turn onsets."""

from __future__ import annotations

import pytest
import torch
from features_helpers import assert_matches, brute_force, make_sae

from interp_sot.features.collect import CollectConfig, collect
from interp_sot.features.onsets import OnsetTracker
from interp_sot.features.stats import TokenInfo

pytestmark = pytest.mark.integration
LAYER = 10


def test_smollm2_collect_matches_full_forward(smollm2) -> None:
    model, tok = smollm2
    chat = tok.apply_chat_template([{"role": "user", "content": "Is 7 prime?"},
                                    {"role": "assistant", "content": "Oh, yes. It is."}], tokenize=False)
    docs = [chat, "The cat sat. Oh well, then it left.\nDone."]
    sae = make_sae("jumprelu", d_in=576, d_sae=64, seed=1)
    with torch.no_grad():
        hs = [model(torch.tensor([tok(d)["input_ids"]]), output_hidden_states=True).hidden_states[LAYER + 1][0]
              for d in docs]
        sae.W_enc /= float(torch.cat(hs[0:1])[1:].std())
    stats = collect(model, tok, docs, LAYER, sae, CollectConfig(top_k=4, progress=False))
    tracker = OnsetTracker(tok)
    ids = [tok(d)["input_ids"] for d in docs]
    firsts = [1 if i[0] == tok.bos_token_id else 0 for i in ids]  # SmolLM2's BOS is <|im_start|>
    assert firsts == [1, 0]
    tokens = TokenInfo(
        torch.tensor([s for s, i in enumerate(ids) for _ in i[firsts[s]:]]),
        torch.tensor([p for s, i in enumerate(ids) for p in range(firsts[s], len(i))]),
        torch.tensor([p for s, i in enumerate(ids) for p in range(len(i) - firsts[s])]),
        torch.tensor([d for s, i in enumerate(ids) for d in tracker.distances(i[firsts[s]:])]),
    )
    with torch.no_grad():
        dense = torch.cat([sae.encode(h[f:]) for h, f in zip(hs, firsts, strict=True)])
    assert_matches(stats, brute_force(dense, tokens, 4), sums_rtol=1e-5, values_rtol=1e-5)
    oh = [p for p, t in enumerate(ids[0]) if tok.decode([t]) == "Oh"]
    assert oh and tracker.distances(ids[0][1:])[oh[-1] - 1] == 0  # " Oh" opening the assistant turn is an onset
