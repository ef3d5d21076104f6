"""Sweeps across processes (torchrun): whole batches of the single-process run per rank, merged in row order.

A sweep forms its batches on fixed boundaries (``batch_size`` rows of the problem-major row list) and seeds each
from its first row's key (:mod:`interp_sot.experiments.sweep`). Sharding keeps those batches whole: batch ``i``
goes to rank ``i % world``, so every row is generated in exactly the batch, with exactly the seed, that it has in a
single-process run, and the merged records equal that run's (bitwise on the same hardware). Each rank appends to
and resumes its own log, ``sweep.rank{r}-of-{N}.jsonl`` next to ``sweep.jsonl``; when every rank is done, rank 0
writes ``sweep.jsonl`` in row order (the rank logs stay, as the record of who generated what).

Re-sharding: a row depends on its batch, not on the process that ran it, so a rerun with another world size (or in
one process) first adopts the rows of its batches from every log beside it (the merged log and rank logs of any
world size) and generates only the rest. The run directory must be on a filesystem that every rank sees.

Launch (one process per GPU; ``--device cuda`` puts rank ``r`` on ``cuda:LOCAL_RANK``)::

    torchrun --nproc-per-node 8 -m interp_sot.cli steer --device cuda ... --out DIR
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from interp_sot.experiments.records import FeatureId, RowSpec, SweepRecord
from interp_sot.experiments.sweep import SweepConfig, run_rows
from interp_sot.io import append_jsonl, atomic_write_text, read_jsonl, truncate_torn_tail

if TYPE_CHECKING:
    import torch

    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)
T = TypeVar("T")

WAIT_TIMEOUT = timedelta(days=7)
"""How long a rank that finished its share waits for the others (shards of a long sweep can finish hours apart;
a rank that fails ends the whole job through torchrun instead)."""


@dataclass(frozen=True)
class Shard:
    """This process's place in a sweep: rank ``rank`` of ``world`` processes (``Shard()`` = one process)."""

    rank: int = 0
    """0-based rank; rank 0 writes the run directory's files."""
    world: int = 1
    """Number of processes sharing the sweep."""

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"Shard needs 0 <= rank < world, got rank {self.rank} of {self.world}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, rows: Sequence[RowSpec], batch_size: int) -> list[RowSpec]:
        """This rank's rows: the whole batches ``i`` with ``i % world == rank``, in order.

        Every batch but the last of all is full, so ``run_rows`` re-forms exactly these batches from the result.
        """
        return [r for i, r in enumerate(rows) if (i // batch_size) % self.world == self.rank]

    def log_path(self, path: str | Path) -> Path:
        """The log this rank appends to: ``path`` itself in one process, else ``<stem>.rank{r}-of-{N}<suffix>``."""
        path = Path(path)
        if self.world == 1:
            return path
        return path.with_name(f"{path.stem}.rank{self.rank}-of-{self.world}{path.suffix}")

    def from_main(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (torch tensors inside must be on the CPU); ``obj`` itself in one process.

        Also a wait: no rank returns before rank 0 got here (e.g. after claiming the run directory)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=_wait_group())
        return box[0]

    def wait(self) -> None:
        """Block until every rank got here (no-op in one process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=_wait_group())


def _wait_group() -> Any:
    """A gloo group with a long timeout (an NCCL default group would time out waiting, and needs GPU tensors)."""
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None  # the default group (join_torchrun creates it with WAIT_TIMEOUT)
    return _gloo_group()


@functools.cache
def _gloo_group() -> Any:
    import torch.distributed as dist

    return dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)


def _torchrun_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_shard() -> Shard:
    """This process's shard from torch.distributed (``Shard()`` when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    if _torchrun_world() > 1:
        raise RuntimeError("launched by torchrun but torch.distributed is not initialised: call join_torchrun() first")
    return Shard()


def join_torchrun() -> Shard:
    """Join the process group torchrun describes (gloo: a sweep only waits and shares small objects); ``Shard()``
    when not launched by torchrun."""
    import torch.distributed as dist

    if _torchrun_world() > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT_TIMEOUT)
    return process_shard()


def rank_device(device: str | None) -> str | None:
    """The device of this torchrun rank: ``cuda`` becomes ``cuda:LOCAL_RANK``; other devices are kept.

    An explicit ``cuda:N`` under torchrun is refused: every rank would load onto the same GPU."""
    if _torchrun_world() <= 1 or device is None:
        return device
    if device.startswith("cuda:"):
        raise ValueError(f"--device {device}: under torchrun each rank takes cuda:LOCAL_RANK; give --device cuda "
                         "(and CUDA_VISIBLE_DEVICES to choose the GPUs)")
    if device == "cuda":
        import torch

        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def beside(path: Path) -> list[Path]:
    """Every log of this sweep: ``path`` (merged or single-process) and the rank logs of any world size."""
    ranks = sorted(path.parent.glob(f"{path.stem}.rank*-of-*{path.suffix}"))
    return [p for p in (path, *ranks) if p.is_file()]


def adopt_rows(target: Path, rows: Sequence[RowSpec], sources: Sequence[Path], settings: Mapping[str, object]) -> int:
    """Append to ``target`` the records of ``rows`` that other logs of the sweep hold and ``target`` lacks.

    Returns how many. A source record made with other settings is refused (the folder holds another sweep)."""
    if not sources:
        return 0
    truncate_torn_tail(target)
    wanted = {r.key for r in rows}
    have = {d["key"] for d in read_jsonl(target)}
    adopted: list[dict[str, Any]] = []
    for source in sources:
        for d in read_jsonl(source):  # a torn last line of another log is skipped, not cut
            if d.get("key") not in wanted or d["key"] in have:
                continue
            if d.get("settings") != settings:
                raise ValueError(f"{source} holds rows made with different settings; use a new output path")
            adopted.append(d)
            have.add(d["key"])
    append_jsonl(target, adopted)
    if adopted:
        logger.info("%s: adopted %d rows from %s", target, len(adopted), ", ".join(str(s.name) for s in sources))
    return len(adopted)


def merge_logs(rows: Sequence[RowSpec], logs: Sequence[Path]) -> list[dict[str, Any]]:
    """The records of ``rows`` in row order, gathered from ``logs``; every row must be in one of them."""
    found: dict[str, dict[str, Any]] = {}
    for log in logs:
        for d in read_jsonl(log):
            found.setdefault(d["key"], d)
    missing = [r.key for r in rows if r.key not in found]
    if missing:
        raise ValueError(
            f"{len(missing)} rows (e.g. {missing[0]}) are in none of {[str(p) for p in logs]}: the run directory must "
            "be on a filesystem that every rank sees"
        )
    return [found[r.key] for r in rows]


def write_log(path: Path, records: Sequence[Mapping[str, object]]) -> None:
    """Replace ``path`` with ``records`` as JSON lines, formatted as ``io.append_jsonl`` writes them."""
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records))


def run_rows_sharded(
    model: CausalLM,
    tokenizer: Tokenizer,
    rows: Sequence[RowSpec],
    directions: Mapping[FeatureId, torch.Tensor],
    config: SweepConfig,
    out_path: str | Path,
    *,
    shard: Shard | None = None,
    progress: bool = True,
) -> list[SweepRecord]:
    """``run_rows`` on this rank's batches into its own log; every rank returns all records in ``rows`` order.

    After all ranks finished, rank 0 writes ``out_path`` in row order. In one process (``Shard()``) this is
    ``run_rows(out_path)``, after adopting rows from rank logs of an earlier distributed run, if any.
    """
    shard = shard if shard is not None else process_shard()
    path = Path(out_path)
    own = shard.log_path(path)
    mine = shard.rows(rows, config.batch_size)
    adopted = adopt_rows(own, mine, [p for p in beside(path) if p != own], config.settings())
    records = run_rows(model, tokenizer, mine, directions, config, out_path=own,
                       progress=progress and shard.is_main)
    if shard.world == 1:
        if adopted:  # adopted rows were appended first: put the log back in row order
            write_log(path, [r.to_dict() for r in records])
        return records
    shard.wait()
    merged = merge_logs(rows, [Shard(r, shard.world).log_path(path) for r in range(shard.world)])
    if shard.is_main:
        write_log(path, merged)
        logger.info("%s: merged %d rows from %d ranks", path, len(merged), shard.world)
    return [SweepRecord.from_dict(d) for d in merged]


def main_directions(shard: Shard, directions: Mapping[FeatureId, torch.Tensor]) -> Mapping[FeatureId, torch.Tensor]:
    """Rank 0's directions on every rank (as CPU tensors), so every record carries the fingerprint that the run
    directory's identity names even where a rank's own computation differs in the last bit."""
    if shard.world == 1:
        return directions
    import torch

    return shard.from_main({f: torch.as_tensor(d).detach().cpu() for f, d in directions.items()})
