"""The report's PNG: accuracy vs strength (95% Wilson bars), behaviour rates vs strength, control groups.

matplotlib is imported here only (the ``plot`` extra), through its object API so no global backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from interp_sot.io import atomic_path

if TYPE_CHECKING:
    from interp_sot.experiments.report import ControlComparison

MAX_LINES = 8
"""Behaviour panels are drawn only for sweeps over at most this many features."""


def plot_report(acc: pd.DataFrame, beh: pd.DataFrame | None, ctrl: ControlComparison | None, path: str | Path) -> Path:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'interp-sot[plot]'") from err

    if ctrl is not None:  # control runs: one bar per group (per-feature lines would be hundreds of points)
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
                part = part.sort_values("strength")
                y = 100 * part["accuracy"]
                err = [y - 100 * part["wilson_low"], 100 * part["wilson_high"] - y]
                ax.errorbar(part["strength"], y, yerr=err, marker="o", capsize=3, label=f"feature {feature}")
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
                name = behaviour.split(".", 1)[1] + (f" ({feature})" if several else "")
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
            assert ctrl is not None
            g = ctrl.groups
            y = 100 * g["accuracy"]
            err = [y - 100 * g["wilson_low"], 100 * g["wilson_high"] - y]
            ax.bar(g["group"].astype(str), y, yerr=err, capsize=4, color="tab:gray")
            ax.set_ylabel("accuracy (%)")
            ax.set_title("Control features (95% Wilson CI)")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out
