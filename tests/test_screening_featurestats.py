"""Screening on the real interp_sot.features.FeatureStats / ContextStore (saved, loaded, screened from the CLI)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch
from screening_fakes import brute_force_stats, random_corpus

from interp_sot.cli import screen as cli
from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats, TokenInfo
from interp_sot.screening.conversation_ratio import ratio_from_labels
from interp_sot.screening.screen import apply_filter, feature_table, load_table

K = 5


def real_stats(acts: np.ndarray, onset: np.ndarray) -> FeatureStats:
    """FeatureStats fed the same tokens; stored sequences carry a BOS at position 0 (so pos = index + 1)."""
    n_seq, seq_len, d = acts.shape
    stats = FeatureStats(d, top_k=K, first_n=4, onset_n=4)
    seq = np.repeat(np.arange(n_seq), seq_len)
    idx = np.tile(np.arange(seq_len), n_seq)
    info = TokenInfo(torch.as_tensor(seq), torch.as_tensor(idx + 1), torch.as_tensor(idx),
                     torch.as_tensor(onset.reshape(-1)))
    stats.update(torch.as_tensor(acts.reshape(-1, d), dtype=torch.float32), info)
    return stats


@pytest.fixture(scope="module")
def corpus():
    acts, onset, conv = random_corpus(seed=21, n_seq=10, seq_len=8, d=24)
    acts = acts.astype(np.float32).astype(np.float64)  # what float32 stats see
    return acts, onset, conv, real_stats(acts, onset)


def test_table_on_real_stats_matches_brute_force(corpus) -> None:
    acts, onset, conv, stats = corpus
    ref = brute_force_stats(acts, onset, k=K)
    ours = apply_filter(feature_table(stats, ratio_from_labels(stats, conv, k=K)))
    want = apply_filter(feature_table(ref, ratio_from_labels(ref, conv, k=K)))
    pd.testing.assert_frame_equal(ours, want, check_dtype=False, rtol=1e-6)
    frame = stats.to_frame()  # the stats' own table agrees on the shared definitions
    for col in ("fire_count", "frequency", "mean_act", "max_act", "first_n_share", "onset_share"):
        np.testing.assert_allclose(ours[col].to_numpy(dtype=float), frame[col].to_numpy(dtype=float), rtol=1e-6)
    np.testing.assert_allclose(ours["topk_onset_share"], frame["topk_onset_share"], rtol=1e-12)


def test_cli_on_saved_stats_and_contexts(corpus, tmp_path, capsys) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    acts, onset, conv, _ = corpus
    words = ["<bos>", "<unk>", "Oh,", "hey", "you", "thanks!", "I'm", "sorry?", "Table", "lists", "values"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>")
    tokenizer.save_pretrained(tmp_path / "tok")
    stats = real_stats(acts, onset)
    stats.contexts = ContextStore(tokenizer_source=str(tmp_path / "tok"))
    n_seq, seq_len, _ = acts.shape
    for s in range(n_seq):
        words = (["Oh,", "hey", "you", "thanks!", "I'm", "sorry?"] if conv[s] else ["Table", "lists", "values"]) * 3
        stats.contexts.add(s, [0] + [vocab[w] for w in words[:seq_len]], {"conversational": bool(conv[s])})
    stats.save(tmp_path / "stats")

    def run(*argv: str) -> pd.DataFrame:
        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["screen", "--stats", str(tmp_path / "stats"), "--k", str(K), *argv])
        assert args.run(args) == 0
        return load_table(argv[argv.index("--out") + 1] + "/screen.parquet")

    by_labels = run("--out", str(tmp_path / "labels"))
    by_judge = run("--out", str(tmp_path / "judged"), "--judge", "heuristic", "--window", "8", "8")
    expected = ratio_from_labels(stats, conv, k=K).ratio
    np.testing.assert_array_equal(by_labels["conversation_ratio"], expected)
    np.testing.assert_array_equal(by_judge["conversation_ratio"], expected)
    lines = (tmp_path / "judged" / "conversation_scores.jsonl").read_text().splitlines()
    scores = [json.loads(x)["value"] for x in lines]
    seq, pos = stats.topk_seq.numpy(), stats.topk_pos.numpy()
    assert 0 < len(scores) <= len({(s, p) for s, p in zip(seq[seq >= 0], pos[seq >= 0], strict=True)})
    assert min(scores) < 50 <= max(scores)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run("--out", str(tmp_path / "x"), "--stats", str(tmp_path / "missing"))
