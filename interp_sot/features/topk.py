"""Streaming per-feature top-k of activating tokens, exact under a total order, in bounded memory.

Every firing is a candidate ``(feature, value, seq, pos, onset)``. Candidates are ordered by value descending,
then sequence id ascending, then position ascending: the earliest token wins a tie. Because this is a total
order on distinct tokens, the top-k set of a feature is unique, so any chunking of the stream, any split into
shards merged afterwards, and any resume from a checkpoint give the same table bit for bit.

Cost: a candidate that cannot beat the feature's k-th value as of the last compaction is dropped at once
(``value < gate``). The rest go to a pending buffer; when it holds ``buffer_limit`` entries the buffer and
the table are sorted together once and the table rebuilt. Each candidate is sorted a bounded number of
times, so the work is O(n log n) in the number of surviving candidates and memory never exceeds the table
plus the buffer, whatever the corpus size.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch

from interp_sot.features.threads import serial_cpu

EMPTY = -1
"""Sequence id, position and onset distance of an empty slot (its value is 0.0)."""

_SIGN_MASK = 0x7FFFFFFF
COMPACT_BLOCK = 4096
"""Features compacted together: bounds the sort's transient memory to ~(4096 * k + their pending) entries."""


def _sort_stable(key: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Refine ``order`` by ``key`` (stable), so earlier keys act as tie-breakers."""
    return order[torch.sort(key[order], stable=True).indices]


def total_order(features: torch.Tensor, values: torch.Tensor, seq: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by feature asc, value desc, seq asc, pos asc (values must be finite and >= 0).

    Non-negative float32 bit patterns sort like the floats, so ``(feature, -value)`` packs into one int64, and
    so does ``(seq, pos)`` while seq < 2^40 and pos < 2^23: two stable sorts instead of four.
    """
    n = values.numel()
    order = torch.arange(n, device=values.device)
    if n and int(seq.min()) >= 0 and int(seq.max()) < (1 << 40) and int(pos.min()) >= 0 and int(pos.max()) < (1 << 23):
        order = _sort_stable((seq << 23) | pos, order)
    else:
        order = _sort_stable(pos, order)
        order = _sort_stable(seq, order)
    vbits = values.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    key = (features.to(torch.int64) << 32) | (_SIGN_MASK - vbits)
    return _sort_stable(key, order)


def block_topk(key: torch.Tensor, rank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top-``k`` rows of every column of a dense block under the total order, with fixed shapes (no sync).

    key: ``[c, d]`` int64 ``(value bits << 32) | (c - 1 - rank)``, value 0.0 where a token does not fire.
    Non-negative float32 bit patterns order like the floats, so the largest keys are the largest values and,
    among equal values, the earliest tokens: one ``topk`` along the rows picks what a full sort would.
    rank: ``[c]`` int64, each row's place in (seq, pos) order within the block (``arange(c)`` in stream order).
    Returns ``(rows, vals, valid)``, each ``[min(k, c), d]``: the chosen rows, their float32 values, and whether
    the slot holds a firing at all.
    """
    c = key.shape[0]
    top = torch.topk(key, min(k, c), dim=0, sorted=True).values
    hi = top >> 32
    inv = torch.empty_like(rank)
    inv[rank] = torch.arange(c, device=rank.device)
    rows = inv[c - 1 - (top & 0xFFFFFFFF)]
    return rows, hi.to(torch.int32).view(torch.float32), hi > 0


class StreamingTopK:
    """Top-k table ``[d_sae, k]`` per feature fed by candidate firings; see the module docstring for the order.

    ``values`` are float32, descending along k; ``seq``/``pos``/``onset`` are int64 with ``EMPTY`` in empty slots.
    Read the table through the properties, which compact pending candidates first.
    """

    def __init__(self, d_sae: int, k: int, device: torch.device | str = "cpu", buffer_limit: int | None = None):
        if d_sae <= 0:
            raise ValueError(f"d_sae must be positive, got {d_sae}")
        if k <= 0:
            raise ValueError(f"top-k size must be positive, got {k}")
        self.d_sae = d_sae
        self.k = k
        self.device = torch.device(device)
        self.buffer_limit = buffer_limit if buffer_limit is not None else max(d_sae * k // 4, 1 << 16)
        """Pending candidates that trigger a compaction; bounds the buffer's memory (~24 bytes each)."""
        self._values = torch.zeros(d_sae, k, dtype=torch.float32, device=self.device)
        self._seq = torch.full((d_sae, k), EMPTY, dtype=torch.int64, device=self.device)
        self._pos = torch.full((d_sae, k), EMPTY, dtype=torch.int64, device=self.device)
        self._onset = torch.full((d_sae, k), EMPTY, dtype=torch.int64, device=self.device)
        self._gate = torch.zeros(d_sae, dtype=torch.float32, device=self.device)
        self._pending: list[tuple[torch.Tensor, ...]] = []
        self._pending_n = 0

    # -- feeding -------------------------------------------------------------------------------------
    def push(
        self,
        features: torch.Tensor,
        values: torch.Tensor,
        seq: torch.Tensor,
        pos: torch.Tensor,
        onset: torch.Tensor,
    ) -> None:
        """Offer candidates ``[m]`` each; values must be finite and > 0 (firings)."""
        if features.numel() == 0:
            return
        keep = values >= self._gate[features]
        if not bool(keep.all()):
            features, values, seq, pos, onset = (t[keep] for t in (features, values, seq, pos, onset))
            if features.numel() == 0:
                return
        self._pending.append(
            (features.to(torch.int32), values.to(torch.float32), seq.to(torch.int64), pos.to(torch.int32),
             onset.clamp(max=torch.iinfo(torch.int32).max).to(torch.int32))
        )
        self._pending_n += features.numel()
        if self._pending_n >= self.buffer_limit:
            self.compact()

    def merge(self, other: StreamingTopK) -> None:
        """Add every entry of ``other``'s table (exact: the result equals one pass over both streams)."""
        if (other.d_sae, other.k) != (self.d_sae, self.k):
            raise ValueError(f"cannot merge top-k tables of shape {(other.d_sae, other.k)} into {(self.d_sae, self.k)}")
        other.compact()
        f, v, s, p, o = other._filled_entries()
        self.push(f.to(self.device), v.to(self.device), s.to(self.device), p.to(self.device), o.to(self.device))

    def merge_dense(self, values: torch.Tensor, seq: torch.Tensor, pos: torch.Tensor, onset: torch.Tensor) -> None:
        """Merge candidates ``[d_sae, m]`` per feature into the table with fixed shapes (no host-device sync).

        Empty candidate slots are ``(0.0, EMPTY, EMPTY, EMPTY)``, like empty table slots. The result equals what
        :meth:`push` + :meth:`compact` give: three stable sorts order each row by value desc, seq asc, pos asc.
        """
        self.compact()
        v = torch.cat([self._values, values.to(torch.float32)], 1)
        s, p, o = (torch.cat([t, x.to(torch.int64)], 1) for t, x in ((self._seq, seq), (self._pos, pos),
                                                                       (self._onset, onset)))
        order = torch.sort(p, dim=1, stable=True).indices
        order = order.gather(1, torch.sort(s.gather(1, order), dim=1, stable=True).indices)
        order = order.gather(1, torch.sort(v.gather(1, order), dim=1, descending=True, stable=True).indices)
        order = order[:, : self.k]
        self._values, self._seq, self._pos, self._onset = (t.gather(1, order) for t in (v, s, p, o))
        self._gate = self._values[:, self.k - 1].clone()

    # -- compaction ----------------------------------------------------------------------------------
    def _filled_entries(self) -> tuple[torch.Tensor, ...]:
        filled = self._seq >= 0
        f = filled.nonzero()[:, 0]
        return f, self._values[filled], self._seq[filled], self._pos[filled], self._onset[filled]

    def compact(self) -> None:
        """Merge the pending buffer into the table (the only place where sorting happens)."""
        if not self._pending:
            return
        with serial_cpu(self.device):
            self._compact()

    def _compact(self) -> None:
        f, v, s, p, o = (torch.cat([part[i] for part in self._pending]) for i in range(5))
        self._pending, self._pending_n = [], 0
        by_feature = torch.sort(f, stable=True).indices  # split into feature blocks: bounded transient memory
        f, v, s, p, o = f[by_feature], v[by_feature], s[by_feature], p[by_feature], o[by_feature]
        edges = torch.arange(0, self.d_sae + COMPACT_BLOCK, COMPACT_BLOCK, device=f.device, dtype=f.dtype)
        bounds = torch.searchsorted(f, edges).tolist()
        for a, b in itertools.pairwise(bounds):
            if b > a:
                self._compact_block(f[a:b].to(torch.int64), v[a:b], s[a:b], p[a:b].to(torch.int64),
                                    o[a:b].to(torch.int64))

    def _compact_block(self, f: torch.Tensor, v: torch.Tensor, s: torch.Tensor, p: torch.Tensor,
                       o: torch.Tensor) -> None:
        touched = torch.zeros(self.d_sae, dtype=torch.bool, device=self.device)
        touched[f] = True
        rows = touched.nonzero().squeeze(1)  # only these features' tables can change
        old_seq = self._seq[rows]
        filled = old_seq >= 0
        old = [rows[:, None].expand(-1, self.k)[filled], self._values[rows][filled], old_seq[filled],
               self._pos[rows][filled], self._onset[rows][filled]]
        f, v, s, p, o = (torch.cat([a, b]) for a, b in zip(old, (f, v, s, p, o), strict=True))
        order = total_order(f, v, s, p)
        f, v, s, p, o = f[order], v[order], s[order], p[order], o[order]
        rank = torch.arange(f.numel(), device=f.device) - torch.searchsorted(f, f)
        keep = rank < self.k
        f, rank = f[keep], rank[keep]
        self._values[rows] = 0.0
        for table in (self._seq, self._pos, self._onset):
            table[rows] = EMPTY
        self._values[f, rank] = v[keep]
        self._seq[f, rank] = s[keep]
        self._pos[f, rank] = p[keep]
        self._onset[f, rank] = o[keep]
        self._gate[rows] = self._values[rows, self.k - 1]

    # -- reading -------------------------------------------------------------------------------------
    @property
    def values(self) -> torch.Tensor:
        """``[d_sae, k]`` float32, descending; 0.0 in empty slots."""
        self.compact()
        return self._values

    @property
    def seq(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 sequence ids; ``EMPTY`` in empty slots."""
        self.compact()
        return self._seq

    @property
    def pos(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 positions within the sequence's stored token ids; ``EMPTY`` in empty slots."""
        self.compact()
        return self._pos

    @property
    def onset(self) -> torch.Tensor:
        """``[d_sae, k]`` int64 distance of the token from its sentence/turn onset; ``EMPTY`` in empty slots."""
        self.compact()
        return self._onset

    def tables(self) -> dict[str, torch.Tensor]:
        self.compact()
        return {"topk_values": self._values, "topk_seq": self._seq, "topk_pos": self._pos, "topk_onset": self._onset}

    def load_tables(self, tables: Mapping[str, torch.Tensor]) -> None:
        """Restore from :meth:`tables` output (shapes are checked)."""
        for name, attr in (("topk_values", "_values"), ("topk_seq", "_seq"), ("topk_pos", "_pos"),
                           ("topk_onset", "_onset")):
            t = tables[name]
            if tuple(t.shape) != (self.d_sae, self.k):
                raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {(self.d_sae, self.k)}")
            setattr(self, attr, t.to(self.device, getattr(self, attr).dtype).clone())
        self._pending, self._pending_n = [], 0
        self._gate = self._values[:, self.k - 1].clone()

    def to(self, device: torch.device | str) -> StreamingTopK:
        self.compact()
        self.device = torch.device(device)
        for attr in ("_values", "_seq", "_pos", "_onset", "_gate"):
            setattr(self, attr, getattr(self, attr).to(self.device))
        return self
