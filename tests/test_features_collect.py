"""collect(): tiny Llama + char tokenizer + real sae-lens SAE against a per-document dense reference."""

from __future__ import annotations

import random

import pytest
import torch
from features_helpers import assert_matches, assert_stats_equal, brute_force, collect_setup, make_sae

from interp_sot.features.collect import CHECKPOINT_FILE, CollectConfig, collect
from interp_sot.features.onsets import OnsetTracker
from interp_sot.features.stats import TokenInfo
from interp_sot.io import read_safetensors

LAYER = 1
WORDS = ["oh", "well", "I", "see", "Wait", "yes", "no", "maybe", "we", "think", "so", "right", "hmm", "ok"]


def documents(n: int = 14, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
            parts.append(words.capitalize() + rng.choice([".", "!", "?", ",", "\n"]))
        docs.append(" ".join(parts))
    return docs


@pytest.fixture(scope="module")
def setup():
    return collect_setup(LAYER)


def reference(model, tok, sae, docs, layer=LAYER, k=5):
    """One document at a time through the full model; BOS dropped; sae.encode; brute-force stats."""
    tracker = OnsetTracker(tok)
    acts, seq, pos, start, onset = [], [], [], [], []
    for i, text in enumerate(docs):
        ids = tok(text)["input_ids"][:64]
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer + 1][0]
            acts.append(sae.encode(hidden[1:]))
        n = len(ids) - 1
        seq += [i] * n
        pos += range(1, n + 1)
        start += range(n)
        onset += tracker.distances(ids[1:])
    tokens = TokenInfo(*(torch.tensor(v) for v in (seq, pos, start, onset)))
    return brute_force(torch.cat(acts), tokens, k), tokens.n


CFG = dict(batch_tokens=150, max_length=64, chunk_size=64, top_k=5, progress=False)


def test_matches_full_model_reference_and_stops_at_layer(setup) -> None:
    model, tok, sae = setup
    docs = documents()
    calls = {"later": 0, "head": 0}
    h1 = model.model.layers[LAYER + 1].register_forward_hook(lambda *a: calls.__setitem__("later", calls["later"] + 1))
    h2 = model.lm_head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    try:
        stats = collect(model, tok, docs, LAYER, sae, CollectConfig(**CFG))
    finally:
        h1.remove()
        h2.remove()
    assert calls == {"later": 0, "head": 0}
    ref, n = reference(model, tok, sae, docs)
    assert stats.n_tokens == n
    assert_matches(stats, ref, sums_rtol=1e-5, values_rtol=1e-5)
    assert stats.info["hook"] == f"blocks.{LAYER}.hook_resid_post"
    assert (stats.fire_count > 0).sum() > 10
    f = int(stats.fire_count.argmax())
    seq, pos = int(stats.topk_seq[f, 0]), int(stats.topk_pos[f, 0])
    assert stats.contexts is not None and stats.contexts.tokens(seq) == tok(docs[seq])["input_ids"]
    ctx = stats.context(f, 0, window=4)
    assert ctx.tokens[ctx.pos] == tok(docs[seq])["input_ids"][pos]


def test_corpus_forms_agree(setup) -> None:
    import datasets

    model, tok, sae = setup
    docs = documents(8, seed=1)
    cfg = CollectConfig(**CFG, metadata_fields=("conversational",))
    rows = [{"text": d, "conversational": i % 3 == 0} for i, d in enumerate(docs)]
    base = collect(model, tok, docs, LAYER, sae, CollectConfig(**CFG))
    forms = {
        "dicts": rows,
        "token ids": [{"text": tok(d)["input_ids"], "conversational": i % 3 == 0} for i, d in enumerate(docs)],
        "dataset": datasets.Dataset.from_list(rows),
        "streaming dataset": datasets.Dataset.from_list(rows).to_iterable_dataset(),
    }
    for name, corpus in forms.items():
        stats = collect(model, tok, corpus, LAYER, sae, cfg)
        assert_stats_equal(stats, base), name
        assert stats.contexts is not None
        kept = stats.contexts.seq_ids()
        assert all(stats.contexts.metadata(s) == {"conversational": s % 3 == 0} for s in kept), name
    plain_ids = collect(model, tok, [tok(d)["input_ids"] for d in docs], LAYER, sae, CollectConfig(**CFG))
    assert_stats_equal(plain_ids, base)


class Killed(Exception):
    pass


def dies_after(docs: list[str], n: int):
    for i, d in enumerate(docs):
        if i == n:
            raise Killed
        yield d


def test_resume_after_kill_equals_uninterrupted(setup, tmp_path) -> None:
    model, tok, sae = setup
    docs = documents(16, seed=2)
    cfg = CollectConfig(**{**CFG, "checkpoint_every": 60})
    whole = collect(model, tok, docs, LAYER, sae, cfg)
    with pytest.raises(Killed):
        collect(model, tok, dies_after(docs, 11), LAYER, sae, cfg, checkpoint_dir=tmp_path)
    _, meta = read_safetensors(tmp_path / CHECKPOINT_FILE)
    assert 0 < meta["docs_done"] < 11 and not meta["complete"]  # resumes from the middle
    resumed = collect(model, tok, docs, LAYER, sae, cfg, checkpoint_dir=tmp_path)
    assert_stats_equal(resumed, whole, exact_sums=True)
    assert resumed.contexts is not None and whole.contexts is not None
    assert resumed.contexts.seq_ids() == whole.contexts.seq_ids()
    again = collect(model, tok, [], LAYER, sae, cfg, checkpoint_dir=tmp_path)  # complete: corpus not read again
    assert_stats_equal(again, whole)
    with pytest.raises(ValueError, match=r"different settings .*top_k"):
        collect(model, tok, docs, LAYER, sae, CollectConfig(**{**CFG, "top_k": 4}), checkpoint_dir=tmp_path)


def test_max_tokens_stops_at_a_batch_boundary_and_can_be_raised(setup, tmp_path) -> None:
    model, tok, sae = setup
    docs = documents()
    stats = collect(model, tok, docs, LAYER, sae, CollectConfig(**{**CFG, "max_tokens": 100}), checkpoint_dir=tmp_path)
    assert 100 <= stats.n_tokens < 100 + CFG["batch_tokens"]
    again = collect(model, tok, docs, LAYER, sae, CollectConfig(**{**CFG, "max_tokens": 100}), checkpoint_dir=tmp_path)
    assert_stats_equal(again, stats)
    more = collect(model, tok, docs, LAYER, sae, CollectConfig(**CFG), checkpoint_dir=tmp_path)
    assert_stats_equal(more, collect(model, tok, docs, LAYER, sae, CollectConfig(**CFG)))


def test_bad_inputs(setup) -> None:
    model, tok, sae = setup
    cfg = CollectConfig(**CFG)
    with pytest.raises(ValueError, match=r"layer 3 out of range.*0\.\.2"):
        collect(model, tok, ["hi"], 3, sae, cfg)
    with pytest.raises(ValueError, match="residual width 32 != SAE d_in 16"):
        collect(model, tok, ["hi"], LAYER, make_sae("jumprelu", d_in=16), cfg)
    with pytest.raises(ValueError, match="no tokens"):
        collect(model, tok, [], LAYER, sae, cfg)
    with pytest.raises(ValueError, match="no tokens"):
        collect(model, tok, ["", ""], LAYER, sae, cfg)
    with pytest.raises(ValueError, match="no field 'text'"):
        collect(model, tok, [{"body": "hi"}], LAYER, sae, cfg)
    with pytest.raises(TypeError, match="expected str, dict or token ids"):
        collect(model, tok, [3.5], LAYER, sae, cfg)
    with pytest.raises(ValueError, match="batch_tokens must be positive"):
        CollectConfig(batch_tokens=0)


def test_overflow_in_an_fp16_sae_is_warned_once_per_run(setup, caplog) -> None:
    import copy
    import logging

    model, tok, sae = setup
    model = copy.deepcopy(model)
    bang = tok("!")["input_ids"][-1]
    with torch.no_grad():  # '!' now carries a residual of ~4e3: finite in fp16, its fp16 pre-activations are not
        model.get_input_embeddings().weight[bang] *= 1e5
    sae16 = copy.deepcopy(sae).to(torch.float16)
    docs = documents()
    # reference: tokens whose sae-lens fp16 encoding has a NaN/inf activation, one document at a time
    overflowing = 0
    for text in docs:
        ids = tok(text)["input_ids"][:CFG["max_length"]]
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[LAYER + 1][0]
            overflowing += int((~torch.isfinite(sae16.encode(hidden[1:]))).any(1).sum())
    assert overflowing == sum(tok(t)["input_ids"][1:CFG["max_length"]].count(bang) for t in docs) > 0
    for encoder_sae, expected in ((sae16, overflowing), (sae, 0)):  # the float32 SAE does not overflow
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="interp_sot.features.encode"):
            stats = collect(model, tok, docs, LAYER, encoder_sae, CollectConfig(**CFG))
        assert stats.n_tokens > CFG["batch_tokens"]  # several batches, still one warning
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == (1 if expected else 0)
        if expected:
            assert warnings[0].startswith(f"{expected} token(s) had NaN/inf SAE activations")
            assert "float16" in warnings[0]
        assert (int(stats.nonfinite_count.sum()) > 0) == bool(expected) and torch.isfinite(stats.max_act).all()
