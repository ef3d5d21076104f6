"""Loading a sparse autoencoder through sae-lens: a hub release, a local folder, or an SAE object.

The hub path (``SAE.from_pretrained(release, sae_id)``) is what the paper's setup uses: release
``llama_scope_r1_distill``, sae_id ``l15r_800m_slimpajama``; sae-lens folds Llama Scope's dataset-wise input
normalisation into the weights, so the loaded SAE encodes raw residual-stream activations. Local folders hold
``cfg.json`` + ``sae_weights.safetensors`` as written by ``SAE.save_model``; broken folders fail here with an
error naming the file instead of deep inside sae-lens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"


def _is_sae(obj: Any) -> bool:
    from sae_lens import SAE

    return isinstance(obj, SAE)


def _check_folder(path: Path) -> dict[str, Any]:
    """Validate a saved SAE folder before sae-lens reads it; returns the parsed config."""
    cfg_path, weights_path = path / CFG_FILE, path / WEIGHTS_FILE
    for f in (cfg_path, weights_path):
        if not f.is_file():
            raise FileNotFoundError(f"SAE folder {path} has no {f.name} (expected {CFG_FILE} and {WEIGHTS_FILE})")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path} must hold a JSON object, got {type(cfg).__name__}")
    missing = [k for k in ("d_in", "d_sae") if k not in cfg]
    if missing:
        raise ValueError(f"{cfg_path} lacks required fields {missing}")
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as fh:
            names = list(fh.keys())
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in names}
    except Exception as err:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"{weights_path} is not a readable safetensors file (truncated or corrupt): {err}") from err
    for name, shape in (("W_enc", (cfg["d_in"], cfg["d_sae"])), ("b_enc", (cfg["d_sae"],))):
        if name in shapes and shapes[name] != shape:
            raise ValueError(f"{weights_path}: {name} has shape {shapes[name]} but {CFG_FILE} implies {shape}")
    return cfg


def load_sae(
    release_or_path: Any,
    sae_id: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Any:
    """Return an eval-mode sae-lens ``SAE``.

    ``release_or_path``: an SAE object (moved to ``device`` if given), a folder written by ``SAE.save_model``,
    or a sae-lens release name (then ``sae_id`` is required; downloads from the hub).
    """
    from sae_lens import SAE

    if _is_sae(release_or_path):
        sae = release_or_path
        if device is not None or dtype is not None:
            import torch

            sae = sae.to(device=device, dtype=getattr(torch, dtype) if dtype else None)
        return sae.eval()
    if not isinstance(release_or_path, (str, Path)):
        raise TypeError(f"load_sae expects an SAE, a folder or a release name, got {type(release_or_path).__name__}")
    path = Path(release_or_path).expanduser()
    looks_local = isinstance(release_or_path, Path) or path.exists() or str(release_or_path).startswith((".", "/", "~"))
    if looks_local:
        if not path.is_dir():
            raise FileNotFoundError(f"SAE folder {path} does not exist")
        cfg = _check_folder(path)
        if cfg.get("normalize_activations") == "expected_average_only_in":
            logger.warning("%s: normalize_activations=expected_average_only_in is not applied by sae-lens when "
                           "loading from disk; fold the scaling factor into the weights first", path)
        try:
            sae = SAE.load_from_disk(path, device=device or "cpu", dtype=dtype)
        except (KeyError, RuntimeError, ValueError) as err:
            raise ValueError(f"sae-lens could not load the SAE in {path}: {err}") from err
        return sae.eval()
    if sae_id is None:
        raise ValueError(f"{release_or_path!r} is not a local folder; loading a hub release also needs sae_id")
    sae = SAE.from_pretrained(release_or_path, sae_id, device=device or "cpu", dtype=dtype or "float32")
    return sae.eval()
