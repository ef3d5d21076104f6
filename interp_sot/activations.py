"""Residual-stream activations at one decoder layer, computed only as far as needed.

Data path: corpus -> **activations** -> stats -> screen -> steer -> analyze. Reading layer L should cost layers
0..L only: the forward pass is stopped right after layer L, so later layers and the LM head never run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interp_sot.layers import unwrap

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM


class _StopForward(Exception):
    """Raised by the layer hook to end the forward pass after layer L."""


def forward_to_layer(model: CausalLM | torch.nn.Module, layer_module: torch.nn.Module, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor, **forward_kwargs: object) -> torch.Tensor:
    """Residual stream after ``layer_module``: ``[B, T, d_model]``; later layers and the LM head never run.

    ``forward_kwargs``: passed to the model (``past_key_values``, ``position_ids`` of :func:`shared_prefix_forward`)."""
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _args: tuple[object, ...],
             output: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = layer_module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            unwrap(model)(input_ids=input_ids, attention_mask=attention_mask,
                          **({"use_cache": False} | forward_kwargs))
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the forward pass never reached the hooked layer; is it part of this model?")
    return captured[0]


def right_padded(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [B, max_len], with each sequence at the start of its row.

    Right padding keeps a teacher-forced pass exact without position ids: with causal attention nothing after a
    row's last token changes its activations, and its positions start at 0 as in an unpadded pass.
    """
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for b, seq in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[b, : len(seq)] = 1
    return ids, mask


def shared_prefix_forward(
    model: CausalLM | torch.nn.Module,
    prefix: list[int],
    suffixes: list[list[int]],
    *,
    layer_module: torch.nn.Module | None = None,
) -> torch.Tensor:
    """One teacher-forced pass over ``prefix + suffix_b`` for every row b, returning the suffix positions only:
    logits ``[B, S, vocab]``, or with ``layer_module`` the residual stream after it ``[B, S, d_model]``
    (S = the longest suffix; rows right-padded).

    Why: few-shot prompts share a long prefix (the shots) in every trace. Its keys and values are computed once and
    repeated over the batch, so a batch costs its suffixes' tokens, not its whole prompts'. The result equals the
    unshared pass up to float rounding (same positions, same causal mask). Without a prefix it is one right-padded
    pass (right padding needs no position ids: nothing after a row's last token changes its activations)."""
    module = unwrap(model)
    device = next(module.parameters()).device
    ids, mask = right_padded(suffixes)
    kwargs: dict[str, object] = {}
    if prefix:
        from transformers import DynamicCache

        cache = DynamicCache(config=getattr(module, "config", None))
        with torch.no_grad():
            module(input_ids=torch.tensor([list(prefix)], device=device), past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(len(suffixes))
        mask = torch.cat([torch.ones(len(suffixes), len(prefix), dtype=mask.dtype), mask], dim=1)
        positions = torch.arange(len(prefix), len(prefix) + ids.shape[1]).expand(len(suffixes), -1)
        kwargs = {"past_key_values": cache, "use_cache": True, "position_ids": positions.to(device)}
    if layer_module is not None:
        return forward_to_layer(module, layer_module, ids.to(device), mask.to(device), **kwargs)
    with torch.no_grad():
        out = module(input_ids=ids.to(device), attention_mask=mask.to(device), **({"use_cache": False} | kwargs))
        return out.logits


def shared_prefix_length(prompts: list[list[int]], minimum: int = 1) -> int:
    """Tokens every prompt starts with, leaving at least one prompt token of each outside the prefix (the last
    prompt position predicts the first completion token, so it must be in the pass that returns logits); 0 when
    fewer than two prompts share one or it is shorter than ``minimum`` (too short to be worth a separate pass)."""
    if len(prompts) < 2:
        return 0
    first = prompts[0]
    limit = min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n if n >= minimum else 0
