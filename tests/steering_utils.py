"""Capture helpers for the steering tests: record what a decoder layer really saw or produced."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


@contextlib.contextmanager
def record(layer: nn.Module, site: str = "resid_post") -> Iterator[list[torch.Tensor]]:
    """Clone the layer's output (resid_post) or input (resid_pre) at every call, after any earlier hooks."""
    seen: list[torch.Tensor] = []
    if site == "resid_post":

        def post(module: nn.Module, args: Any, output: Any) -> None:
            h = output[0] if isinstance(output, tuple) else output
            seen.append(h.detach().clone())

        handle = layer.register_forward_hook(post)
    else:

        def pre(module: nn.Module, args: Any, kwargs: Any) -> None:
            h = args[0] if args else kwargs["hidden_states"]
            seen.append(h.detach().clone())

        handle = layer.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def hook_count(model: nn.Module) -> int:
    """Forward and pre-forward hooks attached anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def greedy(model: nn.Module, batch: dict[str, torch.Tensor], n: int = 6, **kw: Any) -> torch.Tensor:
    """Greedy continuation tokens only: [batch, n]."""
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, **kw)
    return out[:, batch["input_ids"].shape[1] :]
