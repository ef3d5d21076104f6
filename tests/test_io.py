"""Crash-safe writes: a reader sees the old file or the new one, and logs survive a torn final line."""

from __future__ import annotations

import json

import pytest

from interp_sot.io import append_jsonl, atomic_path, atomic_write_json, read_jsonl, replaced_dir, truncate_torn_tail


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_replaced_dir_swaps_a_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "site"
    with replaced_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "b.txt").write_text("1")
    with pytest.raises(RuntimeError), replaced_dir(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"] and (out / "a.txt").read_text() == "1"
    with replaced_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert [p.name for p in out.iterdir()] == ["a.txt"] and (out / "a.txt").read_text() == "2"  # b.txt gone
    assert [p.name for p in tmp_path.iterdir()] == ["site"]
    # a run killed mid-swap (only .site.old left) or mid-write (a staging folder left): the next call repairs both
    out.rename(tmp_path / ".site.old")
    (tmp_path / ".site.x1y2.tmp").mkdir()
    with pytest.raises(RuntimeError), replaced_dir(out):
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"] and (out / "a.txt").read_text() == "2"
    (tmp_path / "file").write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file"), replaced_dir(tmp_path / "file"):
        pass
    assert (tmp_path / "file").read_text() == "mine"


def test_append_after_torn_tail_keeps_every_complete_record(tmp_path):
    log = tmp_path / "log.jsonl"
    append_jsonl(log, [{"i": 0}, {"i": 1}])
    with open(log, "a") as fh:
        fh.write('{"i": 2, "trunc')  # a write killed midway
    assert read_jsonl(log) == [{"i": 0}, {"i": 1}]  # the torn tail is ignored on read ...
    append_jsonl(log, [{"i": 3}])  # ... and cut before the next append instead of being glued to it
    assert read_jsonl(log) == [{"i": 0}, {"i": 1}, {"i": 3}]
    assert truncate_torn_tail(log) is False


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(log)


def test_empty_append_writes_nothing(tmp_path):
    log = tmp_path / "log.jsonl"
    append_jsonl(log, [])
    assert not log.exists() and read_jsonl(log) == []
