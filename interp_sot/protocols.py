"""The structural types of the objects users bring: a causal LM, its tokenizer, a sparse autoencoder and a judge.

The toolkit runs on Hugging Face ``transformers`` models and tokenizers and on sae-lens SAEs, but never needs
their concrete classes: a stage only reads a handful of members. These Protocols name exactly those members,
so that

* mypy checks every use of a model, tokenizer or SAE against what the code actually relies on (instead of
  ``Any``, which checks nothing);
* a test double, a wrapped model or another SAE library plugs in when it has the same members;
* a new use of a member that is not listed here is a deliberate change to this file, not an accident.

Only what the package uses is listed. The model and tokenizer signatures are those of ``transformers`` (5.x),
narrowed to the arguments the package passes; ``tests/test_protocols.py`` checks under mypy and at run time
that a real ``transformers`` model and tokenizer and a ``sae_lens.SAE`` satisfy them.

This module imports neither torch nor transformers at run time (``interp-sot --help`` must stay fast): their
types appear in annotations only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from interp_sot.judging.base import Judge, Message

if TYPE_CHECKING:
    import torch
    from transformers import BatchEncoding, GenerationConfig, PreTrainedConfig
    from transformers.utils import ModelOutput

__all__ = [
    "CausalLM",
    "ForwardOutput",
    "Judge",
    "Message",
    "SAEConfig",
    "SparseAutoencoder",
    "Tokenizer",
    "decode_text",
    "generated_ids",
    "render_chat",
]


@runtime_checkable
class ForwardOutput(Protocol):
    """What a forward pass of a :class:`CausalLM` returns: the next-token logits ``[B, T, vocab]``.

    transformers' ``CausalLMOutputWithPast`` types it ``FloatTensor | None``; the package only reads the logits of
    a causal LM (whose forward always computes them)."""

    @property
    def logits(self) -> torch.Tensor: ...


@runtime_checkable
class CausalLM(Protocol):
    """A decoder-only language model, as the package uses it (a ``transformers`` ``*ForCausalLM``).

    The package hooks its decoder layers (found by :mod:`interp_sot.layers`, through ``torch.nn.Module``), runs
    forward passes, generates, reads its config (name, widths, context length), its generation defaults (end
    tokens) and its parameters (device, dtype, size, a digest of the weights for run identity)."""

    @property
    def config(self) -> PreTrainedConfig:
        """Architecture config: ``_name_or_path``, ``hidden_size``, ``max_position_embeddings``, ..."""
        ...

    @property
    def generation_config(self) -> GenerationConfig:
        """Generation defaults: the end-of-sequence ids the model stops on."""
        ...

    # Declared as a callable attribute, not a method: torch types ``nn.Module.__call__`` so
    # (``Callable[..., Any]``), and the package passes the forward arguments by keyword
    # (``input_ids``, ``attention_mask``, ``past_key_values``, ``position_ids``, ``use_cache``).
    @property
    def __call__(self) -> Callable[..., ForwardOutput]: ...

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: object,
    ) -> torch.Tensor | ModelOutput:
        """Token ids ``[B, prompt + new]`` (a ``ModelOutput`` only with ``return_dict_in_generate``)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, torch.nn.Parameter]]: ...


@runtime_checkable
class Tokenizer(Protocol):
    """A ``transformers`` tokenizer, as the package uses it: encode text (one string or a batch, optionally padded
    into tensors), decode ids, render a chat, and the padding/end tokens that batching and stopping need."""

    @property
    def pad_token_id(self) -> int | None: ...

    @property
    def eos_token_id(self) -> int | None: ...

    def __call__(
        self,
        text: str | list[str],
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """``{"input_ids": ..., "attention_mask": ...}``: lists of ids, or ``[B, T]`` tensors with
        ``return_tensors="pt"``."""
        ...

    def decode(self, token_ids: int | list[int] | torch.Tensor, skip_special_tokens: bool = False) -> str | list[str]:
        """The text of one sequence of ids (a list of texts only for a batch of sequences)."""
        ...

    def batch_decode(self, sequences: list[list[int]] | torch.Tensor, skip_special_tokens: bool = False) -> list[str]:
        ...

    def apply_chat_template(
        self,
        conversation: list[dict[str, str]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
    ) -> str | list[int] | list[str] | list[list[int]] | BatchEncoding:
        """The chat rendered as the model's prompt (a string with ``tokenize=False``)."""
        ...


@runtime_checkable
class SAEConfig(Protocol):
    """The part of an sae-lens ``SAE.cfg`` the package reads (hook name and architecture options are read with
    ``getattr``, since they moved between sae-lens versions)."""

    @property
    def d_in(self) -> int: ...

    @property
    def d_sae(self) -> int: ...

    def architecture(self) -> str: ...


@runtime_checkable
class SparseAutoencoder(Protocol):
    """A sparse autoencoder with a linear encoder and decoder, as sae-lens's ``SAE`` (any architecture).

    The package encodes residual-stream activations (fused from the weights where the architecture allows, else
    through ``encode``), reads decoder rows as steering directions, and reads weights for digests and quality
    checks. ``threshold`` (JumpReLU) and ``activation_fn`` are architecture-specific and read with ``getattr``."""

    @property
    def cfg(self) -> SAEConfig: ...

    @property
    def W_enc(self) -> torch.Tensor:
        """``[d_in, d_sae]``."""
        ...

    @property
    def W_dec(self) -> torch.Tensor:
        """``[d_sae, d_in]``: row ``i`` is feature ``i``'s direction."""
        ...

    @property
    def b_enc(self) -> torch.Tensor: ...

    @property
    def b_dec(self) -> torch.Tensor: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...


def decode_text(tokenizer: Tokenizer, token_ids: list[int] | torch.Tensor, *, skip_special_tokens: bool = False) -> str:
    """The text of one sequence of ids. transformers types ``decode`` as ``str | list[str]`` (a list for a batch);
    one sequence always gives a string, and this says so to the type checker."""
    # only pass the flag when set: simple tokenizers (test doubles) take the ids alone
    text = tokenizer.decode(token_ids, skip_special_tokens=True) if skip_special_tokens else tokenizer.decode(token_ids)
    if not isinstance(text, str):
        raise TypeError(f"decoding one sequence gave {type(text).__name__}, not str; pass a single sequence of ids")
    return text


def render_chat(tokenizer: Tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """The chat rendered as the model's prompt text (``apply_chat_template(..., tokenize=False)``)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) gave {type(text).__name__}, not str")
    return text


def generated_ids(output: torch.Tensor | ModelOutput) -> torch.Tensor:
    """The token ids ``[B, prompt + new]`` of a ``generate`` result (its ``sequences`` when it is a ModelOutput)."""
    import torch

    ids = output if isinstance(output, torch.Tensor) else getattr(output, "sequences", None)
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"generate returned {type(output).__name__} without token ids")
    return ids
