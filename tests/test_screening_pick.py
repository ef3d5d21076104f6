"""pick_feature: the best passing feature with enough contexts by the lower bound of its ratio's Wilson interval,
with ties broken as documented; pick_order: the one order of every feature."""

from __future__ import annotations

import pandas as pd
import pytest

from interp_sot.screening.pick import pick_feature, pick_order, ranked_candidates


def _table(rows):
    cols = ["feature", "conversation_ratio", "onset_share", "n_contexts", "max_act", "passes_filter"]
    t = pd.DataFrame(rows, columns=cols)
    t["frequency"] = 0.001
    return t


def test_pick_prefers_the_ratios_lower_bound_then_onset_then_evidence():
    # lower bounds of the 95% Wilson interval: 5/5 0.566, 45/50 0.786, 19/20 0.764, 27/30 0.744
    t = _table([
        (0, 1.0, 0.9, 5, 9.0, True),     # too few contexts, and the weakest evidence anyway
        (1, 0.9, 0.8, 50, 3.0, True),
        (2, 0.9, 0.8, 50, 4.0, True),    # same ratio/onset/contexts, larger max act
        (3, 0.95, 0.6, 20, 1.0, True),   # best ratio with enough contexts, but a lower bound of 0.764
        (4, 1.0, 1.0, 50, 9.0, False),   # fails the filter
        (5, 0.9, 0.9, 30, 1.0, True),
    ])
    p = pick_feature(t, min_contexts=20)
    assert (p.feature, p.n_candidates) == (2, 4)
    assert p.conversation_ratio == 0.9 and p.position_share == 0.8
    assert (p.ratio_lo, p.ratio_hi) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert ranked_candidates(t, min_contexts=20)["feature"].tolist() == [2, 1, 3, 5]
    assert pick_feature(t[t.feature != 2], min_contexts=20).feature == 1
    assert pick_feature(t, min_contexts=1).feature == 2  # 1.0 of 5 contexts no longer wins on its point estimate
    assert pick_feature(t[t.feature.isin([0, 3])], min_contexts=1).feature == 3


def test_pick_order_lists_every_feature_candidates_first():
    t = _table([(0, 1.0, 0.9, 5, 9.0, True), (1, 0.6, 0.8, 50, 3.0, True), (2, 1.0, 1.0, 50, 9.0, False),
                (3, 0.9, 0.9, 40, 1.0, True), (4, float("nan"), 0.9, 0, 1.0, False)])
    order = pick_order(t, min_contexts=20)["feature"].tolist()
    # candidates by lower bound (3: 36/40, 1: 30/50), then passing with too few contexts (0), then the rest (2, 4)
    assert order == [3, 1, 0, 2, 4]
    assert order[0] == pick_feature(t, min_contexts=20).feature


def test_pick_explains_an_empty_pool():
    t = _table([(0, 1.0, 0.9, 5, 9.0, True), (1, 0.2, 0.1, 50, 1.0, False)])
    with pytest.raises(ValueError, match=r"1 pass with fewer"):
        pick_feature(t, min_contexts=20)
    with pytest.raises(ValueError, match="no 'n_contexts' column"):
        pick_feature(t.drop(columns="n_contexts"))


def test_pick_prefers_more_sources_among_equal_ratios():
    t = _table([(0, 1.0, 1.0, 50, 9.0, True), (1, 1.0, 0.7, 50, 2.0, True), (2, 0.9, 1.0, 50, 9.0, True)])
    t["n_sources"] = [1, 2, 3]
    p = pick_feature(t, min_contexts=20)
    assert (p.feature, p.n_sources) == (1, 2)  # ratio bound first, then sources beat onset share and max activation


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
