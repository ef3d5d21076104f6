"""The README's Python quickstart, run as written on a tiny model, a random sae-lens SAE and a labelled corpus."""

from __future__ import annotations

import torch
from conftest import D_MODEL, VOCAB, char_tokenizer
from steering_utils import hook_count

from interp_sot.features import CollectConfig, collect
from interp_sot.screening.pick import pick_feature
from interp_sot.screening.screen import FilterConfig, screen
from interp_sot.steering import feature_direction, steer


def test_quickstart_runs_as_written(tiny_llama):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    model, tok = tiny_llama, char_tokenizer()
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=64))
    corpus = [{"text": "Oh! Wait, really? Are you sure?", "conversational": True},
              {"text": "The mitochondrion makes ATP in the cell.", "conversational": False}] * 4
    stats = collect(model, tok, corpus, layer=1, sae=sae,
                    config=CollectConfig(metadata_fields=("conversational",), progress=False))
    frame = stats.to_frame()
    assert len(frame) == 64 and stats.n_tokens > 0
    # the tiny random model's features need not pass the paper's thresholds: open the filter for the test
    table = screen(stats, doc_labels=stats.contexts.sequence_labels("conversational"),
                   filter_config=FilterConfig(ratio_threshold=0.0, position_threshold=0.0))
    assert len(table) == 64 and table["conversation_ratio"].notna().any()
    best = pick_feature(table, min_contexts=1).feature
    ids = torch.randint(3, VOCAB, (1, 5))
    with steer(model, 1, feature_direction(sae, best, units="unit"), strength=10.0):
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 9) and hook_count(model) == 0
