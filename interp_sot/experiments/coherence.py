"""Coherence guard: how plausible the UNSTEERED model finds a steered trace, and whether it is degenerate text.

Steering too hard makes a model write ``<<<<<<<<`` or loop, after which accuracy is 0 and no behavioural effect
can be measured. Two per-trace signals catch that:

- ``mean_logprob``: the unsteered model's mean log-probability (nats/token) of the generated tokens given the
  prompt, one teacher-forced forward pass over prompt + completion. Fluent text scores around −0.5 to −1 on
  SmolLM2; broken text falls far below. The unsteered model is the judge because the steered one assigns high
  probability to its own degenerate text.
- ``degenerate``: a text-level flag, True when either share exceeds its threshold:
  ``repeat_share`` = share of the completion's word/symbol n-grams that repeat an earlier n-gram of the same
  completion (units: ``\\w+`` runs and single non-space symbols, so ``<<<<`` is four units), catching loops and
  symbol runs; ``symbol_share`` = share of those units that are symbols rather than words, catching symbol soup.
  Short texts (fewer than ``min_units`` units) are never flagged.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from interp_sot.activations import shared_prefix_forward, shared_prefix_length
from interp_sot.protocols import decode_text

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer

_UNITS = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class CoherenceConfig:
    """How traces are scored and when their text counts as degenerate."""

    batch_size: int = 8
    """Traces per teacher-forced forward pass (peak memory ~ batch_size × length × vocab floats)."""
    ngram: int = 4
    """n of the repeated n-gram share (in word/symbol units)."""
    max_repeat_share: float = 0.5
    """Degenerate when more than this share of the n-grams repeat an earlier one."""
    max_symbol_share: float = 0.6
    """Degenerate when more than this share of the units are symbols (arithmetic keeps well below it)."""
    min_units: int = 8
    """Texts with fewer word/symbol units are too short to judge and are never flagged."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        for name in ("max_repeat_share", "max_symbol_share"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        if self.min_units < self.ngram:
            raise ValueError(f"min_units ({self.min_units}) must be >= ngram ({self.ngram})")


class TextShares(NamedTuple):
    """Degenerate-text signals of one completion."""

    repeat_share: float
    symbol_share: float
    degenerate: bool


class Coherence(NamedTuple):
    """Coherence of one trace."""

    mean_logprob: float
    """Unsteered model's mean log-prob (nats/token) of the generated tokens; NaN for an empty completion."""
    n_tokens: int
    repeat_share: float
    symbol_share: float
    degenerate: bool


def text_shares(text: str, config: CoherenceConfig | None = None) -> TextShares:
    """Repeated n-gram share and symbol share of ``text`` and the degenerate flag (module docstring)."""
    cfg = config or CoherenceConfig()
    units = _UNITS.findall(text)
    if not units:
        return TextShares(0.0, 0.0, False)
    symbols = sum(1 for u in units if not (u[0].isalnum() or u[0] == "_"))
    symbol_share = symbols / len(units)
    grams = [tuple(units[i : i + cfg.ngram]) for i in range(len(units) - cfg.ngram + 1)]
    repeat_share = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    degenerate = len(units) >= cfg.min_units and (
        repeat_share > cfg.max_repeat_share or symbol_share > cfg.max_symbol_share
    )
    return TextShares(repeat_share, symbol_share, degenerate)


def _as_id_lists(seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor], what: str) -> list[list[int]]:
    out = []
    for i, s in enumerate(seqs):
        ids = s.tolist() if isinstance(s, torch.Tensor) else list(s)
        if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in ids):
            raise ValueError(f"{what}[{i}] must hold integer token ids")
        out.append([int(t) for t in ids])
    return out


@torch.no_grad()
def completion_logprobs(
    model: CausalLM | torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    completion_ids: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    *,
    batch_size: int = 8,
    min_shared_prefix: int = 32,
) -> list[np.ndarray]:
    """Per-token log-probs [n_i] (float64) of each completion given its prompt, under ``model`` as it is.

    Prompts and completions are unpadded id lists (strip a generate batch's left padding first, e.g. with
    :func:`split_generated`). Each prompt + completion is right-padded into a batch (:func:`right_padded`), so
    the scores equal one forward pass per trace (up to float rounding). A prefix of at least ``min_shared_prefix``
    tokens that every prompt of a batch shares (few-shot examples) is run once for the batch
    (:func:`interp_sot.activations.shared_prefix_forward`).
    Run it outside any steering context: the guard's judge is the unsteered model.
    """
    prompts = _as_id_lists(prompt_ids, "prompt_ids")
    completions = _as_id_lists(completion_ids, "completion_ids")
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token (the first completion token is predicted from it)")
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    results: list[np.ndarray] = [np.empty(0)] * len(prompts)
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
    if limit is not None and max(lengths, default=0) > limit:
        bad = sum(n > limit for n in lengths)
        raise ValueError(f"{bad} prompt + completion pairs exceed the model's context of {limit} tokens")
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        rows = [i for i in order[start : start + batch_size] if completions[i]]
        if not rows:
            continue
        shared = shared_prefix_length([prompts[i] for i in rows], min_shared_prefix)
        logits = shared_prefix_forward(model, prompts[rows[0]][:shared],
                                       [(prompts[i] + completions[i])[shared:] for i in rows])
        for b, i in enumerate(rows):
            p, n = len(prompts[i]) - shared, len(completions[i])
            pred = logits[b, p - 1 : p - 1 + n].float().log_softmax(dim=-1)  # position t predicts token t + 1
            target = torch.tensor(completions[i], device=pred.device).unsqueeze(1)
            results[i] = pred.gather(1, target).squeeze(1).double().cpu().numpy()
    return results


def split_generated(
    output_ids: torch.Tensor, prompt_mask: torch.Tensor, end_ids: Sequence[int]
) -> tuple[list[list[int]], list[list[int]]]:
    """Unpadded (prompt, completion) id lists from a left-padded ``generate`` batch.

    output_ids: [B, T_prompt + T_new] as ``generate`` returns it; prompt_mask: [B, T_prompt] attention mask of
    the prompts. A completion ends at its first end token (EOS or pad), which it keeps: the model chose to stop,
    and that choice is scored like any other token.
    """
    if output_ids.ndim != 2 or prompt_mask.ndim != 2 or output_ids.shape[0] != prompt_mask.shape[0]:
        raise ValueError("output_ids [B, T] and prompt_mask [B, T_prompt] must be 2-D with the same batch size")
    t_prompt = prompt_mask.shape[1]
    ends = set(int(e) for e in end_ids)
    prompts, completions = [], []
    for row, mask in zip(output_ids.tolist(), prompt_mask.bool().tolist(), strict=True):
        prompts.append([t for t, keep in zip(row[:t_prompt], mask, strict=True) if keep])
        new = row[t_prompt:]
        stop = next((k for k, t in enumerate(new) if t in ends), None)
        completions.append(new if stop is None else new[: stop + 1])
    return prompts, completions


def score_traces(
    model: CausalLM | torch.nn.Module,
    tokenizer: Tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    config: CoherenceConfig | None = None,
    *,
    texts: Sequence[str] | None = None,
) -> list[Coherence]:
    """Coherence of each trace: unsteered mean token log-prob plus the degenerate-text flag.

    ``texts``: the completions as text (default: decoded from ``completion_ids`` without special tokens).
    """
    cfg = config or CoherenceConfig()
    lps = completion_logprobs(model, prompt_ids, completion_ids, batch_size=cfg.batch_size)
    if texts is None:
        texts = [decode_text(tokenizer, list(c), skip_special_tokens=True) for c in completion_ids]
    if len(texts) != len(lps):
        raise ValueError(f"{len(texts)} texts for {len(lps)} traces")
    out = []
    for lp, text in zip(lps, texts, strict=True):
        shares = text_shares(text, cfg)
        mean = float(lp.mean()) if lp.size else math.nan
        out.append(Coherence(mean, int(lp.size), *shares))
    return out


def score_texts(
    model: CausalLM | torch.nn.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    config: CoherenceConfig | None = None,
    *,
    add_special_tokens: bool = False,
) -> list[Coherence]:
    """Coherence of stored traces (prompt and completion text, as sweep records keep them).

    The completion is re-tokenised on its own, so its ids may differ slightly from the sampled ones (and an EOS
    the model emitted is not scored). ``add_special_tokens``: as when the prompt was generated (False for chat
    templates, which write BOS themselves: ``tasks.countdown.prompts.adds_special_tokens``).
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    p_ids = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    c_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]
    return score_traces(model, tokenizer, p_ids, c_ids, config, texts=list(completions))
