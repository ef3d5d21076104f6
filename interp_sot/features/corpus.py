"""Turning a corpus into token-budgeted batches of documents, in a fixed order that a resumed run can replay.

A corpus is any iterable of documents: strings, dicts (rows of a Hugging Face ``datasets`` dataset, streaming
or not, or JSONL records) whose ``text_field`` holds the text, or token-id sequences (lists, arrays, tensors).
Each document's index in the stream is its sequence id, so ids stay stable across resumes and shards.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interp_sot.errors import InterpSotError

if TYPE_CHECKING:
    from interp_sot.protocols import Tokenizer

CorpusItem = str | Mapping[str, object] | Sequence[int] | np.ndarray | torch.Tensor
"""A corpus document: text, a record with a text (or token-id) field plus metadata, or token ids."""

logger = logging.getLogger(__name__)


@dataclass
class Truncations:
    """How many documents were cut to ``max_length`` tokens."""

    documents: int = 0
    """Documents longer than ``max_length`` (each cut to its first ``max_length`` tokens)."""


_truncations: contextvars.ContextVar[Truncations | None] = contextvars.ContextVar("truncations", default=None)


@contextlib.contextmanager
def count_truncations() -> Iterator[Truncations]:
    """Count the documents :func:`tokenize_documents` cuts to ``max_length`` while the block runs (a stage records
    the count in its results: a 5 MB document silently cut to 1,024 tokens would be a lie by omission)."""
    counter = Truncations()
    token = _truncations.set(counter)
    try:
        yield counter
    finally:
        _truncations.reset(token)


def _note_truncation(index: int, max_length: int, first: bool) -> None:
    counter = _truncations.get()
    if counter is not None:
        counter.documents += 1
    if first:  # logged once per pass; the total is in the counter (and the stats' info)
        logger.info("corpus document %d is longer than max_length=%d tokens and is cut to it (logged once; the "
                       "stats' info counts every cut document)", index, max_length)


@dataclass(frozen=True)
class Document:
    """One tokenised document."""

    index: int
    """Position in the corpus stream; used as the sequence id."""
    token_ids: list[int]
    """Token ids fed to the model (special tokens included, truncated to ``max_length``)."""
    first_counted: int
    """Index of the first token that counts in statistics (1 when a leading BOS is excluded, else 0)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Values of the requested metadata fields (e.g. ``{"conversational": True}``)."""

    @property
    def n_counted(self) -> int:
        return len(self.token_ids) - self.first_counted


def _as_ids(item: object) -> list[int] | None:
    if isinstance(item, torch.Tensor):
        return [int(t) for t in item.reshape(-1).tolist()]
    if isinstance(item, np.ndarray):
        return [int(t) for t in item.reshape(-1).tolist()]
    if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in item
    ):
        return [int(t) for t in item]
    return None


def _parse(item: object, index: int, text_field: str, metadata_fields: Sequence[str]
           ) -> tuple[str | list[int], dict[str, object]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping):
        if text_field not in item:
            raise InterpSotError(f"corpus document {index} has no field {text_field!r} (fields: {sorted(item)}); "
                             "set text_field")
        meta = {name: item.get(name) for name in metadata_fields}
        content = item[text_field]
        ids = None if isinstance(content, str) else _as_ids(content)
        if not isinstance(content, str) and ids is None:
            raise InterpSotError(f"corpus document {index}: field {text_field!r} holds {type(content).__name__}, "
                             "not text or token ids")
        return (content if ids is None else ids), meta
    ids = _as_ids(item)
    if ids is None:
        raise TypeError(f"corpus document {index} is a {type(item).__name__}; expected str, dict or token ids")
    return ids, {}


def tokenize_documents(
    corpus: Iterable[CorpusItem],
    tokenizer: Tokenizer,
    *,
    max_length: int,
    text_field: str = "text",
    metadata_fields: Sequence[str] = (),
    add_special_tokens: bool = True,
    exclude_bos: bool = True,
    start: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Document]:
    """Documents from index ``start`` on that belong to ``shard = (rank, world)`` (index % world == rank).

    Skipped documents (before ``start`` or another rank's) are not tokenised. Documents with no counted
    token (empty, or only a BOS) are dropped.
    """
    rank, world = shard
    bos = getattr(tokenizer, "bos_token_id", None)
    cut = 0  # documents cut to max_length in this pass (the first one is logged)
    for index, item in zip(itertools.count(start), itertools.islice(corpus, start, None), strict=False):
        if index % world != rank:
            continue
        content, meta = _parse(item, index, text_field, metadata_fields)
        if isinstance(content, str):
            ids = tokenizer(content, add_special_tokens=add_special_tokens, truncation=True,
                            max_length=max_length)["input_ids"]
            if len(ids) == max_length and len(tokenizer(content, add_special_tokens=add_special_tokens,
                                                        truncation=True, max_length=max_length + 1)["input_ids"]
                                              ) > max_length:  # only a document at the limit can have been cut
                _note_truncation(index, max_length, first=not cut)
                cut += 1
        else:
            if len(content) > max_length:
                _note_truncation(index, max_length, first=not cut)
                cut += 1
            ids = content[:max_length]
        first = 1 if exclude_bos and ids and bos is not None and ids[0] == bos else 0
        if len(ids) > first:
            yield Document(index, list(ids), first, meta)


def batch_documents(docs: Iterable[Document], batch_tokens: int) -> Iterator[list[Document]]:
    """Greedy batches in stream order whose padded size (rows x longest row) stays within ``batch_tokens``.

    A document longer than the budget gets a batch of its own.
    """
    batch: list[Document] = []
    longest = 0
    for doc in docs:
        n = len(doc.token_ids)
        if batch and (len(batch) + 1) * max(longest, n) > batch_tokens:
            yield batch
            batch, longest = [], 0
        batch.append(doc)
        longest = max(longest, n)
    if batch:
        yield batch


def pad_batch(batch: list[Document], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` ``[B, T]``, right-padded so every token keeps positions 0..len-1."""
    width = max(len(d.token_ids) for d in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, d in enumerate(batch):
        ids[i, : len(d.token_ids)] = torch.tensor(d.token_ids, dtype=torch.long)
        mask[i, : len(d.token_ids)] = 1
    return ids, mask
