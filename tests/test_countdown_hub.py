"""Countdown problems from a Hub dataset id, offline, read where ``huggingface-cli download`` leaves the files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_standins import builder, use_hub_cache

from interp_sot.hub import looks_like_path
from interp_sot.tasks.countdown import load_tinyzero
from interp_sot.tasks.countdown.loader import TINYZERO_TEST_SIZE, TINYZERO_TRAIN_SIZE

ID = builder.COUNTDOWN


@pytest.fixture(scope="module")
def countdown_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("countdown_home")
    builder.put_repo(home, "dataset", ID, builder.countdown_files(builder.StandinConfig()))
    return home


def _parquet_rows(home: Path) -> pa.Table:
    snap = next((home / "hub" / "datasets--Jiayi-Pan--Countdown-Tasks-3to4" / "snapshots").iterdir())
    return pq.read_table(snap / "data" / "train-00000-of-00001.parquet")


def test_offline_dataset_id_reads_the_hub_cache(countdown_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_hub_cache(monkeypatch, countdown_home)
    table = _parquet_rows(countdown_home)
    first = load_tinyzero(ID, limit=5)
    assert [p.problem_id for p in first] == [f"Countdown-Tasks-3to4-{i}" for i in range(5)]
    assert [(list(p.nums), p.target) for p in first] == [
        (table["nums"][i].as_py(), table["target"][i].as_py()) for i in range(5)
    ]


def test_tinyzero_test_split_is_rows_327680_to_328703(countdown_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_hub_cache(monkeypatch, countdown_home)
    table = _parquet_rows(countdown_home)
    assert table.num_rows > TINYZERO_TRAIN_SIZE + TINYZERO_TEST_SIZE
    test = load_tinyzero(ID, tinyzero_split="test")
    rows = range(327_680, 328_704)
    assert len(test) == 1024
    assert [p.problem_id for p in test] == [f"Countdown-Tasks-3to4-{i}" for i in rows]
    nums, targets = table["nums"].to_pylist(), table["target"].to_pylist()
    assert [(list(p.nums), p.target) for p in test] == [(nums[i], targets[i]) for i in rows]
    assert [p.problem_id for p in load_tinyzero(ID, tinyzero_split="test", limit=3)] == [
        f"Countdown-Tasks-3to4-{i}" for i in (327_680, 327_681, 327_682)
    ]
    with pytest.raises(ValueError, match="cut from the 'train' split"):
        load_tinyzero(ID, split="test", tinyzero_split="test")


def test_tinyzero_split_needs_the_whole_train_split(tmp_path: Path) -> None:
    pq.write_table(pa.table({"target": [3], "nums": [[1, 2]]}), tmp_path / "small.parquet")
    with pytest.raises(ValueError, match=r"has 1 rows; TinyZero's test set needs rows 327680\.\.328703"):
        load_tinyzero(tmp_path / "small.parquet", tinyzero_split="test")


def test_missing_dataset_offline_names_id_and_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'Jiayi-Pan/Countdown-Tasks-3to4' is not in the Hugging Face cache.*"
                                                r"HF_HUB_OFFLINE=1"):
        load_tinyzero(ID)


def test_dataset_without_target_nums_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"question": ["2+2?"], "answer": [4]})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    builder.put_repo(tmp_path, "dataset", "someone/not-countdown",
                     {"data/train-00000-of-00001.parquet": buf.getvalue().to_pybytes()})
    use_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match=r"someone/not-countdown.*no column\(s\) \['target', 'nums'\]; found "
                                         r"\['question', 'answer'\]"):
        load_tinyzero("someone/not-countdown")
    with pytest.raises(ValueError, match=r"no split 'validation'; found splits \['train'\]"):
        load_tinyzero("someone/not-countdown", split="validation")


def test_paths_are_never_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for path in ("bad/does_not_exist.jsonl", "./nope", "/abs/nope", "~/nope", "a/b/c", "data/nope_problems",
                 "problems.parquet", "x y/z"):
        assert looks_like_path(path), path
        with pytest.raises(FileNotFoundError, match="file not found"):
            load_tinyzero(path)
    for repo in (ID, "DKYoon/SlimPajama-6B", "org/name.v2"):
        assert not looks_like_path(repo), repo
