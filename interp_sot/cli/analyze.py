"""``interp-sot analyze``: regression, mediation tables and a plot from a steering sweep (and control features).

Input: a sweep table (CSV, Parquet or JSONL), one row per problem × strength, with columns ``problem_id``,
``strength``, ``correct`` (0/1 or bool), ``trace_len`` (tokens) and any numeric behaviour or diversity columns
(e.g. ``verification``, ``backtracking``, ``subgoal_setting``, ``backward_chaining``, ``personality_coverage``).
Optionally a control-feature table (``--controls``): one row per (feature, problem) run with ``problem_id``,
``conversational`` (0/1), ``correct`` and ``trace_len``.

The work is :func:`interp_sot.stages.analyze.analyze_stage`. Output (``--out``): ``accuracy_by_strength.csv``, ``regression.csv`` (every outcome on strength indicators vs
the baseline, problem FE, log trace length, SEs clustered by problem), ``mediation.csv`` (baseline -> treated
through ``--mediators``, raw and standardised scales), ``controls_regression.csv`` (with ``--controls``),
``analysis.png`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from interp_sot.analysis.sweep_table import COGNITIVE_BEHAVIOURS, read_table

__all__ = ["add_parser", "read_table", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="regression / mediation tables and a plot from a steering sweep")
    p.add_argument("--sweep", required=True,
                   help="a steer run directory, its traces table, or any table (.csv, .parquet, .jsonl); see module doc")
    p.add_argument("--controls", default=None,
                   help="optional: a controls run directory or a control-feature table (conversational vs not)")
    p.add_argument("--screen", default=None,
                   help="screen run (or its table): feature sets of the diversity outcome (needs `interp-sot measure`)")
    p.add_argument("--out", default="runs/analyze", help="output directory")
    p.add_argument("--baseline", type=float, default=0.0, help="reference strength (default 0)")
    p.add_argument("--treated", type=float, default=10.0, help="strength contrasted in the mediation (default 10)")
    p.add_argument(
        "--behaviours",
        default=None,
        help="comma-separated outcome columns besides 'correct'; default: every other numeric column",
    )
    p.add_argument(
        "--mediators",
        default=None,
        help="comma-separated mediators; default: the cognitive behaviours present "
        f"({', '.join(COGNITIVE_BEHAVIOURS)}); 'none' skips the mediation",
    )
    p.add_argument("--cluster", default=None, help="cluster column for SEs (default: problem_id)")
    p.add_argument("--bootstrap", type=int, default=2000, help="cluster-bootstrap replicates (0: delta method only)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-length-control", action="store_true", help="omit the log(trace_len) control")
    p.add_argument("--drop-missing", action="store_true", help="drop rows with missing values instead of failing")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.set_defaults(run=run)


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def run(args: argparse.Namespace) -> int:
    from interp_sot.stages.analyze import AnalyzeConfig, analyze_stage

    mediators = _split(args.mediators)
    config = AnalyzeConfig(
        baseline=args.baseline, treated=args.treated, behaviours=_split(args.behaviours),
        mediators=() if mediators == ("none",) else mediators, cluster=args.cluster, bootstrap=args.bootstrap,
        seed=args.seed, length_control=not args.no_length_control, missing="drop" if args.drop_missing else "error",
        plot=not args.no_plot,
    )
    result = analyze_stage(args.sweep, config, args.out, controls=args.controls, screen=args.screen)
    print(result.accuracy.to_string(index=False))
    reg = result.regression
    if len(reg):
        print(reg[reg["term"].str.startswith("s=")].to_string(index=False))
    if result.mediation is not None:
        med = result.mediation
        print(med[med["effect"].isin(["indirect_total", "direct", "total"])].to_string(index=False))
    if result.controls is not None:
        print(result.controls.to_string(index=False))
    return 0
