"""Residual-stream activations at one decoder layer, computed only as far as needed.

Data path: corpus -> **activations** -> stats -> screen -> steer -> analyze. Reading layer L should cost layers
0..L only: the forward pass is stopped right after layer L, so later layers and the LM head never run.
"""

from __future__ import annotations

from typing import Any

import torch

from interp_sot.layers import unwrap


class _StopForward(Exception):
    """Raised by the layer hook to end the forward pass after layer L."""


def forward_to_layer(model: Any, layer_module: torch.nn.Module, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
    """Residual stream after ``layer_module``: ``[B, T, d_model]``; later layers and the LM head never run."""
    captured: list[torch.Tensor] = []

    def hook(_module: Any, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = layer_module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            unwrap(model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the forward pass never reached the hooked layer; is it part of this model?")
    return captured[0]
