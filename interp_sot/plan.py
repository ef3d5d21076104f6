"""A time and memory plan for a generation run or a statistics pass, and a refusal before it when it cannot fit.

Why: the paper's runs (5,120 sweep rows, 9,600 control rows at 4,096 new tokens on an 8B model) take hours on a
rented GPU; a batch size whose KV cache overflows the device should be refused in the first second with the
numbers, not crash with an out-of-memory error an hour in. Everything here is arithmetic on the model's config:

- KV cache: ``2 (K and V) x layers x kv_heads x head_dim x dtype bytes`` per token, times ``batch x (prompt +
  max_new_tokens)`` (transformers' dynamic cache grows to exactly that at the last step). DeepSeek-R1-Distill-
  Llama-8B: 2 x 32 x 8 x 128 x 2 B = 128 KiB per token.
- weights: parameter count (counted on the meta device, so nothing is allocated) x dtype bytes.
- workspace: the last-step logits in float32 plus one decoder layer's MLP activations for the prompt (prefill),
  a rough allowance; ``headroom`` keeps a share of the device free for the allocator and kernels.
- statistics pass (:func:`plan_stats`): weights + the SAE in float32 + one batch's layer activations + the fused
  encoder's ``[chunk, d_sae]`` block; no KV cache (one forward per batch, no generation).
- time: decode steps = batches x max_new_tokens; hours only when a measured seconds-per-step is given (a guess
  is not a plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from interp_sot.errors import InterpSotError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

    from interp_sot.protocols import CausalLM

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


class PlanError(InterpSotError):
    """The planned batch cannot fit the device memory; the message says by how much and what fits."""


def dtype_bytes(dtype: torch.dtype | str) -> int:
    """Bytes per element of a torch dtype or its name (``"bfloat16"``, ``torch.bfloat16``)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


@dataclass(frozen=True)
class ModelShape:
    """The config numbers the plan needs."""

    n_layers: int
    """Decoder layers, each holding its own K and V cache."""
    n_kv_heads: int
    """Key/value heads (grouped-query attention caches only these)."""
    head_dim: int
    """Width of one attention head."""
    hidden_size: int
    """Residual width."""
    intermediate_size: int
    """MLP width (prefill workspace)."""
    vocab_size: int
    """Logit width (last-step logits)."""
    n_params: int
    """Parameter count (weights memory)."""

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_kv_heads", "head_dim", "hidden_size", "intermediate_size", "vocab_size",
                     "n_params"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, config: PretrainedConfig, n_params: int | None = None) -> ModelShape:
        """From a transformers config (text config of multimodal ones); parameters counted on the meta device."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = int(text.num_attention_heads)
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        return cls(
            n_layers=int(text.num_hidden_layers),
            n_kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim),
            hidden_size=int(text.hidden_size),
            intermediate_size=int(getattr(text, "intermediate_size", None) or 4 * text.hidden_size),
            vocab_size=int(text.vocab_size),
            n_params=n_params if n_params is not None else count_parameters(config),
        )

    @classmethod
    def from_model(cls, model: CausalLM) -> ModelShape:
        return cls.from_config(model.config, n_params=sum(p.numel() for p in model.parameters()))


def count_parameters(config: PretrainedConfig) -> int:
    """Exact parameter count of the causal LM ``config`` describes, built on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return int(sum(p.numel() for p in model.parameters()))


class _MemoryPlan:
    """What both plans share: named byte parts, their sum, and whether it fits the device."""

    device_bytes: int | None
    """Memory available on the device (None: not checked)."""

    @property
    def parts(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.device_bytes is None or self.total_bytes <= self.device_bytes

    def _device_lines(self) -> list[str]:
        if self.device_bytes is None:
            return []
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return [f"device memory available {self.device_bytes / GIB:.2f} GiB: {verdict}"]


@dataclass(frozen=True)
class GenerationPlan(_MemoryPlan):
    """What a generation run will cost; ``bytes`` fields are per device."""

    rows: int
    """Completions to generate."""
    batch_size: int
    """Rows per generate call."""
    batches: int
    """ceil(rows / batch_size)."""
    seq_len: int
    """prompt + max_new_tokens: the longest sequence the cache holds."""
    decode_steps: int
    """batches x max_new_tokens (upper bound: a batch stops early when every row has stopped)."""
    kv_bytes_per_token: int
    """2 x layers x kv_heads x head_dim x dtype bytes."""
    kv_cache_bytes: int
    """KV cache of one full batch at ``seq_len``."""
    weights_bytes: int
    """Parameters x dtype bytes."""
    workspace_bytes: int
    """Last-step float32 logits + one layer's prefill MLP activations (an allowance)."""
    device_bytes: int | None
    """Memory available on the device (None: not checked)."""
    hours: float | None
    """decode_steps x seconds_per_step / 3600 when a measured step time was given."""

    @property
    def parts(self) -> dict[str, int]:
        return {"KV cache": self.kv_cache_bytes, "weights": self.weights_bytes, "workspace": self.workspace_bytes}


    def describe(self) -> str:
        """Human-readable plan (what ``--plan`` prints)."""
        lines = [
            f"rows {self.rows:,} in {self.batches:,} batches of {self.batch_size}; sequences up to {self.seq_len:,} "
            f"tokens; at most {self.decode_steps:,} decode steps",
            f"KV cache {self.kv_cache_bytes / GIB:.2f} GiB ({self.kv_bytes_per_token / 1024:.0f} KiB/token) + weights "
            f"{self.weights_bytes / GIB:.2f} GiB + workspace {self.workspace_bytes / GIB:.2f} GiB = "
            f"{self.total_bytes / GIB:.2f} GiB",
        ]
        lines += self._device_lines()
        if self.hours is not None:
            lines.append(f"time at the given step time: about {self.hours:.1f} h")
        return "\n".join(lines)


def plan_generation(
    shape: ModelShape,
    *,
    rows: int,
    batch_size: int,
    prompt_tokens: int,
    max_new_tokens: int,
    dtype: torch.dtype | str = "bfloat16",
    device_bytes: int | None = None,
    seconds_per_step: float | None = None,
) -> GenerationPlan:
    """The plan of generating ``rows`` completions (see the module doc for each term)."""
    for name, value in (("rows", rows), ("batch_size", batch_size), ("prompt_tokens", prompt_tokens),
                        ("max_new_tokens", max_new_tokens)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    if seconds_per_step is not None and seconds_per_step <= 0:
        raise ValueError(f"seconds_per_step must be positive, got {seconds_per_step}")
    nbytes = dtype_bytes(dtype)
    batches = math.ceil(rows / batch_size)
    seq_len = prompt_tokens + max_new_tokens
    per_token = 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * nbytes
    workspace = batch_size * shape.vocab_size * 4 + batch_size * prompt_tokens * shape.intermediate_size * nbytes * 2
    steps = batches * max_new_tokens
    return GenerationPlan(
        rows=rows,
        batch_size=batch_size,
        batches=batches,
        seq_len=seq_len,
        decode_steps=steps,
        kv_bytes_per_token=per_token,
        kv_cache_bytes=per_token * batch_size * seq_len,
        weights_bytes=shape.n_params * nbytes,
        workspace_bytes=workspace,
        device_bytes=device_bytes,
        hours=None if seconds_per_step is None else steps * seconds_per_step / 3600,
    )


def largest_batch(plan: GenerationPlan) -> int:
    """The largest batch size that fits ``plan.device_bytes`` with the same shapes (0: not even one row)."""
    if plan.device_bytes is None:
        raise ValueError("the plan has no device memory to fit")
    per_row = plan.kv_cache_bytes // plan.batch_size + plan.workspace_bytes // plan.batch_size
    spare = plan.device_bytes - plan.weights_bytes
    return max(0, spare // per_row) if per_row else 0


def _parts_text(parts: dict[str, int]) -> str:
    return " + ".join(f"{name} {n / GIB:.2f}" for name, n in parts.items())


def require_fit(plan: GenerationPlan | StatsPlan) -> None:
    """Raise PlanError, naming the numbers and the largest batch that fits, when the plan does not fit."""
    if plan.fits:
        return
    assert plan.device_bytes is not None
    if isinstance(plan, GenerationPlan):
        what = f"batch {plan.batch_size} x {plan.seq_len:,} tokens"
        best = largest_batch(plan)
        hint = (f"use a batch size of at most {best}" if best else
                "not even one row fits: use a shorter --max-new-tokens, a smaller dtype, or a larger device")
    else:
        what = f"batches of {plan.batch_tokens:,} tokens"
        best = largest_batch_tokens(plan)
        hint = (f"use --batch-tokens of at most {best:,}" if best else
                "even the model and SAE alone do not fit: use a smaller dtype or a larger device")
    raise PlanError(
        f"{what} needs {plan.total_bytes / GIB:.2f} GiB ({_parts_text(plan.parts)}) but the device has "
        f"{plan.device_bytes / GIB:.2f} GiB available: {hint}"
    )


@dataclass(frozen=True)
class StatsPlan(_MemoryPlan):
    """What a statistics pass (forward to the SAE's layer, fused SAE encoding) will cost on one device."""

    tokens: int
    """Corpus tokens to process (``--max-tokens``)."""
    batch_tokens: int
    """Padded tokens per forward batch."""
    batches: int
    """ceil(tokens / batch_tokens) (more when padding wastes space)."""
    weights_bytes: int
    """Model parameters x dtype bytes (the whole model is loaded; the forward stops at the layer)."""
    sae_bytes: int
    """SAE encoder and decoder in float32: 2 x d_in x d_sae x 4."""
    activation_bytes: int
    """One batch's residual, attention and MLP activations of one layer: batch_tokens x (4 hidden + 3 MLP)."""
    encode_bytes: int
    """The fused encoder's [chunk, d_sae] float32 block and bool mask."""
    device_bytes: int | None
    """Memory available on the device (None: not checked)."""

    @property
    def parts(self) -> dict[str, int]:
        return {"weights": self.weights_bytes, "SAE": self.sae_bytes, "activations": self.activation_bytes,
                "SAE block": self.encode_bytes}


    def describe(self) -> str:
        lines = [f"{self.tokens:,} tokens in about {self.batches:,} batches of {self.batch_tokens:,} tokens",
                 f"{_parts_text(self.parts)} = {self.total_bytes / GIB:.2f} GiB"]
        lines += self._device_lines()
        return "\n".join(lines)


def plan_stats(
    shape: ModelShape,
    *,
    tokens: int,
    batch_tokens: int,
    d_sae: int,
    chunk_size: int = 1024,
    dtype: torch.dtype | str = "bfloat16",
    device_bytes: int | None = None,
) -> StatsPlan:
    """The plan of a statistics pass over ``tokens`` corpus tokens (see :class:`StatsPlan` for each term)."""
    for name, value in (("tokens", tokens), ("batch_tokens", batch_tokens), ("d_sae", d_sae),
                        ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    nbytes = dtype_bytes(dtype)
    return StatsPlan(
        tokens=tokens,
        batch_tokens=batch_tokens,
        batches=math.ceil(tokens / batch_tokens),
        weights_bytes=shape.n_params * nbytes,
        sae_bytes=2 * shape.hidden_size * d_sae * 4,
        activation_bytes=batch_tokens * (4 * shape.hidden_size + 3 * shape.intermediate_size) * nbytes,
        encode_bytes=min(chunk_size, batch_tokens) * d_sae * 5,
        device_bytes=device_bytes,
    )


def largest_batch_tokens(plan: StatsPlan) -> int:
    """The largest ``batch_tokens`` that fits ``plan.device_bytes`` (0: the model and SAE alone do not fit)."""
    if plan.device_bytes is None:
        raise ValueError("the plan has no device memory to fit")
    spare = plan.device_bytes - plan.weights_bytes - plan.sae_bytes - plan.encode_bytes
    per_token = plan.activation_bytes // plan.batch_tokens
    return max(0, spare // per_token)


def device_memory(device: torch.device | str | int, *, headroom: float = 0.1, resident_bytes: int = 0) -> int | None:
    """Bytes a run may plan on ``device``: CUDA free memory (plus ``resident_bytes`` already holding this run's
    weights) minus ``headroom`` of the total; None for devices whose memory torch cannot report (CPU, MPS)."""
    import torch

    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom must be in [0, 1), got {headroom}")
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(dev)
    return max(0, int(free + resident_bytes - headroom * total))
