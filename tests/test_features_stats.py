"""FeatureStats against a brute-force reference: every statistic, chunking, shards, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from features_helpers import assert_matches, assert_stats_equal, brute_force, random_acts, random_tokens

from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats, TokenInfo
from interp_sot.features.topk import StreamingTopK

LENGTHS = [9, 1, 14, 6, 12, 3, 11, 8]  # 64 tokens
D = 12


def feed(stats: FeatureStats, acts: torch.Tensor, tokens: TokenInfo, chunk: int) -> FeatureStats:
    for a in range(0, acts.shape[0], chunk):
        stats.update(acts[a : a + chunk], tokens.slice(a, a + chunk))
    return stats


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("levels", [None, 4])
def test_every_statistic_matches_brute_force(k: int, levels: int | None) -> None:
    tokens = random_tokens(LENGTHS)
    acts = random_acts(64, D, seed=k, levels=levels, nonfinite=True)
    stats = feed(FeatureStats(D, top_k=k, first_n=3, onset_n=2), acts, tokens, chunk=10)
    assert_matches(stats, brute_force(acts, tokens, k, first_n=3, onset_n=2))
    assert stats.n_tokens == 64
    ref_max = np.where(np.isfinite(acts.numpy()), acts.numpy(), 0).max(0)
    np.testing.assert_array_equal(stats.max_act.numpy(), ref_max)
    assert int(stats.nonfinite_count[1]) == 3 and int(stats.nonfinite_count[2]) == 2


def test_ties_break_by_earliest_sequence_then_position() -> None:
    tokens = TokenInfo(torch.tensor([5, 2, 2, 7, 2]), torch.tensor([0, 9, 4, 1, 6]), torch.zeros(5, dtype=torch.long),
                       torch.zeros(5, dtype=torch.long))
    acts = torch.tensor([[1.0], [2.0], [2.0], [2.0], [0.5]])
    stats = FeatureStats(1, top_k=3)
    stats.update(acts, tokens)
    assert stats.topk_values[0].tolist() == [2.0, 2.0, 2.0]
    assert stats.topk_seq[0].tolist() == [2, 2, 7] and stats.topk_pos[0].tolist() == [4, 9, 1]
    assert (int(stats.max_seq[0]), int(stats.max_pos[0])) == (2, 4)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunk_size_invariance_is_exact(chunk: int) -> None:
    tokens = random_tokens(LENGTHS)
    acts = random_acts(64, D, seed=3, nonfinite=True)
    one = feed(FeatureStats(D, top_k=4), acts, tokens, chunk=64)
    assert_stats_equal(feed(FeatureStats(D, top_k=4), acts, tokens, chunk=chunk), one, exact_sums=True)


def test_compaction_schedule_does_not_change_the_table() -> None:
    tokens = random_tokens(LENGTHS)
    acts = random_acts(64, D, seed=4, levels=3)
    tiny = feed(FeatureStats(D, top_k=5, topk_buffer=2), acts, tokens, chunk=5)
    big = feed(FeatureStats(D, top_k=5, topk_buffer=10**6), acts, tokens, chunk=64)
    assert_stats_equal(tiny, big)


def test_shard_merge_equals_single_pass() -> None:
    tokens = random_tokens(LENGTHS)
    acts = random_acts(64, D, seed=5, levels=3, nonfinite=True)
    single = feed(FeatureStats(D, top_k=4), acts, tokens, chunk=16)
    shards = [FeatureStats(D, top_k=4) for _ in range(3)]
    for s in range(len(LENGTHS)):  # sequences dealt round-robin, as the distributed collector does
        rows = (tokens.seq_id == s).nonzero().squeeze(1)
        sub = TokenInfo(*(t[rows] for t in (tokens.seq_id, tokens.pos, tokens.start_dist, tokens.onset_dist)))
        shards[s % 3].update(acts[rows], sub)
    merged = shards[2].merge(shards[0]).merge(shards[1])
    assert_stats_equal(merged, single, exact_sums=False)


def test_merge_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        FeatureStats(4, top_k=2).merge(FeatureStats(4, top_k=3))


def test_streaming_topk_against_sorting_everything() -> None:
    g = torch.Generator().manual_seed(0)
    n, d, k = 3000, 7, 6
    f = torch.randint(0, d, (n,), generator=g)
    v = torch.randint(1, 6, (n,), generator=g).float()
    s = torch.randint(0, 50, (n,), generator=g)
    p = torch.randint(0, 20, (n,), generator=g)
    for offset in (0, 1 << 41):  # beyond 2^40 the packed (seq, pos) key gives way to two sorts
        topk = StreamingTopK(d, k, buffer_limit=37)
        for a in range(0, n, 100):
            sl = slice(a, a + 100)
            topk.push(f[sl], v[sl], s[sl] + offset, p[sl], p[sl] % 3)
        for feat in range(d):
            m = f == feat
            ref = sorted(zip((-v[m]).tolist(), (s[m] + offset).tolist(), p[m].tolist(), strict=True))[:k]
            assert topk.values[feat].tolist() == [-r[0] for r in ref]
            assert topk.seq[feat].tolist() == [r[1] for r in ref] and topk.pos[feat].tolist() == [r[2] for r in ref]
            assert topk.onset[feat].tolist() == [r[2] % 3 for r in ref]


def test_save_load_roundtrip_with_contexts(tmp_path) -> None:
    tokens = random_tokens(LENGTHS)
    stats = feed(FeatureStats(D, top_k=3, info={"layer": 2}), random_acts(64, D, seed=6), tokens, chunk=64)
    stats.contexts = ContextStore(tokenizer_source="some/tokenizer")
    for s, n in enumerate(LENGTHS):
        stats.contexts.add(s, list(range(100, 101 + n)), {"conversational": s % 2 == 0})
    stats.save(tmp_path / "out")
    back = FeatureStats.load(tmp_path / "out")
    assert_stats_equal(back, stats)
    assert back.info == {"layer": 2} and back.contexts is not None
    assert back.contexts.tokenizer_source == "some/tokenizer"
    assert back.contexts.tokens(3) == list(range(100, 107)) and back.contexts.metadata(2) == {"conversational": True}
    loaded = ContextStore.load(tmp_path / "out")
    np.testing.assert_array_equal(loaded.sequence_labels("conversational"), [1, 0, 1, 0, 1, 0, 1, 0])


def test_load_reports_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureStats.load(tmp_path / "nope")
    stats = feed(FeatureStats(D, top_k=2), random_acts(64, D), random_tokens(LENGTHS), chunk=64)
    stats.save(tmp_path / "s")
    data = (tmp_path / "s" / "stats.safetensors").read_bytes()
    (tmp_path / "s" / "stats.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        FeatureStats.load(tmp_path / "s")


def test_to_frame_columns() -> None:
    tokens = random_tokens(LENGTHS)
    acts = random_acts(64, D, seed=8)
    stats = feed(FeatureStats(D, top_k=3), acts, tokens, chunk=64)
    frame = stats.to_frame()
    ref = brute_force(acts, tokens, 3)
    assert list(frame["feature"]) == list(range(D))
    np.testing.assert_allclose(frame["frequency"], ref["fire_count"] / 64)
    np.testing.assert_allclose(frame["mean_act"], ref["act_sum"] / ref["fire_count"])
    np.testing.assert_allclose(frame["onset_share"], ref["onset_count"] / ref["fire_count"])
    np.testing.assert_allclose(frame["first_n_share"], ref["first_n_count"] / ref["fire_count"])
    std = np.sqrt(ref["act_sq_sum"] / ref["fire_count"] - (ref["act_sum"] / ref["fire_count"]) ** 2)
    np.testing.assert_allclose(frame["std_act"], std, atol=1e-9)
    onset_top = ((ref["topk_onset"] >= 0) & (ref["topk_onset"] < 4)).sum(1) / (ref["topk_seq"] >= 0).sum(1)
    np.testing.assert_allclose(frame["topk_onset_share"], onset_top)


def test_never_firing_feature_is_empty_not_garbage() -> None:
    acts = torch.zeros(5, 2)
    acts[1, 0] = 1.0
    stats = FeatureStats(2, top_k=2)
    stats.update(acts, random_tokens([5]))
    assert stats.topk_seq[1].tolist() == [-1, -1] and float(stats.max_act[1]) == 0.0
    frame = stats.to_frame()
    assert np.isnan(frame["mean_act"][1]) and frame["fire_count"][1] == 0


def test_bad_inputs_name_the_problem() -> None:
    stats = FeatureStats(4)
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        stats.update(torch.zeros(3, 5), random_tokens([3]))
    with pytest.raises(ValueError, match="3 activation rows but 2 tokens"):
        stats.update(torch.zeros(3, 4), random_tokens([2]))
    with pytest.raises(ValueError, match="finite and > 0"):
        stats.update_sparse(torch.tensor([0]), torch.tensor([1]), torch.tensor([float("nan")]), random_tokens([1]))
    with pytest.raises(ValueError, match="rows must index"):
        stats.update_sparse(torch.tensor([4]), torch.tensor([1]), torch.tensor([1.0]), random_tokens([2]))
    with pytest.raises(ValueError, match="1-D with 2 entries"):
        TokenInfo(torch.arange(2), torch.arange(3), torch.arange(2), torch.arange(2))
    with pytest.raises(ValueError, match="top-k size must be positive"):
        FeatureStats(4, top_k=0)


def test_context_window_and_marking() -> None:
    tokens = random_tokens([6, 6])
    acts = torch.zeros(12, 1)
    acts[8, 0] = 3.0  # sequence 1, stored position 3 (tokens start at position 1)
    stats = FeatureStats(1, top_k=2)
    stats.update(acts, tokens)
    stats.contexts = ContextStore()
    stats.contexts.add(0, list(range(7)), None)
    stats.contexts.add(1, [10, 11, 12, 13, 14, 15, 16], {"conversational": True})
    ctx = stats.context(0, 0, window=2)
    assert ctx.tokens == [11, 12, 13, 14, 15] and ctx.tokens[ctx.pos] == 13
    assert (ctx.value, ctx.seq_id, ctx.seq_pos, ctx.metadata) == (3.0, 1, 3, {"conversational": True})

    class Decoder:
        def decode(self, ids):
            return "".join(chr(ord("a") + i - 10) for i in ids)

    assert ctx.render(Decoder()) == "bc<<d>>ef"
    assert stats.contexts.render(1, 3, before=1, after=2, tokenizer=Decoder()) == "c<<d>>ef"
    with pytest.raises(IndexError, match="fewer than 2"):
        stats.context(0, 1)
    assert stats.prune_contexts() == 1 and stats.contexts.seq_ids() == [1]
    with pytest.raises(KeyError, match="pruned or never added"):
        stats.contexts.tokens(0)
