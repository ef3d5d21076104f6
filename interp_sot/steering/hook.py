"""The residual-stream steering hook: h' = h + s_i * d_i for every batch row i.

Everything that can be decided before the forward pass is decided at registration: the per-row offset
``s_i * d_i`` is one ``[B | 1, 1, d_model]`` buffer on the layer's device and dtype, so the hook itself is a
single in-place ``add_`` with no host tensor, no device sync and no allocation (CUDA-graph friendly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from interp_sot.layers import layer_param, residual_width, resolve_layer, unwrap
from interp_sot.steering.sites import SCOPES, SITES, Scope, Site

if TYPE_CHECKING:
    from transformers.cache_utils import Cache

    from interp_sot.protocols import CausalLM

logger = logging.getLogger(__name__)

Direction = torch.Tensor | Sequence[float] | Sequence[Sequence[float]]
"""``[d_model]``, one per batch row ``[B, d_model]``, or a table ``[F, d_model]`` indexed by a FeatureIndex."""
Strength = float | Sequence[float] | torch.Tensor
"""One strength for every row, or one per batch row ``[B]``."""
FeatureIndex = Sequence[int] | torch.Tensor
"""Which row of a direction table ``[F, d_model]`` each batch row uses ``[B]``."""


def _as_float_tensor(value: object, what: str) -> torch.Tensor:
    """``value`` as a real floating tensor, or a ValueError saying why it cannot be one."""
    try:
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} cannot be converted to a tensor: {err}") from err
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{what} has dtype {t.dtype}, which cannot be cast to a real floating residual stream")
    t = t.detach()
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def build_offset(
    direction: Direction,
    strength: Strength,
    d_model: int | None,
    feature_index: FeatureIndex | None = None,
) -> torch.Tensor:
    """The per-row offset ``s_i * d_i`` as ``[B, 1, d_model]`` (or ``[1, 1, d_model]`` when shared by all rows).

    direction: [d_model] | [B, d_model] | [F, d_model] with ``feature_index: [B]`` selecting a row per batch row.
    strength: float | [B].
    """
    dirs = _as_float_tensor(direction, "direction").to(torch.float32)
    if dirs.ndim not in (1, 2):
        raise ValueError(f"direction must be [d_model], [B, d_model] or [F, d_model]; got shape {tuple(dirs.shape)}")
    if d_model is None:  # a custom model that does not state its width: checked at the first call instead
        d_model = int(dirs.shape[-1])
    if dirs.shape[-1] != d_model:
        raise ValueError(f"direction width {dirs.shape[-1]} != d_model {d_model} of the model")
    if not torch.isfinite(dirs).all():
        raise ValueError("direction contains NaN or inf")

    if feature_index is not None:
        if dirs.ndim != 2:
            raise ValueError("feature_index needs a direction table [F, d_model]")
        idx = torch.as_tensor(feature_index).to(dirs.device)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.ndim != 1:
            raise ValueError(f"feature_index must be a 1-D integer tensor [B]; got {idx.dtype} {tuple(idx.shape)}")
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= dirs.shape[0]:
            raise ValueError(f"feature_index values must lie in [0, {dirs.shape[0] - 1}]")
        dirs = dirs[idx.long()]

    s = _as_float_tensor(strength, "strength").to(device=dirs.device, dtype=torch.float32)
    if s.ndim > 1:
        raise ValueError(f"strength must be a float or a 1-D tensor [B]; got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("strength contains NaN or inf")

    rows_d = dirs.shape[0] if dirs.ndim == 2 else None
    rows_s = s.shape[0] if s.ndim == 1 else None
    if rows_d is not None and rows_s is not None and rows_d != rows_s:
        raise ValueError(f"{rows_s} strengths for {rows_d} direction rows: one strength per batch row is needed")
    if rows_d is None and rows_s is None:
        return (s * dirs).reshape(1, 1, d_model)
    dirs2 = dirs if dirs.ndim == 2 else dirs.unsqueeze(0)
    s2 = s.reshape(-1, 1) if s.ndim == 1 else s
    return (s2 * dirs2).unsqueeze(1)


def _cache_length(args: tuple[object, ...], kwargs: dict[str, object], layer_idx: int,
                  cache_type: type[Cache] | None) -> int | None:
    """Tokens already in the KV cache of ``layer_idx`` before this call, read host-side (no sync); None if unknown."""
    if cache_type is None:
        return None
    for value in (*kwargs.values(), *args[1:]):
        if isinstance(value, cache_type):
            length = value.get_seq_length(layer_idx)
            return length if isinstance(length, int) else None
    return None


def _hidden(value: object) -> torch.Tensor:
    """The hidden states a decoder layer receives or returns (a tensor in every supported family)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected the layer's hidden states as a tensor, got {type(value).__name__}")
    return value


class SteeringHandle:
    """Live steering on one or more decoder layers; a context manager, removed by ``remove()``.

    With ``scope="generated"`` the handle must tell prompt tokens from generated ones. It reads how many tokens
    the KV cache already holds (host-side, no sync). Without a cache (``use_cache=False``), each call carries
    the whole sequence: a call one token longer than the previous one continues it, any other call starts a new
    prompt. Call ``reset()`` to force a new prompt when that rule is ambiguous.
    """

    def __init__(self, layers: list[tuple[int, nn.Module]], offset: torch.Tensor, site: Site, scope: Scope) -> None:
        self.layers = [idx for idx, _ in layers]
        self.site = site
        self.scope = scope
        self.batch_size: int | None = offset.shape[0] if offset.shape[0] > 1 else None
        self.calls = 0
        """Eager hook invocations so far (one per layer per forward call): lets tests see steering at every step.
        Calls inside a ``torch.compile``d graph are not counted: Dynamo guards on a Python int it mutates, so
        counting there would recompile the decode step at every token."""
        self._offset = offset
        self._modules = layers
        self._handles: list[RemovableHandle] = []
        self._prompt_len: dict[int, int | None] = {idx: None for idx, _ in layers}
        self._last_len: dict[int, int | None] = {idx: None for idx, _ in layers}
        self._skip: dict[int, int] = {idx: 0 for idx, _ in layers}
        self._cache_type: type[Cache] | None = None
        if scope == "generated":
            try:
                from transformers.cache_utils import Cache

                self._cache_type = Cache
            except ImportError:  # pragma: no cover - transformers is a required dependency
                self._cache_type = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return bool(self._handles)

    def attach(self) -> SteeringHandle:
        """Register on every layer, or on none: a failure part-way removes what was registered."""
        if self._handles:
            raise RuntimeError("steering handle is already attached")
        try:
            for idx, module in self._modules:
                self._register(idx, module)
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Detach every hook; safe to call twice."""
        while self._handles:
            self._handles.pop().remove()

    def reset(self) -> None:
        """Forget the prompt length: the next call is treated as a new prompt (``scope="generated"``)."""
        for idx in self._prompt_len:
            self._prompt_len[idx] = None
            self._last_len[idx] = None

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        rows = self.batch_size or "all"
        return (f"SteeringHandle(layers={self.layers}, site={self.site!r}, scope={self.scope!r}, rows={rows}, "
                f"active={self.active})")

    # -- hooks -----------------------------------------------------------------------------------------------
    def _register(self, idx: int, module: nn.Module) -> None:
        if self.site == "resid_pre":
            self._handles.append(module.register_forward_pre_hook(self._make_pre(idx, apply=True), with_kwargs=True))
            return
        if self.scope == "generated":
            self._handles.append(module.register_forward_pre_hook(self._make_pre(idx, apply=False), with_kwargs=True))
        self._handles.append(module.register_forward_hook(self._make_post(idx)))

    def _make_pre(self, idx: int, apply: bool) -> Callable[..., Any]:
        def pre_hook(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]
                     ) -> tuple[tuple[object, ...], dict[str, object]] | None:
            from_kwargs = not args
            h = _hidden(kwargs["hidden_states"] if from_kwargs else args[0])
            skip = self._first_steered(idx, h, args, kwargs) if self.scope == "generated" else 0
            if not apply:
                self._skip[idx] = skip
                return None
            new = self._add(h, skip, inplace=False)
            if from_kwargs:
                return args, {**kwargs, "hidden_states": new}
            return (new, *args[1:]), kwargs

        return pre_hook

    def _make_post(self, idx: int) -> Callable[..., Any]:
        def post_hook(module: nn.Module, args: tuple[object, ...], output: torch.Tensor | tuple[object, ...]
                      ) -> torch.Tensor | tuple[object, ...] | None:
            h = _hidden(output[0] if isinstance(output, tuple) else output)
            new = self._add(h, self._skip[idx], inplace=True)
            if new is h:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return post_hook

    def _first_steered(self, idx: int, h: torch.Tensor, args: tuple[object, ...], kwargs: dict[str, object]) -> int:
        """Index along ``pos`` of this call's first generated token (``h.shape[1]`` if none)."""
        length = h.shape[1]
        past = _cache_length(args, kwargs, idx, self._cache_type)
        if past is not None:
            prompt_len = self._prompt_len[idx]
            if past == 0 or prompt_len is None:
                prompt_len = past + length if past == 0 else past
                self._prompt_len[idx] = prompt_len
            return max(0, min(length, prompt_len - past))
        prompt, last = self._prompt_len[idx], self._last_len[idx]
        self._last_len[idx] = length
        if prompt is not None and last is not None and length == last + 1:
            return prompt
        self._prompt_len[idx] = length
        return length

    def _add(self, h: torch.Tensor, skip: int, *, inplace: bool) -> torch.Tensor:
        """h[:, skip:] += offset, in place unless autograd needs the original (h: [batch, pos, d_model])."""
        if not torch.compiler.is_compiling():
            self.calls += 1
        if self.batch_size is not None and h.shape[0] != self.batch_size:
            self.remove()
            raise ValueError(
                f"steering was built for batch size {self.batch_size} (one strength/direction per row) but the "
                f"layer received batch size {h.shape[0]}; hooks removed"
            )
        if h.shape[-1] != self._offset.shape[-1]:
            self.remove()
            raise ValueError(
                f"direction width {self._offset.shape[-1]} != residual width {h.shape[-1]} seen by the layer; "
                "hooks removed"
            )
        if skip >= h.shape[1]:
            return h
        offset = self._offset
        if offset.dtype != h.dtype or offset.device != h.device:
            offset = self._offset = offset.to(device=h.device, dtype=h.dtype)
        if inplace and not (h.requires_grad and torch.is_grad_enabled()):
            (h if skip == 0 else h[:, skip:]).add_(offset)
            return h
        if skip == 0:
            return h + offset
        out = h.clone()
        out[:, skip:] += offset
        return out


def steer(
    model: CausalLM | nn.Module,
    layer: int | Sequence[int],
    direction: Direction,
    strength: Strength = 1.0,
    *,
    site: Site = "resid_post",
    scope: Scope = "all",
    feature_index: FeatureIndex | None = None,
    layers_path: str | None = None,
) -> SteeringHandle:
    """Add ``strength * direction`` to the residual stream at ``layer`` on every forward call.

    model: a Hugging Face decoder model or an nnsight wrapper of one (its underlying module is hooked).
    layer: decoder layer index (or several; the same offset at each).
    direction: [d_model] | [B, d_model] | [F, d_model] with ``feature_index: [B]``.
    strength: float | [B] (one per batch row: a whole strength sweep in one batch).
    site: "resid_post" = output of decoder layer ``layer`` (sae-lens ``blocks.{layer}.hook_resid_post``);
        "resid_pre" = its input.
    scope: "all" = every position of every call; "generated" = only tokens produced by generation.
    layers_path: dotted path of the decoder ModuleList for architectures not recognised automatically.

    Fails before attaching anything (ValueError naming the problem), or attaches to every layer; a batch-size
    mismatch found at the first call removes the hooks and raises.
    """
    if site not in SITES:
        raise ValueError(f"site must be one of {SITES}, got {site!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    module = unwrap(model)
    indices = [layer] if isinstance(layer, int) else list(layer)
    if not indices:
        raise ValueError("layer: at least one layer index is needed")
    if len(set(indices)) != len(indices):
        raise ValueError(f"layer: duplicate indices in {indices}")
    targets = [(idx, resolve_layer(module, idx, layers_path)) for idx in indices]
    offset = build_offset(direction, strength, residual_width(module), feature_index)
    param = layer_param(targets[0][1])
    cast = offset.to(device=param.device, dtype=param.dtype)
    if not torch.isfinite(cast).all():
        raise ValueError(f"strength * direction overflows the model dtype {param.dtype}")
    handle = SteeringHandle(targets, cast, site, scope)
    logger.debug("attaching %r", handle)
    return handle.attach()
