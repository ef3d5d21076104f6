"""Crash-safe file writes shared by every stage that saves results, caches or checkpoints.

A reader must only ever see the old file or the complete new one, never half of it: each write goes to a
temporary sibling, is flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX).
Append-only logs (resumable sweeps, judge caches) instead write whole lines and skip a torn last line on read.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.errors import InterpSotError, shorten

if TYPE_CHECKING:  # torch and pandas are imported where used: the CLI's --help imports this module
    import pandas as pd
    import torch

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def replaced_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder that replaces the folder ``out`` whole on success; on error it is deleted.

    For outputs that are folders (a site, an export, a checkpoint): readers see the old folder or the complete
    new one. The swap is two renames (``out`` -> ``.NAME.old``, staging -> ``out``); a run killed between them
    leaves only ``.NAME.old``, which the next call puts back first, and staging folders of killed runs
    (``.NAME.*.tmp``) are removed. ``out`` must be a folder or not exist: a file there is an error, raised
    before any work is done.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.old")
    if old.is_dir() and not out.exists():
        os.replace(old, out)
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically (values JSON cannot hold are written as their ``str``)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def truncate_torn_tail(path: str | Path) -> bool:
    """Cut a final line that lacks its newline (a write killed midway); return whether anything was cut.

    Without this, the next append would glue a complete record onto the fragment and corrupt the log.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as fh:
        size = fh.seek(0, 2)
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        keep = 0
        end = size
        while end > 0:  # scan backwards for the last newline
            start = max(0, end - 65536)
            fh.seek(start)
            nl = fh.read(end - start).rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            end = start
        fh.truncate(keep)
    logger.warning("%s: dropped a torn final line (%d bytes) left by an interrupted write", path, size - keep)
    return True


def append_jsonl(path: str | Path, records: Sequence[Mapping[str, object]]) -> None:
    """Append whole JSON lines and fsync, so a killed run loses at most the batch being written."""
    if not records:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    truncate_torn_tail(path)  # else the first new record would be glued onto a fragment left by a crash
    payload = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read the complete lines of a JSONL log; a torn final line (killed mid-write) is ignored.

    A malformed line anywhere else means the file was damaged by something other than a crash, so it raises.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            is_torn_tail = i == len(lines) - 1  # no trailing newline: the write was cut short
            if is_torn_tail:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err.msg}); the file is corrupt") from err
    return out


TEXT_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".ndjson", ".csv", ".json")
"""Local input files read as UTF-8 text, line by line (a ``.gz`` suffix is decompressed)."""


def _binary_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        yield from fh


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InterpSotError(f"{shorten(path)}: line {line} is not valid UTF-8 (byte {err.start} of the line: "
                             f"{raw[err.start:err.start + 8]!r})") from err


def check_text_file(path: str | Path, flag: str) -> None:
    """Refuse a local text input (:data:`TEXT_SUFFIXES`) that does not decode as UTF-8, naming the file and line.

    One streaming pass before a stage claims its folder: a bad byte found mid-run would leave a run directory made
    for a file the user then has to fix (and whose hash then changes). Other inputs (folders, hub names) pass."""
    p = Path(path).expanduser()
    if not p.is_file() or not p.name.lower().endswith(TEXT_SUFFIXES):
        return
    try:
        for i, raw in enumerate(_binary_lines(p), start=1):
            _decode(raw, p, i)
    except (OSError, EOFError) as err:  # a truncated .gz
        raise InterpSotError(f"{flag} {shorten(p)}: cannot be read: {err}") from err


FULL_HASH_BYTES = 64 << 20
"""Files up to this size are hashed whole; larger ones by size + first and last MiB."""
_EDGE = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file (whole up to ``FULL_HASH_BYTES``, else size + first and last MiB)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(f"size={size}".encode())
            h.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.hexdigest()


class JsonlRecords:
    """The records of a JSONL *input* file (``.jsonl`` or gzipped ``.jsonl.gz``), streamed in order on every
    iteration; ``identity()`` is the file's content hash (what a stage records when the caller gives no inputs).

    Unlike :func:`read_jsonl` (our own append-only logs) every line must parse: a bad line in a corpus is
    damage, not an interrupted write. Errors name the file and line (bad JSON or bad UTF-8).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, raw in enumerate(_binary_lines(self.path), start=1):
            line = _decode(raw, self.path, i)
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise InterpSotError(f"{shorten(self.path)}: line {i} is not valid JSON ({err.msg})") from err

    def identity(self) -> dict[str, Any]:
        return {"name": self.path.name, "sha256": file_digest(self.path)}


def iter_jsonl(path: str | Path) -> JsonlRecords:
    """The records of a JSONL input file, re-iterable and identified by content (:class:`JsonlRecords`)."""
    return JsonlRecords(path)


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> None:
    """Atomically write tensors plus a JSON header entry (readers see the old file or the whole new one)."""
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp), metadata={"interp_sot": json.dumps(meta, sort_keys=True)})


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt): {err}") from err
    if "interp_sot" not in header:
        raise ValueError(f"{path} has no interp_sot header: not written by interp_sot")
    return tensors, json.loads(header["interp_sot"])


def write_frame(frame: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write a pandas table atomically as CSV or parquet, chosen by ``path``'s suffix: every table writer's body."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: tables are written as .csv or .parquet")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=index)
        else:
            frame.to_parquet(tmp, index=index)
    return path


def write_table(frame: pd.DataFrame, stem: Path) -> Path:
    """``stem``.parquet when pyarrow is installed, else ``stem``.csv; written atomically. Returns the path."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return write_frame(frame, stem.with_suffix(".csv"))
    return write_frame(frame, stem.with_suffix(".parquet"))
