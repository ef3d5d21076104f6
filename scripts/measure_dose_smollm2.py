"""Measure the dose finder once on SmolLM2: the largest coherent strength of feature 1107 at layer 15.

Issue 12's target: with the default tolerance (0.25 nats/token) the limit lies between 0.1 and 0.35 of the
median residual norm. Run (a few minutes on one core; other jobs share the machine):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_dose_smollm2.py --out runs/dose_smollm2

Writes dose.json, dose_traces.jsonl and dose.png into --out and prints the coherent range.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/dose_smollm2")
    ap.add_argument("--feature", type=int, default=1107)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--n-prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--tolerance", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from interp_sot.data import embedded_sae_path
    from interp_sot.experiments.dose import DoseConfig, auto_strengths, find_dose
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.steering import median_residual_norm
    from interp_sot.steering.strength_units import strength_scale
    from interp_sot.tasks.countdown import generate_problems
    from interp_sot.tasks.countdown.prompts import build_prompt

    t0 = time.perf_counter()
    model, tok = load_model("smollm2")
    sae = load_sae(embedded_sae_path(), dtype="float32")
    problems = generate_problems(args.n_prompts, seed=args.seed)
    prompts = [build_prompt(p, "chat", tok) for p in problems]
    r = median_residual_norm(model, tok, prompts, args.layer)
    scale = strength_scale(sae, args.feature, "resid", residual_norm=r)
    cfg = DoseConfig(layer=args.layer, tolerance=args.tolerance, max_new_tokens=args.max_new_tokens,
                     batch_size=args.batch_size, seed=args.seed)
    with torch.no_grad():
        dose = find_dose(model, tok, prompts, scale, cfg, out_dir=args.out)
    elapsed = time.perf_counter() - t0

    sae_scale = strength_scale(sae, args.feature, "sae", residual_norm=r)
    print(f"median residual norm at layer {args.layer}: {r:.2f}; |W_dec[{args.feature}]| = {sae_scale.unit_norm:.3f}")
    print(f"{'ratio':>7} {'logprob':>8} {'sem':>6} {'drop':>6} {'degen':>6}")
    for row in dose.table:
        print(f"{row['ratio']:7.2f} {row['mean_logprob']:8.3f} {row['sem']:6.3f} {row['drop']:6.3f} "
              f"{row['degenerate_share']:6.2f}")
    print(f"coherent range (tolerance {dose.tolerance} nats/token): "
          f"-{dose.negative_ratio:.3f} .. +{dose.positive_ratio:.3f} of the median residual norm "
          f"(unit-norm strengths {-dose.negative_ratio * r:.1f} .. {dose.positive_ratio * r:.1f})")
    print(f"auto:5 strengths (resid units): {auto_strengths(dose, 5)}")
    print(f"{dose.n_prompts} prompts x {len(dose.table)} strengths x {args.max_new_tokens} tokens "
          f"in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
