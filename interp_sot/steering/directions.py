"""Steering directions from SAE decoder rows, in the two unit conventions found in the field.

The paper does not publish the units of its strengths s. "unit" (Neuronpedia's steering) makes s the norm of
the added vector; "sae" uses the decoder row of the sae-lens-loaded SAE as is, so s is in that SAE's activation
units (sae-lens folds any dataset-wise input normalisation into W_dec at load, so the row is in raw residual units).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from interp_sot.io import atomic_path

if TYPE_CHECKING:
    from interp_sot.protocols import SparseAutoencoder

DirectionUnits = Literal["unit", "sae"]
"""What one unit of strength adds: the unit-norm decoder row, or the raw sae-lens decoder row."""
DIRECTION_UNITS: tuple[str, ...] = ("unit", "sae")


def decoder_matrix(sae: SparseAutoencoder | torch.Tensor) -> torch.Tensor:
    """W_dec: [d_sae, d_model] of a sae-lens SAE (or any object with ``W_dec``), or a tensor given directly."""
    w = sae if isinstance(sae, torch.Tensor) else getattr(sae, "W_dec", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise ValueError(f"expected an SAE with a 2-D W_dec [d_sae, d_model] or that matrix; got {type(sae).__name__}")
    return w


def feature_direction(sae: SparseAutoencoder | torch.Tensor, index: int | Sequence[int],
                      units: DirectionUnits = "unit") -> torch.Tensor:
    """Steering direction(s) of SAE feature(s): [d_model] for an int, [F, d_model] for a list (float32, detached).

    ``units`` chooses what a strength of 1 adds (see the module docstring); it is not a norm of anything.
    """
    if units not in DIRECTION_UNITS:
        raise ValueError(f"units must be one of {DIRECTION_UNITS} (strength units, not a norm), got {units!r}")
    w = decoder_matrix(sae)
    single = isinstance(index, int)  # a bool is refused below as an index
    indices = [index] if isinstance(index, int) else list(index)
    if not indices:
        raise ValueError("index: at least one feature index is needed")
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < w.shape[0]:
            raise ValueError(f"feature index {i!r} out of range: the SAE has features 0..{w.shape[0] - 1}")
    rows = w.detach()[torch.tensor(indices, device=w.device)].to(torch.float32)
    if units == "unit":
        norms = rows.norm(dim=-1, keepdim=True)
        if (norms == 0).any():
            dead = [i for i, n in zip(indices, norms.flatten().tolist(), strict=True) if n == 0]
            raise ValueError(f"features {dead} have an all-zero decoder row; a unit direction is undefined")
        rows = rows / norms
    return rows[0] if single else rows


def feature_directions(sae: SparseAutoencoder | torch.Tensor, features: Sequence[int], units: DirectionUnits
                       ) -> dict[int, torch.Tensor]:
    """Feature -> its [d_model] direction in ``units``: the directions mapping a sweep or control run takes."""
    ids = [int(f) for f in features]
    table = feature_direction(sae, ids, units=units)
    return {f: table[i] for i, f in enumerate(ids)}


def save_direction(path: str | Path, direction: torch.Tensor, **metadata: str) -> None:
    """Write a direction as safetensors (key ``direction``), atomically, with string metadata."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({"direction": direction.detach().to(torch.float32).contiguous().cpu()}, str(tmp), metadata=metadata)


def load_direction(path: str | Path) -> torch.Tensor:
    """Read a direction [d_model] (or a table [F, d_model]) from .safetensors, .pt or .npy."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"direction file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "direction" not in tensors and len(tensors) != 1:
                raise ValueError(f"{path} holds {sorted(tensors)}; expected a 'direction' tensor")
            t = tensors.get("direction", next(iter(tensors.values())))
        elif path.suffix == ".npy":
            import numpy as np

            t = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix in (".pt", ".pth"):
            t = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"{path}: unknown direction format (use .safetensors, .pt or .npy)")
    except (OSError, RuntimeError, ValueError) as err:
        if isinstance(err, ValueError) and str(path) in str(err):
            raise
        raise ValueError(f"{path}: cannot read a direction ({err})") from err
    if not isinstance(t, torch.Tensor) or t.ndim not in (1, 2):
        raise ValueError(f"{path}: expected a [d_model] or [F, d_model] tensor")
    return t.to(torch.float32)
