"""A steering direction without an SAE: the difference of mean residual activations between two text sets.

Useful as a sanity baseline next to SAE feature directions, and for models that have no SAE yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from interp_sot.activations import forward_to_layer
from interp_sot.layers import resolve_layer, unwrap

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer


@torch.no_grad()
def token_residuals(
    model: CausalLM, tokenizer: Tokenizer, texts: Sequence[str], layer: int, batch_size: int = 8
) -> Iterator[torch.Tensor]:
    """resid_post of ``layer`` for every non-padding, non-BOS token, one batch at a time: [n_tokens, d_model] fp32.

    BOS is skipped because its residual norm dwarfs every other token's in Llama-family models.
    """
    if not texts:
        raise ValueError("texts is empty: at least one text is needed")
    module = unwrap(model)
    target = resolve_layer(module, layer)
    device = next(module.parameters()).device
    bos = getattr(tokenizer, "bos_token_id", None)
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True)
        ids, attn = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        hidden = forward_to_layer(module, target, ids, attn)  # layers after ``layer`` and the LM head never run
        mask = attn.bool()
        if bos is not None:
            mask &= ids != bos
        yield hidden.float()[mask]


def mean_residual(model: CausalLM, tokenizer: Tokenizer, texts: Sequence[str], layer: int) -> torch.Tensor:
    """Mean resid_post of ``layer`` over the tokens of ``texts``: [d_model]."""
    total: torch.Tensor | None = None
    count = 0
    for h in token_residuals(model, tokenizer, texts, layer):
        total = h.sum(dim=0) if total is None else total + h.sum(dim=0)
        count += h.shape[0]
    if count == 0 or total is None:
        raise ValueError("texts contain no tokens besides BOS and padding")
    return total / count


def median_residual_norm(model: CausalLM, tokenizer: Tokenizer, texts: Sequence[str], layer: int) -> float:
    """Median per-token norm of resid_post at ``layer``: the scale against which a strength is large or small."""
    norms = [h.norm(dim=-1) for h in token_residuals(model, tokenizer, texts, layer)]
    flat = torch.cat(norms) if norms else torch.empty(0)
    if flat.numel() == 0:
        raise ValueError("texts contain no tokens besides BOS and padding")
    return float(flat.median())


def mean_difference_direction(
    model: CausalLM, tokenizer: Tokenizer, positive: Sequence[str], negative: Sequence[str], layer: int
) -> torch.Tensor:
    """Unit vector from mean(negative) to mean(positive) activations at ``layer``: [d_model]."""
    diff = mean_residual(model, tokenizer, positive, layer) - mean_residual(model, tokenizer, negative, layer)
    norm = diff.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the two text sets have identical mean activations; no direction separates them")
    return diff / norm
