"""pick_feature: the best passing feature with enough contexts, with ties broken as documented."""

from __future__ import annotations

import pandas as pd
import pytest

from interp_sot.screening.pick import pick_feature


def _table(rows):
    cols = ["feature", "conversation_ratio", "onset_share", "n_contexts", "max_act", "passes_filter"]
    t = pd.DataFrame(rows, columns=cols)
    t["frequency"] = 0.001
    return t


def test_pick_prefers_ratio_then_onset_then_evidence():
    t = _table([
        (0, 1.0, 0.9, 5, 9.0, True),     # too few contexts
        (1, 0.9, 0.8, 50, 3.0, True),
        (2, 0.9, 0.8, 50, 4.0, True),    # same ratio/onset/contexts, larger max act
        (3, 0.95, 0.6, 30, 1.0, True),   # best ratio with enough contexts
        (4, 1.0, 1.0, 50, 9.0, False),   # fails the filter
    ])
    p = pick_feature(t, min_contexts=20)
    assert (p.feature, p.n_candidates) == (3, 3)
    assert p.conversation_ratio == 0.95 and p.position_share == 0.6
    assert pick_feature(t[t.feature != 3], min_contexts=20).feature == 2
    assert pick_feature(t, min_contexts=1).feature == 0


def test_pick_explains_an_empty_pool():
    t = _table([(0, 1.0, 0.9, 5, 9.0, True), (1, 0.2, 0.1, 50, 1.0, False)])
    with pytest.raises(ValueError, match=r"1 pass with fewer"):
        pick_feature(t, min_contexts=20)
    with pytest.raises(ValueError, match="no 'n_contexts' column"):
        pick_feature(t.drop(columns="n_contexts"))


def test_pick_prefers_more_sources_among_equal_ratios():
    t = _table([(0, 1.0, 1.0, 50, 9.0, True), (1, 1.0, 0.7, 40, 2.0, True), (2, 0.9, 1.0, 50, 9.0, True)])
    t["n_sources"] = [1, 2, 3]
    p = pick_feature(t, min_contexts=20)
    assert (p.feature, p.n_sources) == (1, 2)  # ratio first, then sources beat onset share and max activation


def test_source_counts_equal_brute_force(tiny_llama):
    import numpy as np
    from conftest import D_MODEL, char_tokenizer
    from sae_lens import StandardSAE, StandardSAEConfig

    from interp_sot.features import CollectConfig, collect
    from interp_sot.screening.pick import source_counts

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=16))
    corpus = [{"text": t, "source": s} for t, s in [("Oh! really? yes.", "a"), ("The cell makes ATP.", "b"),
                                                     ("Wait, what now?", "c"), ("Data is stored.", "b")] * 2]
    stats = collect(tiny_llama, char_tokenizer(), corpus, layer=1, sae=sae,
                    config=CollectConfig(metadata_fields=("source",), progress=False, top_k=6))
    counts = source_counts(stats, k=6)
    seq, vals = stats.topk_seq.numpy(), stats.topk_values.numpy()
    for f in range(16):
        ok = (seq[f] >= 0) & np.isfinite(vals[f]) & (vals[f] > 0)
        expected = {stats.contexts.metadata(int(s))["source"] for s in seq[f][ok]}
        assert counts[f] == len(expected)
    with pytest.raises(KeyError, match="no top context has metadata field 'speaker'"):
        source_counts(stats, field="speaker", k=6)
