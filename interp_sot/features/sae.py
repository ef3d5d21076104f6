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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp_sot.protocols import SparseAutoencoder

logger = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
LLAMA_SCOPE_CFG_FILE = "config.json"
"""Llama Scope (Language-Model-SAEs) folders hold ``config.json``; sae-lens's release loader reads it."""


def _check_folder(path: Path) -> dict[str, Any]:
    """Validate a saved SAE folder before sae-lens reads it; returns the parsed config."""
    cfg_path, weights_path = path / CFG_FILE, path / WEIGHTS_FILE
    if not cfg_path.is_file() and weights_path.is_file():
        has_config = (path / LLAMA_SCOPE_CFG_FILE).is_file()
        raise FileNotFoundError(
            f"SAE folder {path} has no {CFG_FILE}"
            + (f"; its {LLAMA_SCOPE_CFG_FILE} is a Language-Model-SAEs (Llama Scope) config" if has_config else "")
            + ": load Llama Scope SAEs through their sae-lens release, e.g. "
            "load_sae('llama_scope_r1_distill', 'l15r_800m_slimpajama') (which reads config.json and the weights "
            "from the hub cache and folds the dataset-wise normalisation)"
        )
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


def _default_dtype(cfg: Mapping[str, object], device: str | None) -> str | None:
    """float32 for a half-precision SAE loaded onto the CPU; otherwise the dtype it was saved in (None)."""
    saved = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    on_cpu = device is None or str(device).startswith("cpu")
    if on_cpu and saved in ("float16", "bfloat16"):
        logger.info("SAE saved in %s: computing in float32 on the CPU (pass dtype=%r to keep it)", saved, saved)
        return "float32"
    return None


def load_sae(
    release_or_path: SparseAutoencoder | str | Path,
    sae_id: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> SparseAutoencoder:
    """Return an eval-mode sae-lens ``SAE``.

    ``release_or_path``: an SAE object (moved to ``device`` if given), a folder written by ``SAE.save_model``,
    or a sae-lens release name (then ``sae_id`` is required; downloads from the hub).

    The one loading policy of every stage: an SAE read from storage onto the CPU computes in float32 unless
    ``dtype`` says otherwise, because CPUs have no fast half-precision GEMM (the shipped fp16 SAE: 4.3x slower)
    and fp16 overflows on massive-activation tokens. An SAE object passed in keeps its dtype.
    """
    from sae_lens import SAE

    if isinstance(release_or_path, SAE):
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
            sae = SAE.load_from_disk(path, device=device or "cpu", dtype=dtype or _default_dtype(cfg, device))
        except (KeyError, RuntimeError, ValueError) as err:
            raise ValueError(f"sae-lens could not load the SAE in {path}: {err}") from err
        return sae.eval()
    if sae_id is None:
        raise ValueError(f"{release_or_path!r} is not a local folder; loading a hub release also needs sae_id")
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        sae = SAE.from_pretrained(release_or_path, sae_id, device=device or "cpu", dtype=dtype or "float32")
    except (EntryNotFoundError, LocalEntryNotFoundError) as err:
        raise FileNotFoundError(_missing_hub_file(str(release_or_path), sae_id, err)) from err
    return sae.eval()


def _missing_hub_file(release: str, sae_id: str, err: Exception) -> str:
    """Name the repository, folder and HF_HUB_OFFLINE when a release's file is neither cached nor downloadable."""
    from huggingface_hub import is_offline_mode
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    where = f"{repo_id}, folder {folder}"
    if is_offline_mode():
        return (f"SAE {release}/{sae_id}: a file of {where} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 "
                f"forbids downloading it (Llama Scope folders need config.json and {WEIGHTS_FILE}): run "
                f"`huggingface-cli download {repo_id} --include '{folder}/*'` where the Hub is reachable, or unset "
                f"HF_HUB_OFFLINE ({type(err).__name__}: {err})")
    return f"SAE {release}/{sae_id}: {where} lacks a file the sae-lens loader needs ({type(err).__name__}: {err})"


def sae_hook(sae: SparseAutoencoder) -> str | None:
    """The hook the SAE was trained on (``blocks.L.hook_resid_post``), from its sae-lens config; None if unknown."""
    cfg = getattr(sae, "cfg", None)
    name = getattr(getattr(cfg, "metadata", None), "hook_name", None) or getattr(cfg, "hook_name", None)
    return name if isinstance(name, str) and name else None


def sae_layer(sae: SparseAutoencoder) -> int | None:
    """Decoder layer L whose output the SAE reads (``resid_post`` of L = ``resid_pre`` of L + 1); None if unknown."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(post|pre)", sae_hook(sae) or "")
    if match is None:
        return None
    return int(match.group(1)) - (1 if match.group(2) == "pre" else 0)


def check_sae_layer(sae: SparseAutoencoder, layer: int, *, allow_mismatch: bool = False) -> None:
    """Refuse an SAE trained on another layer's residual stream than ``layer`` (unless ``allow_mismatch``)."""
    trained = sae_layer(sae)
    if trained is None or trained == layer:
        return
    if allow_mismatch:
        logger.warning("the SAE was trained on %s but layer %d was asked for (allowed explicitly)", sae_hook(sae),
                       layer)
        return
    raise ValueError(f"the SAE was trained on {sae_hook(sae)} (the output of layer {trained}) but layer {layer} was "
                     f"asked for; use --layer {trained}, or --allow-layer-mismatch to use it on layer {layer} anyway")
