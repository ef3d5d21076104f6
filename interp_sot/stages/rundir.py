"""Run directories: every stage records what it was asked to do, resumes the same request, refuses another.

A stage's directory holds ``stage.json`` (the stage name, its config and the identity of its inputs), written
before any work, and ``manifest.json`` (the files it produced), written last. So:

- a rerun with the same identity resumes (long stages keep checkpoints or append-only logs next to it);
- a rerun with a different identity is refused with a message naming every setting that changed;
- a directory with ``stage.json`` but no ``manifest.json`` is visibly incomplete, and later stages refuse to
  read it (:func:`require_complete`);
- temporary files left by an interrupted atomic write are removed when a stage starts again;
- one process writes a run directory at a time: :func:`claim_dir` takes an OS lock on the folder (released
  when the process ends, crash included), so a second process started into the same folder is refused at once,
  naming the holder's pid, instead of appending every trace twice. The lock is re-entrant within a process (the CLI
  claims before loading the model, the stage again when it starts); under torchrun rank 0 alone claims (the other
  ranks write no run files of their own but their shard logs, and wait for rank 0's claim).

Order of work: a command claims the folder and checks the run's identity (:func:`check_identity`, which compares
what is known before the weights load and leaves the rest for later) before anything heavy loads, and
:func:`begin_stage` writes ``stage.json`` only after every check passed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_sot.errors import InterpSotError, shorten
from interp_sot.io import atomic_write_json

logger = logging.getLogger(__name__)

STAGE_FILE = "stage.json"
MANIFEST_FILE = "manifest.json"
_held: dict[Path, int] = {}
"""Run directories this process holds the lock of (resolved path -> the open folder's file descriptor)."""


class RunDirError(InterpSotError):
    """A run directory that cannot be used as asked: not writable, made for another request, in use by another
    process, or incomplete."""


def jsonable(value: object) -> Any:
    """``value`` as plain JSON data (dataclasses as dicts, tuples as lists, paths as strings)."""

    def default(obj: object) -> object:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, (Path, os.PathLike)):
            return str(obj)
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        if hasattr(obj, "item"):  # numpy / torch scalars
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not part of a stage identity")

    return json.loads(json.dumps(value, default=default, sort_keys=True))


def prepare_dir(out: str | Path) -> Path:
    """Create ``out`` (or check it) and claim it (:func:`claim_dir`) before any work: a file in the way, an
    unwritable place or another process writing there fails here, not at the first checkpoint; stale temporary files
    of interrupted atomic writes are removed (only once the lock is held: another writer's are not stale)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {shorten(out)} exists and is a file, not a run directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"--out: cannot write to {shorten(out)}: {err.strerror or err}") from err
    if claim_dir(out):
        removed = remove_temporaries(out)
        if removed:
            logger.info("%s: removed %d temporary file(s) of an interrupted write", out, removed)
    return out


def claim_dir(out: Path) -> bool:
    """Take the exclusive OS lock of the existing folder ``out`` for this process; True when newly taken, False when
    this process held it already. A folder another process holds is refused at once, naming that process's pid.

    ``fcntl.flock`` on the folder itself (no lock file: the folder's listing and content hash stay as they were):
    the kernel drops the lock when the process ends however it ends, so a crashed or killed run never leaves a
    stale lock. The holder's pid is read from ``/proc/locks`` (Linux; elsewhere the message says it is unknown)."""
    key = out.resolve()
    if key in _held:
        return False
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        raise RunDirError(f"--out {shorten(out)} is in use by another process (pid {lock_holder(key)}): one writer "
                          "per run directory; wait for it to finish (then rerun to resume) or use another output "
                          "folder") from err
    _held[key] = fd
    return True


def lock_holder(folder: Path) -> str:
    """The pid holding the ``flock`` of ``folder``, from ``/proc/locks`` (``"unknown"`` where it cannot be read)."""
    st = folder.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "unknown"
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == inode:
            return parts[4]
    return "unknown"


def release_dir(out: str | Path) -> None:
    """Give up this process's lock of ``out`` (no-op when not held): the stage is finished."""
    fd = _held.pop(Path(out).expanduser().resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_temporaries(out: Path) -> int:
    """Delete ``.<name>.<random>.tmp`` files (``io.atomic_path`` leftovers) under ``out``; returns how many."""
    n = 0
    for path in out.rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            n += 1
    return n


def _flatten(d: object, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def describe_changes(old: Mapping[str, object], new: Mapping[str, object], limit: int = 8) -> str:
    """``"config.layer: 15 -> 3; inputs.corpus.sha256: ab12... -> 9f3c..."``: every leaf that differs."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))

    def short(v: object) -> str:
        text = json.dumps(v) if not isinstance(v, str) else v
        return text if len(text) <= 60 else text[:57] + "..."

    parts = [f"{k}: {short(a.get(k, '<absent>'))} -> {short(b.get(k, '<absent>'))}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return "; ".join(parts)


def stage_identity(stage: str, config: object, inputs: Mapping[str, object] | None = None) -> dict[str, Any]:
    """What ``stage.json`` records: the stage name, its config and the identity of its inputs, as plain JSON."""
    return {"stage": stage, "config": jsonable(config), "inputs": jsonable(dict(inputs or {}))}


def check_identity(out: str | Path, stage: str, config: object, inputs: Mapping[str, object] | None = None,
                   pending: tuple[str, ...] = ()) -> bool:
    """Claim ``out`` (:func:`prepare_dir`) and refuse it when it holds another stage's run or one made with other
    settings or inputs; True when it holds this run (a resume). Writes nothing but the lock file.

    Called by a command before anything heavy loads. ``pending``: dotted prefixes (``"config.directions"``) of the
    identity that are only known after the weights load; they are left out of this comparison and checked by
    :func:`begin_stage` later."""
    out = prepare_dir(out)
    path = out / STAGE_FILE
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); delete {out} to start fresh") from err
    if not isinstance(old, dict) or old.get("stage") != stage:
        got = old.get("stage") if isinstance(old, dict) else None
        raise RunDirError(f"--out {shorten(out)} holds a {got!r} run, not a {stage!r} run; use another output folder")
    new = stage_identity(stage, config, inputs)
    if pending:
        old, new = _without(old, pending), _without(new, pending)
    if old != new:
        raise RunDirError(
            f"--out {shorten(out)} holds a {stage} run made with different settings or inputs "
            f"({describe_changes(old, new)}). Rerun with the original settings to resume it, or use a new output "
            f"folder (or delete {shorten(out)}) to start fresh"
        )
    return True


def _without(identity: Mapping[str, object], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """``identity`` flattened, leaves under any of ``prefixes`` removed (compared as flat dicts)."""
    return {k: v for k, v in _flatten(identity).items() if not any(k == p or k.startswith(p + ".") for p in prefixes)}


def begin_stage(out: str | Path, stage: str, config: object, inputs: Mapping[str, object] | None = None) -> bool:
    """Claim ``out`` for ``stage`` with this ``config`` and ``inputs``; returns True when it resumes a run.

    Raises :class:`RunDirError` when ``out`` is in use by another process or holds a run of another stage or with
    another identity; otherwise writes ``stage.json`` (a fresh run) and holds the folder's lock until
    :func:`finish_stage` (or the process ends)."""
    if check_identity(out, stage, config, inputs):
        logger.info("%s: resuming the %s run recorded in %s", out, stage, STAGE_FILE)
        return True
    atomic_write_json(Path(out).expanduser() / STAGE_FILE, stage_identity(stage, config, inputs))
    return False


def is_complete(out: str | Path, stage: str | None = None) -> bool:
    """True when ``out`` holds a finished stage (its manifest), of ``stage`` if given."""
    path = Path(out) / MANIFEST_FILE
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return stage is None or manifest.get("stage") == stage


def _relative(path: str | Path, out: Path) -> str:
    """``path`` relative to ``out``: it may be given relative to ``out``, or as ``out / name`` with ``out`` itself
    relative (the demo's ``runs/demo``) or absolute."""
    p = Path(path)
    for base in (out, out.resolve()):
        try:
            return str(p.relative_to(base))
        except ValueError:
            continue
    if p.is_absolute():
        raise RunDirError(f"{p} is not inside the run directory {out}")
    return str(p)


def finish_stage(out: str | Path, stage: str, files: Iterable[str | Path],
                 summary: Mapping[str, object] | None = None) -> Path:
    """Write ``manifest.json`` last: the run is complete and ``files`` (relative to ``out``) are its outputs."""
    out = Path(out)
    names = sorted({_relative(f, out) for f in files})
    missing = [n for n in names if not (out / n).exists()]
    if missing:
        raise RunDirError(f"{out}: the {stage} stage did not produce {missing}")
    path = out / MANIFEST_FILE
    manifest = {"stage": stage, "complete": True, "files": names, "summary": jsonable(dict(summary or {}))}
    atomic_write_json(path, manifest)
    release_dir(out)
    return path


def require_complete(path: str | Path, what: str) -> None:
    """Refuse to read a stage directory that was started but never finished (``stage.json`` without manifest).

    Folders not made by a stage (hand-made tables, older runs) have no ``stage.json`` and pass.
    """
    folder = Path(path)
    if not folder.is_dir() or not (folder / STAGE_FILE).is_file() or (folder / MANIFEST_FILE).is_file():
        return
    stage = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8")).get("stage", "?")
    raise RunDirError(
        f"{what} {folder} is an unfinished {stage} run (no {MANIFEST_FILE}): rerun the {stage} stage into it to "
        "finish it before using it"
    )
