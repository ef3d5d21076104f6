"""Finding the decoder-layer list of a model, whatever wraps it.

Layer ``L`` here is HF decoder layer ``L`` (0-based); its output is sae-lens ``blocks.L.hook_resid_post``.
"""

from __future__ import annotations

import torch
from torch import nn

# Attribute paths of the decoder-layer ModuleList, tried in order. Families covered (at least):
# Llama, Mistral, Qwen2/3, Gemma 1/2/3 (text and multimodal), GPT-2, GPT-NeoX/Pythia, plus the bare base models.
KNOWN_LAYER_PATHS: tuple[str, ...] = (
    "model.layers",  # Llama, Mistral, Qwen2/3, Gemma 1/2/3 text (ForCausalLM)
    "model.language_model.layers",  # Gemma 3 multimodal, other VLM wrappers
    "language_model.model.layers",  # older VLM wrappers
    "transformer.h",  # GPT-2, GPT-J, Falcon
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "layers",  # bare LlamaModel / MistralModel / ...
    "h",  # bare GPT2Model
)
SUPPORTED_FAMILIES = "Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3, GPT-2, GPT-NeoX/Pythia"


def unwrap(model: object) -> nn.Module:
    """The torch module behind an nnsight wrapper (``NNsight``/``LanguageModel``), or ``model`` itself."""
    inner = getattr(model, "_module", None)
    if isinstance(inner, nn.Module) and not isinstance(model, nn.Module):
        return inner
    if isinstance(model, nn.Module):
        return model
    raise TypeError(f"expected a torch.nn.Module or an nnsight-wrapped model, got {type(model).__name__}")


def _get_path(root: nn.Module, path: str) -> object | None:
    obj: object = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: object, layers_path: str | None = None) -> nn.ModuleList:
    """The model's decoder layers, in order.

    ``layers_path`` (e.g. ``"model.layers"``) names the ModuleList explicitly for architectures not listed in
    ``KNOWN_LAYER_PATHS``.
    """
    module = unwrap(model)
    if layers_path is not None:
        found = _get_path(module, layers_path)
        if not isinstance(found, nn.ModuleList) or len(found) == 0:
            raise ValueError(
                f"layers_path={layers_path!r} does not name a non-empty ModuleList on {type(module).__name__}"
            )
        return found
    for path in KNOWN_LAYER_PATHS:
        found = _get_path(module, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise ValueError(
        f"cannot find the decoder layers of {type(module).__name__}; supported families: {SUPPORTED_FAMILIES}. "
        "Pass layers_path='dotted.path.to.ModuleList' for other architectures."
    )


def resolve_layer(model: object, layer: int, layers_path: str | None = None) -> nn.Module:
    """Decoder layer ``layer``, with a range check that names the valid range."""
    layers = decoder_layers(model, layers_path)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ValueError(f"layer must be an int, got {type(layer).__name__}")
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer {layer} out of range: {type(unwrap(model)).__name__} has layers 0..{len(layers) - 1}")
    return layers[layer]


def residual_width(model: object) -> int | None:
    """d_model, read from the input embedding so that it holds for every family; None if the model doesn't say."""
    module = unwrap(model)
    get_emb = getattr(module, "get_input_embeddings", None)
    emb = get_emb() if callable(get_emb) else None
    if isinstance(emb, nn.Embedding):
        return int(emb.embedding_dim)
    config = getattr(module, "config", None)
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def layer_param(layer: nn.Module) -> torch.Tensor:
    """A parameter of ``layer``: its device and dtype are where the residual stream lives."""
    for p in layer.parameters():
        return p
    raise ValueError(f"decoder layer {type(layer).__name__} has no parameters to infer device and dtype from")
