"""How good an SAE is on held-out activations: explained variance, L0, and features that never fire.

The definitions are the usual ones (SAEBench, sae-lens evals): explained variance
``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over all held-out tokens, L0 the mean number of active
latents per token, and a latent dead when it fires on none of the held-out tokens.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from interp_sot.protocols import SparseAutoencoder


class SAEQuality(NamedTuple):
    """Reconstruction and sparsity of an SAE on a held-out activation set."""

    explained_variance: float
    l0: float
    dead_fraction: float
    n_tokens: int
    d_sae: int


@torch.no_grad()
def sae_quality(sae: SparseAutoencoder, acts: torch.Tensor, batch_size: int = 4096) -> SAEQuality:
    """Quality of ``sae`` (anything with ``encode``/``decode``) on ``acts: [tokens, d_in]``, computed in fp32."""
    if acts.ndim != 2 or acts.shape[0] < 2:
        raise ValueError(f"acts must be [tokens >= 2, d_in], got {list(acts.shape)}")
    if not torch.isfinite(acts).all():
        raise ValueError("acts contain NaN or inf")
    param = next(sae.parameters())
    half = param.dtype in (torch.float16, torch.bfloat16)
    if param.device.type == "cpu" and half and isinstance(sae, torch.nn.Module):
        # CPUs have no fast half-precision GEMM (minutes instead of seconds); fp16 -> fp32 weights are exact.
        sae = copy.deepcopy(sae).float()
    dtype = next(sae.parameters()).dtype
    mean = acts.float().mean(0)
    sq_err = total = l0 = 0.0
    fired: torch.Tensor | None = None
    for i in range(0, acts.shape[0], batch_size):
        x = acts[i:i + batch_size].float()
        feats = sae.encode(x.to(dtype))
        x_hat = sae.decode(feats).float()
        sq_err += (x - x_hat).pow(2).sum().item()
        total += (x - mean).pow(2).sum().item()
        active = feats != 0
        l0 += active.sum().item()
        hit = active.any(0)
        fired = hit if fired is None else fired | hit
    assert fired is not None
    return SAEQuality(explained_variance=1 - sq_err / total, l0=l0 / acts.shape[0],
                      dead_fraction=1 - fired.float().mean().item(), n_tokens=int(acts.shape[0]),
                      d_sae=int(fired.shape[0]))
