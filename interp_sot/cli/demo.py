"""``interp-sot demo``: the main job. Statistics -> screen -> pick -> steer -> controls -> analysis -> report,
offline, on SmolLM2-135M-Instruct with the shipped SAE and screening corpus, in one run directory.

Rerunning the same command resumes an interrupted run. Every flag is a field of
:class:`interp_sot.demo.DemoConfig` (its docstring is the flag's help); see :mod:`interp_sot.demo` for the stages.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_parser(subparsers: Any) -> None:
    from interp_sot.demo.config import DemoConfig
    from interp_sot.flags import add_flags
    from interp_sot.tasks.countdown.presets import PRESETS

    p = subparsers.add_parser("demo", help="the full pipeline offline on SmolLM2: screen, pick, steer, controls, "
                              "report")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    add_flags(p, DemoConfig, choices={"task": sorted(PRESETS)})
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.demo import DemoConfig, run_demo
    from interp_sot.flags import from_flags

    cfg = from_flags(DemoConfig, args)
    start = time.perf_counter()
    result = run_demo(cfg, args.out)
    print(result.report.read_text())
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; report: {result.report}"
          + (f", figure: {result.figure}" if result.figure else ""))
    return 0
