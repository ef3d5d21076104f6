"""The stand-in builder writes the hub cache as huggingface_hub itself reads and scans it."""

from __future__ import annotations

import hashlib
from typing import Any

from hub_standins import builder, hub_standins_fixture  # noqa: F401 - fixture hub_standins

from interp_sot.screening.labels import feature_labels, read_explanations


def test_cache_layout_is_what_huggingface_hub_scans(hub_standins: Any) -> None:
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    cache = hub_standins.hf_home / "hub"
    info = scan_cache_dir(cache)
    assert not info.warnings
    repos = {(r.repo_type, r.repo_id): r for r in info.repos}
    assert set(repos) == {("model", builder.PAPER_MODEL), ("model", builder.SAE_REPO),
                          ("dataset", builder.COUNTDOWN), ("dataset", builder.CORPUS)}
    for (_, repo_id), repo in repos.items():
        (rev,) = repo.revisions
        assert rev.refs == frozenset({"main"})
        assert rev.snapshot_path == hub_standins.snapshots[repo_id]
        for f in rev.files:
            data = f.blob_path.read_bytes()
            lfs = f.file_name.endswith((".safetensors", ".parquet"))
            etag = (hashlib.sha256(data).hexdigest() if lfs
                    else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
            assert f.blob_path.name == etag, f.file_path
    weights = f"{builder.SAE_FOLDER}/sae_weights.safetensors"
    found = try_to_load_from_cache(builder.SAE_REPO, weights, cache_dir=cache)
    assert found == str(hub_standins.snapshots[builder.SAE_REPO] / weights)
    config = try_to_load_from_cache(builder.PAPER_MODEL, "config.json", cache_dir=cache)
    assert isinstance(config, str) and '"num_hidden_layers": 32' in open(config).read()


def test_neuronpedia_export_reads_as_labels(hub_standins: Any) -> None:
    labels = feature_labels(read_explanations(hub_standins.neuronpedia), d_sae=32_768)
    assert labels[builder.PAPER_FEATURE] == "discourse marker for surprise, realization, or acknowledgment"
    assert len(labels) == 2 * 1024 and set(labels.index) == set(range(1024)) | set(range(30 * 1024, 31 * 1024))
    assert sorted(p.name for p in (hub_standins.neuronpedia / "features").iterdir()) == [
        "batch-0.jsonl.gz", "batch-30.jsonl.gz"]
