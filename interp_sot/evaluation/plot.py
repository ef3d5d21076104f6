"""One PNG per metric: its value against steering strength, one line per task, ±1 standard error."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

from interp_sot.evaluation.harness import EvalRow
from interp_sot.io import atomic_path

logger = logging.getLogger(__name__)


def plot_name(metric: str) -> str:
    """File name of a metric's plot (``exact_match/first-number`` -> ``eval_exact_match_first-number.png``)."""
    return "eval_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", metric) + ".png"


def plot_metrics(rows: Sequence[EvalRow], out: Path, units: str) -> list[Path]:
    """Write one plot per metric into ``out``; none (logged) when matplotlib is not installed (the ``plot`` extra)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed: no eval plots (pip install 'interp-sot[plot]')")
        return []
    paths = []
    for metric in sorted({r.metric for r in rows}):
        fig = Figure(figsize=(5.5, 3.6))
        ax = fig.subplots()
        for task in sorted({r.task for r in rows if r.metric == metric}):
            pts = sorted((r.strength, r.value, r.stderr) for r in rows if r.metric == metric and r.task == task)
            xs, ys, es = zip(*pts, strict=True)
            ax.errorbar(xs, ys, yerr=[0.0 if math.isnan(e) else e for e in es], marker="o", capsize=3, label=task)
        ax.set_xlabel(f"steering strength s ({units} units)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / plot_name(metric)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths
