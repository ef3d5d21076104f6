"""Token ids (and optional labels) of the sequences that the top-k contexts point to.

A top-k entry is ``(seq, pos)``; showing it needs the sequence's tokens. The store keeps each sequence's
counted-or-not token ids exactly as fed to the model (BOS included, padding not) plus an optional JSON
metadata dict from the corpus (e.g. ``{"conversational": true}``, used by the conversation-ratio screen).

Memory is bounded: :meth:`ContextStore.prune` drops every sequence no top-k entry refers to. A dropped entry
can never come back (the top-k only ever replaces entries with better ones), so pruning at each checkpoint
keeps at most ``d_sae * k`` sequences plus those seen since the last prune.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from interp_sot.io import read_safetensors, write_safetensors
from interp_sot.protocols import Tokenizer, decode_text

CONTEXTS_FILE = "contexts.safetensors"
MARK = "<<{}>>"
"""How :meth:`ContextStore.render` marks the activating token (the judge prompts expect ``<<token>>``)."""


class TopContext(NamedTuple):
    """One top-activating context: a token window with the activating token at ``tokens[pos]``."""

    tokens: list[int]
    """Token ids of the window."""
    pos: int
    """Index of the activating token inside ``tokens``."""
    value: float
    """Activation of the feature on that token."""
    seq_id: int
    """Sequence id in the corpus stream."""
    seq_pos: int
    """Position of the activating token in the whole sequence."""
    onset_dist: int
    """Distance of the activating token from its sentence/turn onset."""
    metadata: dict[str, Any]
    """The sequence's corpus metadata (empty dict if none)."""

    def render(self, tokenizer: Tokenizer, mark: str = MARK) -> str:
        """Decoded window with the activating token wrapped by ``mark`` (a format string)."""
        before = decode_text(tokenizer, self.tokens[: self.pos])
        token = decode_text(tokenizer, self.tokens[self.pos : self.pos + 1])
        after = decode_text(tokenizer, self.tokens[self.pos + 1 :])
        return before + mark.format(token) + after


class ContextStore:
    """Sequence id -> token ids (int32) and metadata dict.

    ``tokenizer_source`` (saved) names the tokenizer the ids belong to, so :meth:`render` can decode a loaded
    store without being handed a tokenizer; ``tokenizer`` (not saved) is the live one.
    """

    def __init__(self, tokenizer: Tokenizer | None = None, tokenizer_source: str | None = None) -> None:
        self._tokens: dict[int, np.ndarray] = {}
        self._meta: dict[int, dict[str, Any]] = {}
        self.tokenizer = tokenizer
        self.tokenizer_source = tokenizer_source
        if tokenizer_source is None and tokenizer is not None:
            self.tokenizer_source = getattr(tokenizer, "name_or_path", None) or None

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, seq_id: int) -> bool:
        return int(seq_id) in self._tokens

    def add(self, seq_id: int, token_ids: Sequence[int] | np.ndarray | torch.Tensor,
            metadata: Mapping[str, object] | None = None) -> None:
        seq_id = int(seq_id)
        if seq_id < 0:
            raise ValueError(f"sequence ids must be >= 0, got {seq_id}")
        ids = token_ids.cpu().numpy() if isinstance(token_ids, torch.Tensor) else np.asarray(token_ids)
        self._tokens[seq_id] = ids.astype(np.int32, copy=True).reshape(-1)
        if metadata:
            json.dumps(metadata)  # fail now, not at save time, if it is not JSON-able
            self._meta[seq_id] = dict(metadata)

    def tokens(self, seq_id: int) -> list[int]:
        try:
            return self._tokens[int(seq_id)].tolist()
        except KeyError:
            raise KeyError(f"sequence {seq_id} is not in the context store (pruned or never added)") from None

    def metadata(self, seq_id: int) -> dict[str, Any]:
        """The corpus metadata of a stored sequence (empty dict when the corpus gave none)."""
        seq_id = int(seq_id)
        if seq_id not in self._tokens:
            raise KeyError(f"sequence {seq_id} is not in the context store (pruned or never added)")
        return dict(self._meta.get(seq_id, {}))

    def seq_ids(self) -> list[int]:
        return sorted(self._tokens)

    def window(self, seq_id: int, pos: int, window: int) -> tuple[list[int], int]:
        """Tokens ``[pos - window, pos + window]`` clipped to the sequence, and ``pos`` inside that slice."""
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        ids = self.tokens(seq_id)
        if not 0 <= pos < len(ids):
            raise IndexError(f"position {pos} outside sequence {seq_id} of length {len(ids)}")
        start = max(0, pos - window)
        return ids[start : pos + window + 1], pos - start

    def sequence_labels(self, field: str) -> np.ndarray:
        """``labels[seq]`` = metadata ``field`` as 0/1 floats for stored sequences, NaN where unknown.

        Length is the largest stored sequence id + 1; the judge-free conversation ratio indexes it by top-k seq.
        """
        if not any(field in m for m in self._meta.values()):
            fields = sorted({k for m in self._meta.values() for k in m})
            raise KeyError(f"no stored sequence has metadata field {field!r}; fields present: {fields}")
        out = np.full(max(self._tokens, default=-1) + 1, np.nan)
        for s, m in self._meta.items():
            value = m.get(field)
            if value is not None:
                out[s] = float(bool(value))
        return out

    def _decoder(self, tokenizer: Tokenizer | None) -> Tokenizer:
        tok = tokenizer or self.tokenizer
        if tok is None:
            if not self.tokenizer_source:
                raise ValueError("cannot render: no tokenizer given and the store does not name its tokenizer")
            from transformers import AutoTokenizer

            tok = self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_source)
        return tok

    def render(self, seq: int, pos: int, before: int = 32, after: int = 8, tokenizer: Tokenizer | None = None,
               mark: str = MARK) -> str:
        """Decoded text of tokens ``[pos - before, pos + after]`` of sequence ``seq``, token ``pos`` marked."""
        if before < 0 or after < 0:
            raise ValueError(f"before/after must be >= 0, got {before}, {after}")
        ids = self.tokens(seq)
        if not 0 <= pos < len(ids):
            raise IndexError(f"position {pos} outside sequence {seq} of length {len(ids)}")
        start = max(0, pos - before)
        tok = self._decoder(tokenizer)
        return (decode_text(tok, ids[start:pos]) + mark.format(decode_text(tok, ids[pos : pos + 1]))
                + decode_text(tok, ids[pos + 1 : pos + after + 1]))

    def prune(self, keep: Iterable[int]) -> int:
        """Drop every sequence not in ``keep``; returns how many were dropped."""
        keep_set = {int(s) for s in keep}
        drop = [s for s in self._tokens if s not in keep_set]
        for s in drop:
            del self._tokens[s]
            self._meta.pop(s, None)
        return len(drop)

    def merge(self, other: ContextStore) -> None:
        if self.tokenizer_source is None:
            self.tokenizer_source = other.tokenizer_source
        for s, ids in other._tokens.items():
            self._tokens[s] = ids
            if s in other._meta:
                self._meta[s] = other._meta[s]

    # -- persistence: flat tensors for one safetensors file --------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        ids = sorted(self._tokens)
        lengths = np.array([len(self._tokens[s]) for s in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate([self._tokens[s] for s in ids]) if ids else np.zeros(0, np.int32)
        meta = json.dumps({str(s): self._meta[s] for s in ids if s in self._meta}, sort_keys=True)
        return {
            "ctx_seq_ids": torch.tensor(ids, dtype=torch.int64),
            "ctx_offsets": torch.from_numpy(offsets),
            "ctx_tokens": torch.from_numpy(flat.astype(np.int32)),
            "ctx_metadata_json": torch.frombuffer(bytearray(meta.encode("utf-8")), dtype=torch.uint8),
        }

    @classmethod
    def from_state_tensors(cls, t: dict[str, torch.Tensor], source: str = "state") -> ContextStore:
        missing = [k for k in ("ctx_seq_ids", "ctx_offsets", "ctx_tokens", "ctx_metadata_json") if k not in t]
        if missing:
            raise ValueError(f"{source}: context store tensors missing: {missing}")
        store = cls()
        ids = t["ctx_seq_ids"].tolist()
        offsets = t["ctx_offsets"].tolist()
        flat = t["ctx_tokens"].numpy()
        if len(offsets) != len(ids) + 1 or (ids and offsets[-1] != flat.size):
            raise ValueError(f"{source}: context store offsets do not match its tokens (corrupt file)")
        for i, s in enumerate(ids):
            store._tokens[s] = flat[offsets[i] : offsets[i + 1]].copy()
        raw = bytes(t["ctx_metadata_json"].numpy().tobytes()).decode("utf-8")
        store._meta = {int(k): v for k, v in json.loads(raw or "{}").items()}
        return store

    def save(self, path: str | Path) -> Path:
        """Write ``contexts.safetensors`` into ``path`` (a folder) or to ``path`` itself if it ends in .safetensors."""
        target = _file(Path(path))
        write_safetensors(target, self.state_tensors(), {"kind": "contexts", **self._header()})
        return target

    def _header(self) -> dict[str, Any]:
        return {"tokenizer_source": self.tokenizer_source}

    @classmethod
    def load(cls, path: str | Path) -> ContextStore:
        """Read a store saved by :meth:`save` (a folder holding ``contexts.safetensors``, or the file)."""
        target = _file(Path(path))
        if not target.is_file():
            raise FileNotFoundError(f"no context store at {target}: collect with keep_contexts=True")
        tensors, meta = read_safetensors(target)
        store = cls.from_state_tensors(tensors, str(target))
        store.tokenizer_source = meta.get("tokenizer_source")
        return store


def _file(path: Path) -> Path:
    return path if path.suffix == ".safetensors" else path / CONTEXTS_FILE
