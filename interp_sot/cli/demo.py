"""``interp-sot demo``: the main job. Statistics -> screen -> pick -> steer -> controls -> analysis -> report,
offline, on SmolLM2-135M-Instruct with the shipped SAE and screening corpus, in one run directory.

Rerunning the same command resumes an interrupted run. See :mod:`interp_sot.demo` for the stages and
:class:`interp_sot.demo.DemoConfig` for every setting.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    from interp_sot.demo.config import DemoConfig
    from interp_sot.tasks.countdown.presets import PRESETS

    d = DemoConfig()
    p = subparsers.add_parser("demo", help="the full pipeline offline on SmolLM2: screen, pick, steer, controls, report")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--model", default=d.model, help="'smollm2' (offline), a folder or a hub id")
    p.add_argument("--sae", default=None, help="SAE folder (default: the shipped SmolLM2 layer-15 TopK SAE)")
    p.add_argument("--layer", type=int, default=d.layer)
    p.add_argument("--corpus", default=None, help="screening corpus .jsonl(.gz) with text + conversational")
    p.add_argument("--judge", default=d.judge, help="'labels' (document labels), 'heuristic' or a judge spec")
    p.add_argument("--strengths", default=None,
                   help="comma-separated strengths as shares of the median residual norm, inside the coherent range "
                   "(write --strengths=-0.1,...); default: --n-strengths spread over the range the dose stage finds")
    p.add_argument("--n-strengths", type=int, default=d.n_strengths)
    p.add_argument("--tolerance", type=float, default=d.tolerance,
                   help="coherence tolerance of the dose stage (nats/token)")
    p.add_argument("--control-mode", choices=["matched", "max_act"], default=d.control_mode,
                   help="controls at the picked feature's added norms (matched) or at 2 x max activation (max_act)")
    p.add_argument("--task", choices=sorted(PRESETS), default=d.task,
                   help="task preset: 'arith2' (calibrated for SmolLM2) or 'paper' (the paper's Countdown)")
    p.add_argument("--n-problems", type=int, default=d.n_problems, help="evaluation problems")
    p.add_argument("--dose-prompts", type=int, default=d.dose_prompts,
                   help="held-out problems the dose stage tunes the strengths on (disjoint from the evaluation)")
    p.add_argument("--no-prompted", action="store_true", help="skip the prompting arm")
    p.add_argument("--prompted-instruction", default=None, metavar="FILE",
                   help="the prompting arm's question template ({problem} placeholder; default: the shipped "
                   "interp_sot/data/prompts/society_of_thought.txt)")
    p.add_argument("--mediator", default=d.mediator,
                   help="pre-registered mediator of strength -> accuracy (a run-table column)")
    p.add_argument("--n-controls", type=int, default=d.n_controls, help="control features per group")
    p.add_argument("--control-problems", type=int, default=d.control_problems, help="problems per control feature")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--min-contexts", type=int, default=d.min_contexts)
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.cli.common import parse_floats
    from interp_sot.demo import DemoConfig, run_demo

    cfg = DemoConfig(model=args.model, sae=args.sae, layer=args.layer, corpus=args.corpus, judge=args.judge,
                     strengths=tuple(parse_floats(args.strengths, "--strengths")) if args.strengths else None,
                     n_strengths=args.n_strengths, tolerance=args.tolerance, control_mode=args.control_mode,
                     n_problems=args.n_problems, task=args.task, dose_prompts=args.dose_prompts,
                     prompted=not args.no_prompted, prompted_instruction=args.prompted_instruction,
                     mediator=args.mediator,
                     n_controls=args.n_controls, control_problems=args.control_problems,
                     max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, min_contexts=args.min_contexts,
                     seed=args.seed)
    start = time.perf_counter()
    result = run_demo(cfg, args.out)
    print(result.report.read_text())
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; report: {result.report}"
          + (f", figure: {result.figure}" if result.figure else ""))
    return 0
