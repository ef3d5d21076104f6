"""``interp-sot analyze``: regression, mediation tables and a plot from a steering sweep (and control features).

Input: a sweep table (CSV, Parquet or JSONL), one row per problem × strength, with columns ``problem_id``,
``strength``, ``correct`` (0/1 or bool), ``trace_len`` (tokens) and any numeric behaviour or diversity columns
(e.g. ``verification``, ``backtracking``, ``subgoal_setting``, ``backward_chaining``, ``personality_coverage``).
Optionally a control-feature table (``--controls``): one row per (feature, problem) run with ``problem_id``,
``conversational`` (0/1), ``correct`` and ``trace_len``.

The work is :func:`interp_sot.stages.conclude.conclude_analysis`: the ``analyze`` stage, then the ``report`` stage
rendering it. Output (``--out``): ``accuracy_by_strength.csv``, ``regression.csv`` (every outcome on strength
indicators vs the baseline, problem FE, log trace length, SEs clustered by problem), ``mediation.csv`` (baseline ->
treated through ``--mediators``, raw and standardised scales), ``controls_regression.csv`` (with ``--controls``),
each run's descriptive tables, ``analysis.png`` and ``summary.json``; ``report/summary.md`` (the sweep's report, or
the controls' without a sweep) and, with both, ``controls_report/summary.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from interp_sot.analysis.sweep_table import read_table
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.analyze_config import AnalyzeConfig

__all__ = ["add_parser", "read_table", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="regression / mediation tables and a plot from a steering sweep")
    p.add_argument("--sweep", default=None,
                   help="a steer run directory, its traces table, or any table (.csv, .parquet, .jsonl); see module "
                   "doc (leave it out to analyse --controls alone)")
    p.add_argument("--controls", default=None,
                   help="optional: a controls run directory or a control-feature table (conversational vs not)")
    p.add_argument("--screen", default=None,
                   help="screen run (or its table): feature sets of the diversity outcome (needs `interp-sot measure`)")
    p.add_argument("--out", default="runs/analyze", help="output directory")
    add_flags(p.add_argument_group("the analysis (stages.analyze_config.AnalyzeConfig)"), AnalyzeConfig,
              help={"mediators": "Write --mediators none to skip it.", "behaviours": "Comma-separated.",
                    "bootstrap": "0: delta method only."})
    p.add_argument("--drop-missing", dest="missing", action="store_const", const="drop", help="= --missing drop")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interp_sot.errors import FlagError
    from interp_sot.stages.conclude import conclude_analysis
    from interp_sot.stages.report import ReportConfig

    if args.sweep is None and args.controls is None:
        raise FlagError("give --sweep (a steer run or sweep table), --controls, or both")
    config = from_flags(AnalyzeConfig, args, mediators=() if args.mediators == ("none",) else args.mediators)
    out = Path(args.out)
    reports: dict[Any, Path] = {"sweep": out / "report"} if args.sweep is not None else {}
    if args.controls is not None:
        reports["controls"] = out / ("controls_report" if args.sweep is not None else "report")
    done = conclude_analysis(args.sweep, analyze=config, report=ReportConfig(plot=config.plot),
                             controls=args.controls, screen=args.screen, analysis_out=out, report_out=reports)
    result = done.analysis
    reg = result.regression
    if len(result.accuracy):
        print(result.accuracy.to_string(index=False))
    if len(reg):
        print(reg[reg["term"].str.startswith("s=")].to_string(index=False))
    if result.mediation is not None:
        med = result.mediation
        print(med[med["effect"].isin(["indirect_total", "direct", "total"])].to_string(index=False))
    if result.controls is not None:
        print(result.controls.to_string(index=False))
    for files in done.reports.values():
        print(f"report: {files.summary}")
    return 0
