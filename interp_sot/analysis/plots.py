"""Every PNG of a run: the report's (accuracy, behaviour rates, control groups) and the analyze stage's
accuracy + effect plot; both draw accuracy with :func:`draw_accuracy` (the demo's figure too).

matplotlib is imported here only (the ``plot`` extra), through its object API so no global backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from interp_sot.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_LINES = 8
"""Behaviour panels are drawn only for sweeps over at most this many features."""


def draw_accuracy(ax: Axes, acc: pd.DataFrame, *, low: str = "ci_low", high: str = "ci_high", percent: bool = False,
                  label: str | None = None) -> None:
    """Accuracy against strength with its interval as error bars (``acc``: strength, accuracy, low, high)."""
    part = acc.sort_values("strength")
    scale = 100.0 if percent else 1.0
    y = scale * part["accuracy"]
    # clipped at 0: a Wilson bound of k = 0 can come out a rounding error above the accuracy itself
    err = [(y - scale * part[low]).clip(lower=0), (scale * part[high] - y).clip(lower=0)]
    ax.errorbar(part["strength"], y, yerr=err, marker="o", capsize=3, label=label)


def plot_report(acc: pd.DataFrame, beh: pd.DataFrame | None, groups: pd.DataFrame | None, path: str | Path) -> Path:
    """The report's figure from the analyze stage's tables: accuracy per strength (Wilson) and the behaviour rates
    of a sweep, or one bar per control group of a control run (``groups``)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'interp-sot[plot]'") from err

    if groups is not None:  # control runs: one bar per group (per-feature lines would be hundreds of points)
        panels = ["controls"]
    else:
        panels = ["accuracy"]
        if beh is not None and len(beh) and acc["feature"].nunique() <= MAX_LINES:
            panels += [m for m in ("heuristic", "llm_judge") if (beh["method"] == m).any()]
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "accuracy":
            for feature, part in acc.groupby("feature", sort=True):
                draw_accuracy(ax, part, low="wilson_low", high="wilson_high", percent=True, label=f"feature {feature}")
            ax.set_xlabel("steering strength s")
            ax.set_ylabel("accuracy (%)")
            ax.set_title("Countdown accuracy (95% Wilson CI)")
            ax.legend(fontsize=8)
        elif panel in ("heuristic", "llm_judge"):
            assert beh is not None
            part_b = beh[beh["method"] == panel]
            several = part_b["feature"].nunique() > 1
            for (behaviour, feature), part in part_b.groupby(["behaviour", "feature"], sort=True):
                part = part.sort_values("strength")
                name = str(behaviour).split(".", 1)[1] + (f" ({feature})" if several else "")
                ax.plot(part["strength"], part["mean"], marker=".", label=name)
            ax.set_xlabel("steering strength s")
            if panel == "heuristic":
                ax.set_ylabel("occurrences per 1,000 words")
                ax.set_title("Marker rates (HEURISTIC)")
            else:
                ax.set_ylabel("count per trace")
                ax.set_title("Behaviours coded by the LLM judge")
            ax.legend(fontsize=6, ncol=2)
        else:
            assert groups is not None
            g = groups
            pct = 100 * g["accuracy"]
            ax.bar(g["group"].astype(str), pct, yerr=[pct - 100 * g["wilson_low"], 100 * g["wilson_high"] - pct],
                   capsize=4, color="tab:gray")
            ax.set_ylabel("accuracy (%)")
            ax.set_title("Control features (95% Wilson CI)")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out


def plot_analysis(acc: pd.DataFrame, reg: pd.DataFrame, treated_term: str, path: Path) -> Path:
    """Accuracy by strength (left) and each outcome's treated-vs-baseline coefficient with its CI (right)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    draw_accuracy(ax1, acc)
    ax1.set(xlabel="steering strength", ylabel="accuracy", title="Accuracy by strength (95% Wilson CI)")
    rows = reg[reg["term"] == treated_term] if len(reg) else reg
    if len(rows):
        y = list(range(len(rows)))
        ax2.errorbar(rows["coef"], y, xerr=[rows["coef"] - rows["ci_low"], rows["ci_high"] - rows["coef"]], fmt="o",
                     capsize=3)
        ax2.set_yticks(y, rows["outcome"].tolist())
        ax2.axvline(0, color="grey", lw=0.8)
    ax2.set(xlabel=f"effect of {treated_term} vs baseline (95% CI)", title="Problem-FE regressions")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
