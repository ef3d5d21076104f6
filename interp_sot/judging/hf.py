"""A judge run locally with transformers: the model's chat template, greedy decoding.

Meant for offline work and small jobs; for a full screen serve the model (``transformers serve``, vLLM, llama.cpp)
and use the OpenAI-compatible backend, which batches across requests. A :func:`~interp_sot.judging.base.reply_budget`
set by the caller caps the reply below ``max_new_tokens``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from interp_sot.errors import InterpSotError
from interp_sot.judging.base import Message, current_reply_budget

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)


class HFJudge:
    """Greedy chat completion with a loaded ``(model, tokenizer)``; one request at a time."""

    max_concurrency = 1

    def __init__(self, model: CausalLM, tokenizer: Tokenizer, max_new_tokens: int = 512, name: str | None = None
                 ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if not getattr(tokenizer, "chat_template", None):
            raise InterpSotError("the tokenizer has no chat template; a chat judge needs an instruction-tuned model")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self._name = name or f"hf:{getattr(model.config, '_name_or_path', type(model).__name__)}"
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str, max_new_tokens: int = 512, *, gguf_file: str | None = None,
                        dtype: torch.dtype | str | None = None, device: str | None = None,
                        cache_dir: str | Path | None = None) -> HFJudge:
        """Load a local folder, hub id or ``"smollm2"`` through :func:`interp_sot.models.load_model` (which the
        keywords go to)."""
        from interp_sot.models import load_model

        model, tokenizer = load_model(path, gguf_file=gguf_file, dtype=dtype, device=device, cache_dir=cache_dir)
        return cls(model, tokenizer, max_new_tokens=max_new_tokens, name=f"hf:{path}")

    @property
    def name(self) -> str:
        return self._name

    def complete(self, messages: list[Message]) -> str:
        import torch

        from interp_sot.protocols import decode_text, generated_ids, render_chat

        # what apply_chat_template(..., return_dict=True) does: render the chat, tokenize it without special tokens
        text = render_chat(self.tokenizer, [{"role": m["role"], "content": m["content"]} for m in messages])
        encoded = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in encoded.items()}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        budget = min(self.max_new_tokens, current_reply_budget() or self.max_new_tokens)
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **inputs, do_sample=False, max_new_tokens=budget, pad_token_id=pad,
                temperature=None, top_p=None, top_k=None,
            )
        new_tokens = generated_ids(out)[0, inputs["input_ids"].shape[1]:]
        return decode_text(self.tokenizer, new_tokens, skip_special_tokens=True)
