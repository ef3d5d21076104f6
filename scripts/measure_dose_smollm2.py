"""Measure the dose finder once on SmolLM2: the largest coherent strength of feature 1107 at layer 15.

Issue 12's target: with the default tolerance (0.25 nats/token) the limit lies between 0.1 and 0.35 of the
median residual norm. Run (a few minutes on one core; other jobs share the machine):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_dose_smollm2.py --out runs/dose_smollm2

The dose stage (``interp_sot.stages.dose.dose_stage``, what ``interp-sot dose`` runs) writes dose.json,
dose_traces.jsonl and dose.png into --out; the flags are ``DoseConfig``'s fields, with this script's defaults.
"""

from __future__ import annotations

import argparse
import logging
import time

from interp_sot.experiments.dose_config import DoseConfig
from interp_sot.flags import add_flags, from_flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/dose_smollm2")
    ap.add_argument("--feature", type=int, default=1107)
    ap.add_argument("--n-prompts", type=int, default=12)
    add_flags(ap, DoseConfig, exclude=("site", "scope", "add_special_tokens", "coherence"),
              defaults={"layer": 15, "max_new_tokens": 80, "batch_size": 60})
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    from interp_sot.data import embedded_sae_path
    from interp_sot.experiments.dose import auto_strengths
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.stages.dose import dose_stage
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.strengths import run_prompts
    from interp_sot.tasks.countdown import generate_problems

    t0 = time.perf_counter()
    model, tok = load_model("smollm2")
    sae = load_sae(embedded_sae_path(), dtype="float32")
    problems = generate_problems(args.n_prompts, seed=args.seed)
    prompts = run_prompts(problems, "chat", tok, n=None)
    with torch.no_grad():
        dose = dose_stage(model, tok, sae, args.feature, prompts, from_flags(DoseConfig, args), args.out,
                          units="resid", inputs={"model": model_identity("smollm2")}, problems=problems)
    elapsed = time.perf_counter() - t0

    print(f"median residual norm at layer {args.layer}: {dose.residual_norm:.2f}; "
          f"|W_dec[{args.feature}]| = {float(sae.W_dec[args.feature].norm()):.3f}")
    print(f"{'ratio':>7} {'logprob':>8} {'sem':>6} {'drop':>6} {'degen':>6}")
    for row in dose.table:
        print(f"{row['ratio']:7.2f} {row['mean_logprob']:8.3f} {row['sem']:6.3f} {row['drop']:6.3f} "
              f"{row['degenerate_share']:6.2f}")
    r = dose.residual_norm
    print(f"coherent range (tolerance {dose.tolerance} nats/token): "
          f"-{dose.negative_ratio:.3f} .. +{dose.positive_ratio:.3f} of the median residual norm "
          f"(unit-norm strengths {-dose.negative_ratio * r:.1f} .. {dose.positive_ratio * r:.1f})")
    print(f"auto:5 strengths (resid units): {auto_strengths(dose, 5)}")
    print(f"{dose.n_prompts} prompts x {len(dose.table)} strengths x {args.max_new_tokens} tokens in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
