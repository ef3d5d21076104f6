"""Build the labelled corpus: fetch packages, extract units, split, and write JSONL files with a summary.

Output folder: ``train.jsonl`` (SAE training text), ``eval.jsonl`` (held-out units for the SAE's quality report),
``screening.jsonl`` (held-out, document-labelled passages for the judge-free conversation ratio) and
``summary.json`` (units and tokens per source and split). Every record keeps its source, unit id and licence.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.corpora.fetch import fetch_source
from interp_sot.corpora.sources import EXTRACTORS, Unit
from interp_sot.corpora.split import interleave_sources, passages, split_of, take_tokens
from interp_sot.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from interp_sot.protocols import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class CorpusConfig:
    """How the corpus is split; the defaults built the embedded SAE's corpus."""

    sources: tuple[str, ...] = tuple(EXTRACTORS)
    """Which sources to include (keys of ``interp_sot.corpora.sources.EXTRACTORS``)."""
    seed: int = 0
    """Seed of the unit hash that picks each unit's split."""
    eval_fraction: float = 0.04
    """Share of units held out for the SAE's explained-variance report."""
    screening_fraction: float = 0.06
    """Share of units held out for screening; passages are cut from them."""
    screening_tokens_per_kind: int = 40_000
    """Token budget of the screening set for each label (conversational, expository)."""
    passage_chars: int = 900
    """Longest screening passage in characters (about 200-250 SmolLM2 tokens), cut at line breaks."""
    exclude_sources: tuple[str, ...] = field(default_factory=tuple)
    """Sources to drop from the screening set only (e.g. to keep GPL text out of a redistributed file)."""

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(EXTRACTORS)
        if unknown:
            raise ValueError(f"unknown corpus sources {sorted(unknown)}; known: {sorted(EXTRACTORS)}")
        if self.screening_tokens_per_kind < 1:
            raise ValueError("screening_tokens_per_kind must be >= 1")


@dataclass(frozen=True)
class CorpusSummary:
    """What a build wrote: units and tokens per (split, source)."""

    units: dict[str, dict[str, int]]
    tokens: dict[str, dict[str, int]]
    config: dict[str, Any]


def _count(tokenizer: Tokenizer, texts: list[str], batch: int = 256) -> list[int]:
    counts: list[int] = []
    for i in range(0, len(texts), batch):
        counts.extend(len(ids) for ids in tokenizer(texts[i:i + batch], add_special_tokens=False)["input_ids"])
    return counts


def screening_passages(units: list[Unit], tokenizer: Tokenizer, cfg: CorpusConfig) -> list[Unit]:
    """Balanced, source-interleaved passages of the screening units, within the token budget for each label."""
    chosen: list[Unit] = []
    for conversational in (True, False):
        pieces = [Unit(text, u.conversational, u.source, f"{u.unit}#{i}", u.licence)
                  for u in units if u.conversational == conversational and u.source not in cfg.exclude_sources
                  for i, text in enumerate(passages(u.text, cfg.passage_chars))]
        if not pieces:
            raise ValueError(f"no {'conversational' if conversational else 'expository'} screening units; "
                             "raise screening_fraction or add sources")
        pieces = interleave_sources(pieces, cfg.seed)
        chosen.extend(take_tokens(pieces, _count(tokenizer, [p.text for p in pieces]), cfg.screening_tokens_per_kind))
    return chosen


def build_corpus(downloads: Path, out: Path, tokenizer: Tokenizer, cfg: CorpusConfig | None = None) -> CorpusSummary:
    """Fetch, extract, split and write the corpus; ``tokenizer`` only counts tokens for the budgets and summary."""
    cfg = cfg or CorpusConfig()
    splits: dict[str, list[Unit]] = {"train": [], "eval": [], "screening": []}
    for source in cfg.sources:
        root = fetch_source(source, Path(downloads))
        n = 0
        for unit in EXTRACTORS[source](root):
            splits[split_of(unit, cfg.seed, cfg.eval_fraction, cfg.screening_fraction)].append(unit)
            n += 1
        log.info("%s: %d units", source, n)
    splits["screening"] = screening_passages(splits["screening"], tokenizer, cfg)
    out.mkdir(parents=True, exist_ok=True)
    units: dict[str, dict[str, int]] = {}
    tokens: dict[str, dict[str, int]] = {}
    for name, items in splits.items():
        atomic_write_text(out / f"{name}.jsonl",
                          "".join(json.dumps(u.record(), ensure_ascii=False) + "\n" for u in items))
        counts = _count(tokenizer, [u.text for u in items])
        units[name] = dict(Counter(u.source for u in items))
        per_source: Counter[str] = Counter()
        for u, c in zip(items, counts, strict=True):
            per_source[u.source] += c
        tokens[name] = dict(per_source)
    summary = CorpusSummary(units, tokens, asdict(cfg))
    atomic_write_json(out / "summary.json", asdict(summary))
    return summary
