"""How a statistics pass reads, batches, counts and checkpoints a corpus (:mod:`interp_sot.features.collect`).

Pure Python (no torch): ``interp-sot stats`` derives its flags from these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from interp_sot.features.onsets import OnsetRule

DEFAULT_CHUNK = 1024
"""Tokens per GEMM on CPU: large enough for an efficient GEMM, small enough to keep the block ~128 MB at 32k."""


@dataclass
class CollectConfig:
    """How the corpus is read, batched, counted and checkpointed."""

    batch_tokens: int = 8192
    """Padded tokens per forward batch (rows x longest row)."""
    max_length: int = 1024
    """Documents are truncated to this many tokens (special tokens included)."""
    chunk_size: int = DEFAULT_CHUNK
    """Tokens per SAE GEMM in the fused pass."""
    top_k: int = 50
    """Top contexts kept per feature."""
    first_n: int = 4
    """A firing within the first ``first_n`` counted tokens of a sequence counts in ``first_n_count``."""
    onset_n: int = 4
    """A firing within ``onset_n`` tokens of a sentence/turn onset counts in ``onset_count``."""
    onset_rule: OnsetRule = field(default_factory=OnsetRule)
    """Where sentences and turns start (see :mod:`interp_sot.features.onsets`)."""
    text_field: str = "text"
    """Field holding the text (or token ids) when documents are dicts / dataset rows."""
    metadata_fields: tuple[str, ...] = ()
    """Document fields stored per sequence (e.g. ``("conversational",)`` for the judge-free ratio)."""
    exclude_bos: bool = True
    """Leave a leading BOS out of the statistics (its residual norm dwarfs the rest in Llama models)."""
    add_special_tokens: bool = True
    """Let the tokenizer add its special tokens (BOS) to text documents."""
    keep_contexts: bool = True
    """Keep the token ids behind the top-k contexts (see :class:`ContextStore`)."""
    checkpoint_every: int = 1_000_000
    """Counted tokens between checkpoints / context-store prunes."""
    max_tokens: int | None = None
    """Stop after the batch that reaches this many counted tokens (a rerun with a larger value continues)."""
    compute_dtype: str | None = None
    """dtype of the SAE GEMM (e.g. ``"bfloat16"`` on GPU, fp32 accumulation); None = the SAE's dtype."""
    layers_path: str | None = None
    """Dotted path of the decoder-layer ModuleList for architectures the layer finder does not know."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        for name in ("batch_tokens", "max_length", "chunk_size", "top_k", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CollectConfig.{name} must be positive, got {getattr(self, name)}")
        if self.first_n < 0 or self.onset_n < 0:
            raise ValueError("CollectConfig.first_n and onset_n must be >= 0")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"CollectConfig.max_tokens must be positive or None, got {self.max_tokens}")
        self.metadata_fields = tuple(self.metadata_fields)

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        d = dataclasses.asdict(self)
        d["onset_rule"] = self.onset_rule.to_dict()
        d["metadata_fields"] = list(self.metadata_fields)
        for volatile in ("progress", "checkpoint_every", "max_tokens"):
            d.pop(volatile)
        return d
