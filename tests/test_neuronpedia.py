"""FeatureStats <-> Neuronpedia v1 export: exact round trip, row semantics, batching and bad input."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_helpers import small_stats

from interp_sot.features.neuronpedia import (
    BATCH_ROWS,
    from_stats,
    read_export,
    to_feature_stats,
    write_export,
)
from interp_sot.features.stats import FeatureStats

LABELS = {0: "exclamation after Oh", 3: "commas in lists"}


@pytest.fixture(scope="module")
def stats_tok():
    return small_stats()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_keeps_every_value(stats_tok, tmp_path):
    stats, tok = stats_tok
    export = from_stats(stats, "tiny", "3-test-12", tokenizer=tok, labels=LABELS, before=5, after=3)
    write_export(export, tmp_path / "a")
    back = read_export(tmp_path / "a", d_sae=stats.d_sae)
    # the rows read back are the rows written, field for field
    assert back.features == export.features and back.activations == export.activations
    assert back.explanations == export.explanations and back.extra == json.loads(json.dumps(export.extra))
    assert (back.model_id, back.source_id) == ("tiny", "3-test-12")
    # and writing them again gives the same bytes
    write_export(back, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # the FeatureStats values the format holds come back exactly
    imported = to_feature_stats(back)
    assert imported.d_sae == stats.d_sae and imported.n_tokens == stats.n_tokens
    assert torch.equal(imported.fire_count, stats.fire_count)
    assert torch.equal(imported.max_act, stats.max_act)
    assert torch.equal(imported.topk_values, stats.topk_values)
    assert torch.equal(imported.topk_seq, stats.topk_seq)  # dataIndex = our sequence id
    assert back.labels() == LABELS
    assert np.isnan(imported.act_sum.numpy()).all()  # not in the format: unknown, not zero
    assert "act_sum" in imported.info["neuronpedia_missing"]


def test_activation_rows_hold_exact_top_k_values(stats_tok):
    stats, tok = stats_tok
    export = from_stats(stats, "tiny", "s", tokenizer=tok, before=6, after=2)
    rows = export.by_feature("activations")
    assert sum(len(r) for r in rows.values()) == int((stats.topk_seq >= 0).sum())
    for f in (0, 4):
        entries = {(int(s), int(p)): float(v) for s, p, v in
                   zip(stats.topk_seq[f], stats.topk_pos[f], stats.topk_values[f], strict=True) if s >= 0}
        for rank, row in enumerate(rows[f]):
            seq, pos = int(stats.topk_seq[f, rank]), int(stats.topk_pos[f, rank])
            ids = stats.contexts.tokens(seq)
            start = max(0, pos - 6)
            assert row["tokens"] == [tok.decode([t]) for t in ids[start : pos + 3]]
            q = row["qualifyingTokenIndex"]
            assert q == pos - start and row["values"][q] == float(stats.topk_values[f, rank])
            for j, v in enumerate(row["values"]):
                assert v == entries.get((seq, start + j), 0.0)
            assert row["maxValue"] == max(row["values"]) == row["values"][row["maxValueTokenIndex"]]
            assert row["index"] == str(f) and row["dataIndex"] == str(seq)
    fr = export.features[4]
    assert fr["maxActApprox"] == float(stats.max_act[4])
    assert fr["frac_nonzero"] == int(stats.fire_count[4]) / stats.n_tokens


def test_batches_of_1024_and_stats_without_contexts(tmp_path, caplog):
    stats = FeatureStats(2 * BATCH_ROWS + 452, top_k=3)
    stats.n_tokens = 10
    stats.fire_count[5] = 4
    with caplog.at_level(logging.WARNING):
        export = from_stats(stats, "m", "s", labels={2499: "last"})
    assert "no top-k contexts" in caplog.text and export.activations == []
    write_export(export, tmp_path / "np")
    sizes = [len(gzip.decompress(p.read_bytes()).splitlines()) for p in sorted((tmp_path / "np/features").iterdir())]
    assert sizes == [BATCH_ROWS, BATCH_ROWS, 452]
    back = read_export(tmp_path / "np")
    assert back.d_sae == stats.d_sae and back.labels() == {2499: "last"}
    assert int(to_feature_stats(back).fire_count[5]) == 4


def _rewrite(path: Path, edit) -> None:
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in edit(rows)).encode()))


@pytest.fixture
def exported(stats_tok, tmp_path):
    stats, tok = stats_tok
    return write_export(from_stats(stats, "tiny", "s", tokenizer=tok, labels=LABELS), tmp_path / "np")


def test_missing_field_is_named(exported):
    batch = exported / "activations" / "batch-0.jsonl.gz"
    _rewrite(batch, lambda rows: [{k: v for k, v in r.items() if k != "maxValueTokenIndex"} for r in rows])
    with pytest.raises(ValueError,
                       match=r"batch-0\.jsonl\.gz: line 1 lacks the activations field\(s\) \['maxValueTokenIndex'\]"):
        read_export(exported)


def test_different_d_sae_is_an_error(exported, tmp_path):
    with pytest.raises(ValueError, match="d_sae=12 features but 16 were expected"):
        read_export(exported, d_sae=16)
    # an explanation batch of a wider SAE of the same source
    _rewrite(exported / "explanations" / "batch-0.jsonl.gz", lambda rows: [*rows, {**rows[0], "index": "40"}])
    with pytest.raises(ValueError, match="feature index 40 is outside d_sae=12"):
        read_export(exported)


def test_mixed_sources_and_duplicate_features(exported):
    feats = exported / "features"
    (feats / "batch-1.jsonl.gz").write_bytes((feats / "batch-0.jsonl.gz").read_bytes())
    with pytest.raises(ValueError, match=r"duplicated: \[0, 1, 2, 3, 4\]"):
        read_export(exported)
    _rewrite(feats / "batch-1.jsonl.gz", lambda rows: [{**r, "layer": "other"} for r in rows])
    with pytest.raises(ValueError, match="batches of different sources are mixed"):
        read_export(exported)


def test_out_that_is_a_file_and_foreign_export_without_token_count(stats_tok, exported, tmp_path):
    stats, tok = stats_tok
    target = tmp_path / "file"
    target.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_export(from_stats(stats, "m", "s", tokenizer=tok), target)
    assert target.read_text() == "keep me"
    (exported / "interp_sot.json").unlink()
    foreign = read_export(exported)
    with pytest.raises(ValueError, match="pass n_tokens"):
        to_feature_stats(foreign)
    assert torch.equal(to_feature_stats(foreign, n_tokens=stats.n_tokens).fire_count, stats.fire_count)
