"""Run directories: every stage records what it was asked to do, resumes the same request, refuses another.

A stage's directory holds ``stage.json`` (the stage name, its config and the identity of its inputs), written
before any work, and ``manifest.json`` (the files it produced), written last. So:

- a rerun with the same identity resumes (long stages keep checkpoints or append-only logs next to it);
- a rerun with a different identity is refused with a message naming every setting that changed;
- a directory with ``stage.json`` but no ``manifest.json`` is visibly incomplete, and later stages refuse to
  read it (:func:`require_complete`);
- temporary files left by an interrupted atomic write are removed when a stage starts again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_sot.io import atomic_write_json

logger = logging.getLogger(__name__)

STAGE_FILE = "stage.json"
MANIFEST_FILE = "manifest.json"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked: not writable, made for another request, or incomplete."""


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dataclasses as dicts, tuples as lists, paths as strings)."""

    def default(obj: Any) -> Any:
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
    """Create ``out`` (or check it) before any work: a file in the way or an unwritable place fails here, not at
    the first checkpoint; stale temporary files of interrupted atomic writes are removed."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is a file, not a run directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write to {out}: {err.strerror or err}") from err
    removed = remove_temporaries(out)
    if removed:
        logger.info("%s: removed %d temporary file(s) of an interrupted write", out, removed)
    return out


def remove_temporaries(out: Path) -> int:
    """Delete ``.<name>.<random>.tmp`` files (``io.atomic_path`` leftovers) under ``out``; returns how many."""
    n = 0
    for path in out.rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            n += 1
    return n


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 8) -> str:
    """``"config.layer: 15 -> 3; inputs.corpus.sha256: ab12... -> 9f3c..."``: every leaf that differs."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))

    def short(v: Any) -> str:
        text = json.dumps(v) if not isinstance(v, str) else v
        return text if len(text) <= 60 else text[:57] + "..."

    parts = [f"{k}: {short(a.get(k, '<absent>'))} -> {short(b.get(k, '<absent>'))}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return "; ".join(parts)


def begin_stage(out: str | Path, stage: str, config: Any, inputs: Mapping[str, Any] | None = None) -> bool:
    """Claim ``out`` for ``stage`` with this ``config`` and ``inputs``; returns True when it resumes a run.

    Raises :class:`RunDirError` when ``out`` holds a run of another stage or with another identity.
    """
    out = prepare_dir(out)
    identity = {"stage": stage, "config": jsonable(config), "inputs": jsonable(dict(inputs or {}))}
    path = out / STAGE_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RunDirError(f"{path} is not valid JSON ({err.msg}); delete {out} to start fresh") from err
        if old.get("stage") != stage:
            raise RunDirError(f"{out} holds a {old.get('stage')!r} run, not a {stage!r} run; use another output folder")
        if old != identity:
            raise RunDirError(
                f"{out} holds a {stage} run made with different settings or inputs ({describe_changes(old, identity)}). "
                f"Rerun with the original settings to resume it, or use a new output folder (or delete {out}) "
                "to start fresh"
            )
        logger.info("%s: resuming the %s run recorded in %s", out, stage, STAGE_FILE)
        return True
    atomic_write_json(path, identity)
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


def finish_stage(out: str | Path, stage: str, files: Iterable[str | Path], summary: Mapping[str, Any] | None = None) -> Path:
    """Write ``manifest.json`` last: the run is complete and ``files`` (relative to ``out``) are its outputs."""
    out = Path(out)
    names = sorted({_relative(f, out) for f in files})
    missing = [n for n in names if not (out / n).exists()]
    if missing:
        raise RunDirError(f"{out}: the {stage} stage did not produce {missing}")
    path = out / MANIFEST_FILE
    atomic_write_json(path, {"stage": stage, "complete": True, "files": names, "summary": jsonable(dict(summary or {}))})
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
