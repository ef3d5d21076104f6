"""``interp-sot analyze``: regression, mediation tables and a plot from a steering sweep (and control features).

Input: a sweep table (CSV, Parquet or JSONL), one row per problem × strength, with columns ``problem_id``,
``strength``, ``correct`` (0/1 or bool), ``trace_len`` (tokens) and any numeric behaviour or diversity columns
(e.g. ``verification``, ``backtracking``, ``subgoal_setting``, ``backward_chaining``, ``personality_coverage``).
Optionally a control-feature table (``--controls``): one row per (feature, problem) run with ``problem_id``,
``conversational`` (0/1), ``correct`` and ``trace_len``.

Output (``--out``): ``accuracy_by_strength.csv``, ``regression.csv`` (every outcome on strength indicators vs
the baseline, problem FE, log trace length, SEs clustered by problem), ``mediation.csv`` (baseline -> treated
through ``--mediators``, raw and standardised scales), ``controls_regression.csv`` (with ``--controls``),
``analysis.png`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from interp_sot.analysis.sweep_table import COGNITIVE

logger = logging.getLogger(__name__)

RESERVED = ("problem_id", "strength", "correct", "trace_len", "trace_id", "feature_id", "seed", "task_id")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="regression / mediation tables and a plot from a steering sweep")
    p.add_argument("--sweep", required=True,
                   help="a steer run directory, its traces table, or any table (.csv, .parquet, .jsonl); see module doc")
    p.add_argument("--controls", default=None,
                   help="optional: a controls run directory or a control-feature table (conversational vs not)")
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
        f"({', '.join(COGNITIVE)}); 'none' skips the mediation",
    )
    p.add_argument("--cluster", default=None, help="cluster column for SEs (default: problem_id)")
    p.add_argument("--bootstrap", type=int, default=2000, help="cluster-bootstrap replicates (0: delta method only)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-length-control", action="store_true", help="omit the log(trace_len) control")
    p.add_argument("--drop-missing", action="store_true", help="drop rows with missing values instead of failing")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.set_defaults(run=run)


def read_table(path: str | Path) -> Any:
    """A table from .csv / .parquet / .jsonl (by extension)."""
    import pandas as pd

    from interp_sot.io import read_jsonl

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        return pd.DataFrame(read_jsonl(path))
    raise ValueError(f"{path}: unsupported table format {suffix!r}; use .csv, .parquet or .jsonl")


def _csv(df: Any, path: Path) -> None:
    from interp_sot.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from interp_sot.analysis.mediation import MediationConfig
    from interp_sot.analysis.regression import fe_ols
    from interp_sot.analysis.steering_effects import (
        SweepColumns,
        accuracy_by_strength,
        strength_label,
        strength_mediation,
        strength_regressions,
    )
    from interp_sot.analysis.sweep_table import is_sweep_traces, resolve_run_path, to_analysis_schema
    from interp_sot.io import atomic_write_json

    out = Path(args.out)
    cols = SweepColumns(cluster=args.cluster)
    missing = "drop" if args.drop_missing else "error"
    sweep, outcomes = to_analysis_schema(read_table(resolve_run_path(args.sweep)))
    behaviours = _split(args.behaviours)
    if behaviours is None and is_sweep_traces(sweep):
        behaviours = outcomes  # a steer run: its marker and judge columns, not its bookkeeping numbers
    elif behaviours is None:
        behaviours = [
            c
            for c in sweep.columns
            if c not in RESERVED and c != args.cluster and pd.api.types.is_numeric_dtype(sweep[c])
        ]
    mediators = _split(args.mediators)
    if mediators is None:
        mediators = [c for c in COGNITIVE if c in sweep.columns and sweep[c].notna().any()]
    elif mediators == ["none"]:
        mediators = []

    files: dict[str, str] = {}
    acc = accuracy_by_strength(sweep, cols)
    _csv(acc, out / "accuracy_by_strength.csv")
    files["accuracy"] = "accuracy_by_strength.csv"
    reg = strength_regressions(
        sweep,
        ["correct", *behaviours],
        cols=cols,
        baseline=args.baseline,
        length_control=not args.no_length_control,
        missing=missing,
    )
    _csv(reg, out / "regression.csv")
    files["regression"] = "regression.csv"
    print(acc.to_string(index=False))
    print(reg[reg["term"].str.startswith("s=")].to_string(index=False))

    if mediators:
        tabs = []
        for scale in ("raw", "std_all", "std_nox"):
            cfg = MediationConfig(n_boot=args.bootstrap, seed=args.seed, scale=scale)
            tabs.append(
                strength_mediation(
                    sweep,
                    mediators,
                    cols=cols,
                    baseline=args.baseline,
                    treated=args.treated,
                    length_control=not args.no_length_control,
                    config=cfg,
                    missing=missing,
                )
            )
        med = pd.concat(tabs, ignore_index=True)
        _csv(med, out / "mediation.csv")
        files["mediation"] = "mediation.csv"
        print(med[med["effect"].isin(["indirect_total", "direct", "total"])].to_string(index=False))
    else:
        logger.info("no mediators: skipping the mediation")

    if args.controls:
        ctrl = to_analysis_schema(read_table(resolve_run_path(args.controls))).frame
        ctrl_cols = [c for c in ("conversational", "trace_len") if c not in ctrl.columns]
        if ctrl_cols:
            raise ValueError(f"{args.controls}: control table lacks column(s) {ctrl_cols}")
        trace_len = pd.to_numeric(ctrl["trace_len"], errors="coerce")
        if (trace_len <= 0).any():
            raise ValueError(f"{args.controls}: trace_len must be > 0 to take its log")
        ctrl = ctrl.assign(log_trace_len=np.log(trace_len))
        controls = [] if args.no_length_control else ["log_trace_len"]
        tab = fe_ols(
            ctrl, "correct", "conversational", "problem_id", cols.cluster_col, controls=controls, missing=missing
        )
        _csv(tab, out / "controls_regression.csv")
        files["controls_regression"] = "controls_regression.csv"
        print(tab.to_string(index=False))

    if not args.no_plot:
        _plot(acc, reg, strength_label(args.treated), out / "analysis.png")
        files["plot"] = "analysis.png"
    atomic_write_json(
        out / "summary.json",
        {
            "sweep": str(args.sweep),
            "controls": args.controls,
            "rows": len(sweep),
            "baseline": args.baseline,
            "treated": args.treated,
            "outcomes": ["correct", *behaviours],
            "mediators": mediators,
            "bootstrap": args.bootstrap,
            "seed": args.seed,
            "length_control": not args.no_length_control,
            "cluster": cols.cluster_col,
            "files": files,
        },
    )
    logger.info("wrote %s to %s", ", ".join(files.values()), out)
    return 0


def _plot(acc: Any, reg: Any, treated_term: str, path: Path) -> None:
    """Accuracy by strength (left) and each outcome's treated-vs-baseline coefficient with its CI (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp_sot.io import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    yerr = [acc["accuracy"] - acc["ci_low"], acc["ci_high"] - acc["accuracy"]]
    ax1.errorbar(acc["strength"], acc["accuracy"], yerr=yerr, marker="o", capsize=3)
    ax1.set(xlabel="steering strength", ylabel="accuracy", title="Accuracy by strength (95% Wilson CI)")
    rows = reg[reg["term"] == treated_term]
    if len(rows):
        y = range(len(rows))
        ax2.errorbar(
            rows["coef"],
            list(y),
            xerr=[rows["coef"] - rows["ci_low"], rows["ci_high"] - rows["coef"]],
            fmt="o",
            capsize=3,
        )
        ax2.set_yticks(list(y), rows["outcome"].tolist())
        ax2.axvline(0, color="grey", lw=0.8)
    ax2.set(xlabel=f"effect of {treated_term} vs baseline (95% CI)", title="Problem-FE regressions")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
