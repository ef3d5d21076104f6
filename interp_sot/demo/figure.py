"""``demo.png``: the pipeline on one page: screening, behaviour and accuracy under steering, and the controls."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interp_sot.analysis.plots import draw_accuracy
from interp_sot.io import atomic_path
from interp_sot.screening.pick import Pick


def top_markers(behaviours: pd.DataFrame, n: int = 4) -> list[str]:
    """Markers whose mean moves furthest from its unsteered (s = 0) value at any strength; never-seen ones last."""
    m = behaviours[behaviours["behaviour"].str.startswith("markers.")]
    if m.empty:
        return []
    wide = m.pivot_table(index="behaviour", columns="strength", values="mean")
    base = wide[0.0] if 0.0 in wide.columns else wide.mean(axis=1)
    moved = wide.sub(base, axis=0).abs().max(axis=1)
    seen = wide.max(axis=1)
    return pd.DataFrame({"moved": moved, "seen": seen}).sort_values(["moved", "seen"], ascending=False) \
        .head(n).index.tolist()


def plot_demo(table: pd.DataFrame, pick: Pick, accuracy: pd.DataFrame, behaviours: pd.DataFrame,
              controls: pd.DataFrame, min_contexts: int, path: Path, *, graded: pd.DataFrame | None = None,
              prompted: pd.DataFrame | None = None) -> Path:
    """Four panels; ``behaviours`` is the steer report's long table, ``controls`` the control regressions.

    ``graded``: graded outcomes by strength (``findings.graded_by_strength``); when given, panel 2 shows them instead
    of the markers (a task whose text holds no markers would show flat zeros). ``prompted``: the prompting arm's
    graded table (one row), drawn as dashed levels in panels 2 and 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    shown = table[table["n_contexts"] >= min_contexts]
    passing = shown["passes_filter"].astype(bool)
    ax.scatter(shown.loc[~passing, "conversation_ratio"], shown.loc[~passing, "onset_share"], s=4, c="0.7",
               label=f"features with >= {min_contexts} contexts")
    ax.scatter(shown.loc[passing, "conversation_ratio"], shown.loc[passing, "onset_share"], s=6, c="tab:blue",
               label="pass the filter")
    ax.scatter([pick.conversation_ratio], [pick.position_share], marker="*", s=250, c="tab:red",
               label=f"picked: feature {pick.feature}")
    ax.axvline(0.5, c="0.4", lw=0.6, ls="--")
    ax.axhline(0.5, c="0.4", lw=0.6, ls="--")
    ax.set(xlabel="conversation ratio (top contexts in conversational documents)",
           ylabel="share of firings at a sentence/turn onset", title="1. Screening all features")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[0, 1]
    if graded is not None and len(graded):
        for col, colour in (("answer_found", "tab:blue"), ("valid_expression", "tab:green")):
            ax.plot(graded["strength"], graded[col], marker="o", c=colour, label=col.replace("_", " "))
            if prompted is not None and len(prompted):
                ax.axhline(float(prompted[col].iloc[0]), c=colour, ls="--", lw=1, label=f"prompted: {col}")
        ax.set(xlabel="steering strength", ylabel="share of traces", ylim=(-0.02, 1.02),
               title=f"2. Graded outcomes when steering feature {pick.feature}")
    else:
        for name in top_markers(behaviours):
            b = behaviours[behaviours["behaviour"] == name].sort_values("strength")
            ax.errorbar(b["strength"], b["mean"], yerr=[b["mean"] - b["low"], b["high"] - b["mean"]], marker="o",
                        capsize=3, label=name.removeprefix("markers."))
        ax.set(xlabel="steering strength", ylabel="per 1k words (95% problem-bootstrap CI)",
               title=f"2. Behaviour markers when steering feature {pick.feature}")
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    draw_accuracy(ax, accuracy)
    if prompted is not None and len(prompted) and "accuracy" in prompted.columns:
        ax.axhline(float(prompted["accuracy"].iloc[0]), c="tab:purple", ls="--", lw=1, label="prompted arm")
        ax.legend(fontsize=8)
    ax.set(xlabel="steering strength", ylabel="Countdown accuracy (95% Wilson CI)", ylim=(-0.02, 1),
           title="3. Accuracy under steering")

    ax = axes[1, 1]
    rows = controls[controls["term"] == "conversational"] if len(controls) else controls
    if len(rows):
        y = list(range(len(rows)))
        ax.errorbar(rows["coef"], y, xerr=[rows["coef"] - rows["ci_low"], rows["ci_high"] - rows["coef"]], fmt="o",
                    capsize=3)
        ax.set_yticks(y, [o.removeprefix("markers.") for o in rows["outcome"]])
        ax.axvline(0, c="0.4", lw=0.6)
    else:
        ax.text(0.5, 0.5, "no outcome could be estimated\n(see report.md)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set(xlabel="conversational - non-conversational controls (95% CI, problem FE)",
           title="4. Random control features")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
