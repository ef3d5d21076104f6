"""Screening table, two-criterion filter, ranking, saving, and the screen() entry point."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from screening_fakes import brute_force_stats, random_corpus, renderer

from interp_sot.judging.heuristic import HeuristicJudge
from interp_sot.screening.conversation_ratio import ConversationRatio, RatioConfig, ratio_from_labels
from interp_sot.screening.screen import FilterConfig, apply_filter, feature_table, load_table, save_table, screen

K = 6


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The textbook Wilson score interval (the reference for the ratio's interval)."""
    p, denom = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / denom, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.fixture(scope="module")
def data():
    acts, onset, conv = random_corpus(seed=5, n_seq=14, seq_len=9, d=20)
    return acts, onset, conv, brute_force_stats(acts, onset, k=K)


def test_columns_match_brute_force(data) -> None:
    acts, onset, conv, stats = data
    ratio = ratio_from_labels(stats, conv, k=K)
    table = feature_table(stats, ratio, labels=pd.Series({0: "zero", 3: "three"}))
    n_seq, seq_len, d = acts.shape
    assert len(table) == d and table["feature"].tolist() == list(range(d))
    for f in range(d):
        a = acts[:, :, f]
        fired = a > 0
        n = fired.sum()
        row = table.loc[f]
        assert row["fire_count"] == n
        assert row["frequency"] == pytest.approx(n / (n_seq * seq_len))
        assert row["max_act"] == pytest.approx(a.max())
        if n == 0:
            assert math.isnan(row["mean_act"]) and math.isnan(row["onset_share"])
            assert math.isnan(row["conversation_ratio"])
            continue
        assert row["mean_act"] == pytest.approx(a[fired].mean())
        assert row["first_n_share"] == pytest.approx(fired[:, :4].sum() / n)
        assert row["onset_share"] == pytest.approx((fired & (onset < 4)).sum() / n)
        top = sorted((-a[s, p], s, p) for s in range(n_seq) for p in range(seq_len) if fired[s, p])[:K]
        assert row["topk_onset_share"] == pytest.approx(np.mean([onset[s, p] < 4 for _, s, p in top]))
        assert row["conversation_ratio"] == pytest.approx(np.mean([conv[s] for _, s, _ in top]))
        assert row["n_contexts"] == len(top)
        hits = sum(conv[s] for _, s, _ in top)
        assert (row["ratio_lo"], row["ratio_hi"]) == pytest.approx(wilson_by_hand(int(hits), len(top)))
    # percentile: share of defined ratios <= this one (ties averaged), in percent
    r = table["conversation_ratio"].dropna()
    f0 = r.index[0]
    expected = 100 * ((r < r[f0]).sum() + ((r == r[f0]).sum() + 1) / 2) / len(r)
    assert table.loc[f0, "ratio_percentile"] == pytest.approx(expected)
    assert table.loc[0, "label"] == "zero" and table.loc[3, "label"] == "three" and pd.isna(table.loc[1, "label"])


def hand_table() -> pd.DataFrame:
    return pd.DataFrame({
        "feature": [0, 1, 2, 3, 4, 5],
        "conversation_ratio": [0.9, 0.5, 0.8, 0.8, np.nan, 0.8],
        "onset_share": [0.6, 0.9, 0.51, 0.7, 0.9, 0.7],
        "first_n_share": [0.1, 0.9, 0.9, 0.9, 0.9, 0.2],
        "topk_onset_share": [0.6, 0.6, 0.6, 0.4, 0.6, 0.6],
        "max_act": [1.0, 1.0, 1.0, 2.0, 1.0, 3.0],
        "fire_count": [5, 5, 5, 5, 0, 5],
        "n_contexts": [10, 10, 10, 10, 0, 10],
    }, index=pd.Index(range(6), name="feature_id"))


def test_filter_is_strict_and_ranked() -> None:
    out = apply_filter(hand_table())
    # 1 fails (ratio 0.5 is not > 0.5); 4 has no ratio
    assert out["passes_filter"].tolist() == [True, False, True, True, False, True]
    # equal n_contexts: the ratio's lower bound orders as the ratio. 0 (0.9), then 3 and 5 tie on (0.8, onset 0.7)
    # -> 5 (max 3.0), 3; then 2 (onset 0.51)
    assert out.loc[[0, 5, 3, 2], "rank"].tolist() == [1, 2, 3, 4]
    assert out["rank"].isna().tolist() == [False, True, False, False, True, False]
    by_first = apply_filter(hand_table(), FilterConfig(position_criterion="first_n"))
    assert by_first["passes_filter"].tolist() == [False, False, True, True, False, False]
    by_topk = apply_filter(hand_table(), FilterConfig(position_criterion="topk_onset"))
    assert by_topk["passes_filter"].tolist() == [True, False, True, False, False, True]
    loose = apply_filter(hand_table(), FilterConfig(ratio_threshold=0.4, position_threshold=0.0))
    assert loose["passes_filter"].sum() == 5
    with pytest.raises(ValueError, match="position_criterion"):
        FilterConfig(position_criterion="first4")
    with pytest.raises(ValueError, match="ratio_threshold"):
        FilterConfig(ratio_threshold=50)


def test_rank_uses_the_lower_bound_of_the_ratio_interval() -> None:
    table = hand_table().assign(conversation_ratio=[1.0, 0.5, 0.9, 0.8, np.nan, 1.0],
                                n_contexts=[2, 10, 50, 50, 0, 8])
    out = apply_filter(table)
    # lower bounds by hand: 1.0 of 2 -> 0.34, 0.9 of 50 -> 0.79, 0.8 of 50 -> 0.67, 1.0 of 8 -> 0.68
    for f, (k, n) in {0: (2, 2), 2: (45, 50), 3: (40, 50), 5: (8, 8)}.items():
        assert (out.loc[f, "ratio_lo"], out.loc[f, "ratio_hi"]) == pytest.approx(wilson_by_hand(k, n))
    assert out.loc[[2, 5, 3, 0], "rank"].tolist() == [1, 2, 3, 4]  # the point estimate put 0 and 5 first
    assert math.isnan(out.loc[4, "ratio_lo"])
    legacy = apply_filter(table)  # a table saved before the interval existed gets it computed
    assert legacy["rank"].tolist() == apply_filter(table.assign(ratio_lo=out["ratio_lo"],
                                                                ratio_hi=out["ratio_hi"]))["rank"].tolist()
    with pytest.raises(ValueError, match="no 'n_contexts' column"):
        apply_filter(table.drop(columns="n_contexts"))


def test_save_and_load_round_trip(data, tmp_path) -> None:
    *_, conv, stats = data
    labels = pd.Series({2: "a, \"quoted\"\nlabel"})
    table = apply_filter(feature_table(stats, ratio_from_labels(stats, conv, k=K), labels))
    parquet, csv = save_table(table, tmp_path / "out")
    for path in (parquet, csv):
        back = load_table(path)
        pd.testing.assert_frame_equal(back.drop(columns=["label", "rank"]), table.drop(columns=["label", "rank"]),
                                      check_dtype=False)
        assert back.loc[2, "label"] == 'a, "quoted"\nlabel'
        assert back["rank"].fillna(-1).astype(int).tolist() == table["rank"].fillna(-1).astype(int).tolist()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["screen.csv", "screen.parquet"]
    with pytest.raises(FileNotFoundError, match="no screening table"):
        load_table(tmp_path / "missing.parquet")


def test_screen_end_to_end_judge_and_labels_agree(data, tmp_path) -> None:
    *_, conv, stats = data
    cfg = RatioConfig(k=K, batch_size=7)
    judged = screen(stats, judge=HeuristicJudge(), render=renderer(conv), work_dir=tmp_path / "j", ratio_config=cfg)
    labelled = screen(stats, doc_labels=conv, ratio_config=cfg)
    pd.testing.assert_frame_equal(judged, labelled)
    assert (tmp_path / "j" / "screen.parquet").is_file() and (tmp_path / "j" / "conversation_scores.jsonl").is_file()
    with pytest.raises(ValueError, match="needs a renderer"):
        screen(stats, judge=HeuristicJudge())
    with pytest.raises(ValueError, match="needs a judge"):
        screen(stats)


def test_bad_stats() -> None:
    class Partial:
        fire_count = np.ones(3)

    with pytest.raises(ValueError, match="stats lack 'act_sum'"):
        feature_table(Partial())
    stats = brute_force_stats(np.ones((1, 2, 3)), np.zeros((1, 2), int), k=2)
    with pytest.raises(ValueError, match="cover feature 7"):
        feature_table(stats, ConversationRatio(np.array([7]), np.array([0.5]), np.array([1])))
