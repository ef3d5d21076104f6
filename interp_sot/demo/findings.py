"""The demo report's measurement sections: the coherent range, coherence by strength, every outcome's estimate
with its interval, p-value and minimal detectable effect, and a plain list of what is and is not significant.

Numbers come from the ``dose`` and ``analyze`` stages' files; this module only words and formats them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from interp_sot.analysis.multiple_testing import add_corrections, significance_summary
from interp_sot.experiments.dose import DoseResult
from interp_sot.io import read_jsonl

if TYPE_CHECKING:
    from interp_sot.demo.config import DemoConfig
    from interp_sot.stages.analyze import AnalyzeResult

ALPHA = 0.05


def markdown_table(frame: pd.DataFrame, floats: str = "{:.3g}") -> str:
    """A markdown table (no tabulate dependency)."""
    if frame.empty:
        return "(none)\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):  # keeps each column's type (iterrows would upcast ids to float)
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dose_section(dose: DoseResult, strengths: list[float]) -> tuple[str, pd.DataFrame]:
    """The coherent range in words and the pre-sweep's table."""
    text = (f"A pre-sweep of {dose.n_prompts} prompts at strengths {[r['strength'] for r in dose.table]} (s = added "
            f"norm / median residual norm {dose.residual_norm:.1f} at the layer) scored every trace with the "
            f"unsteered model's mean token log-prob. A strength is coherent while the mean drops by at most "
            f"{dose.tolerance:g} nats/token against s = 0; walking out from 0, the coherent range is "
            f"**s in [{dose.negative:g}, {dose.positive:g}]**. The sweep uses {strengths}, all inside it "
            "(`dose/dose.png`).\n")
    table = pd.DataFrame(dose.table)[["strength", "mean_logprob", "drop", "degenerate_share", "coherent"]]
    return text, table


def _fmt(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.3g}"


def _verdict(outcome: str, term: str, row: pd.Series) -> str:
    est = (f"`{outcome}` {term}: {_fmt(row['coef'])} (95% CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}, "
           f"p = {_fmt(row['p'])}, Holm p = {_fmt(row['p_holm'])}, BH q = {_fmt(row['q_bh'])}")
    if math.isfinite(row["p_holm"]) and row["p_holm"] < ALPHA:
        return f"- **significant after Holm's correction** at α = {ALPHA}: {est})"
    if math.isfinite(row["q_bh"]) and row["q_bh"] < ALPHA:
        return f"- **significant at BH q < {ALPHA}** (not after Holm): {est})"
    if math.isfinite(row["p"]) and row["p"] < ALPHA:
        return f"- significant only without correction (p < {ALPHA}): {est})"
    mde = row.get("mde", math.nan)
    return f"- not significant: {est}; the smallest effect this run detects with 80% power is ±{_fmt(mde)})"


def outcome_rows(analysis: AnalyzeResult, strengths: list[float], diversity: pd.DataFrame | None) -> pd.DataFrame:
    """Every pre-registered contrast in one table: each outcome at each non-zero strength vs 0, the diversity
    slopes on strength, and the conversational-vs-non-conversational control contrast; ``p_holm`` / ``q_bh`` are
    corrected over this one family (all rows), so they may differ from the per-table values of ``analysis/``."""
    parts = []
    reg = analysis.regression
    if len(reg):
        parts.append(reg.assign(contrast=reg["term"] + " vs s=0")[reg["term"].str.startswith("s=")])
    if diversity is not None and len(diversity):
        parts.append(diversity.assign(contrast="slope per unit s"))
    ctrl = analysis.controls
    if ctrl is not None and len(ctrl):
        c = ctrl[ctrl["term"] == "conversational"]
        parts.append(c.assign(outcome="controls: " + c["outcome"], contrast="conv. minus non-conv."))
    if not parts:
        return pd.DataFrame(columns=["outcome", "contrast", "coef", "ci_low", "ci_high", "p", "p_holm", "q_bh", "mde"])
    out = pd.concat(parts, ignore_index=True)
    for col in ("mde", "p"):
        if col not in out.columns:
            out[col] = math.nan
    out = add_corrections(out)
    return out[["outcome", "contrast", "coef", "ci_low", "ci_high", "p", "p_holm", "q_bh", "mde"]]


def significance(rows: pd.DataFrame, skipped: dict[str, str]) -> str:
    """Plain bullets: each contrast significant or not, before and after correction (with its MDE), then how
    many of each; the family of the corrections is every row of ``rows`` (:func:`outcome_rows`)."""
    lines = [_verdict(r["outcome"], r["contrast"], r) for _, r in rows.iterrows()]
    head = significance_summary(rows, ALPHA).sentence() + " The correction family is every contrast listed here."
    if skipped:
        head += f" {len(skipped)} outcome(s) could not be fitted (see Caveats)."
    return head + "\n\n" + "\n".join(lines) + "\n"


def clean_examples(out: Path, strengths: list[float], chars: int = 360) -> str:
    """One non-degenerate sample per strength (lowest, 0, highest) of the first problem that has them."""
    traces = pd.read_parquet(out / "analysis" / "traces.parquet")  # the analysis of the sweep
    path = out / "steer" / "coherence.jsonl"
    degenerate = {d["key"] for d in read_jsonl(path) if d["degenerate"]} if path.is_file() else set()
    ok = traces[~traces["key"].isin(degenerate)] if "key" in traces.columns else traces
    shown = sorted({min(strengths), 0.0, max(strengths)})
    for pid in sorted(ok["problem_id"].unique()):
        rows = [ok[(ok["problem_id"] == pid) & (ok["strength"] == s)] for s in shown]
        if all(len(r) for r in rows):
            lines = [f"Problem `{pid}`, one sample per strength (first {chars} characters; samples flagged "
                     f"degenerate by the coherence guard are never shown: {len(degenerate)} of {len(traces)}):", ""]
            for s, r in zip(shown, rows, strict=True):
                lines.append(f"- **s = {s:+g}**: {' '.join(str(r.iloc[0]['completion']).split())[:chars]}")
            return "\n".join(lines) + "\n"
    return f"(no problem has a non-degenerate sample at every shown strength; {len(degenerate)} degenerate traces)\n"


FLOOR, CEILING = 0.05, 0.95
"""Unsteered accuracy outside [FLOOR, CEILING]: no accuracy effect is measurable (no room to move)."""
PAPER_MEDIATION = {"direct": 0.228, "indirect": 0.066}
"""The paper's SEM (standardised) for feature 30939 on Countdown: direct .228, indirect through conversational
behaviours .066."""


def measurability(accuracy: pd.DataFrame, cfg: DemoConfig) -> str:
    """The report's first lines: the unsteered accuracy, and whether an accuracy effect can be measured at all."""
    base = accuracy[accuracy["strength"] == 0.0]
    if base.empty:
        return "**No s = 0 traces: the unsteered accuracy is unknown, so no accuracy effect can be read.**\n"
    acc, n = float(base["accuracy"].iloc[0]), int(base["n"].iloc[0])
    mdes = accuracy["mde_vs_baseline"].dropna()
    mde = f"; the smallest accuracy gain this run detects is {100 * float(mdes.max()):.0f} points" if len(mdes) else ""
    head = f"Unsteered accuracy (s = 0): **{100 * acc:.1f}%** of {n} problems{mde} (α = 0.05, 80% power).\n"
    if acc < FLOOR or acc > CEILING:
        return (f"**No accuracy effect is measurable in this run: the unsteered accuracy {100 * acc:.1f}% lies "
                f"outside [{100 * FLOOR:.0f}%, {100 * CEILING:.0f}%]** (task `{cfg.task}`), so steering cannot "
                "show a change in it; read the behavioural and graded outcomes only.\n\n" + head)
    return head


def graded_by_strength(run_dir: Path) -> pd.DataFrame | None:
    """Per strength: traces, accuracy, share with an answer, share with a valid expression, mean |error| of valid
    ones (the run table's ``task.*`` columns, ``analysis.traces.add_graded_outcomes``); None without them."""
    from interp_sot.analysis.sweep_table import TASK_PREFIX
    from interp_sot.analysis.traces import load_run_table

    if not (run_dir / "sweep.jsonl").is_file():
        return None
    frame = load_run_table(run_dir).frame
    if TASK_PREFIX + "valid_expression" not in frame.columns:
        return None
    table = frame.groupby("strength").agg(
        n=("correct", "size"), accuracy=("correct", "mean"), answer_found=(TASK_PREFIX + "answer_found", "mean"),
        valid_expression=(TASK_PREFIX + "valid_expression", "mean"),
        mean_abs_error_valid=(TASK_PREFIX + "abs_error", "mean"))
    return table.reset_index().astype({"strength": float, "accuracy": float})


def prompting_section(prompting: pd.DataFrame | None, cfg: DemoConfig) -> str:
    """The prompting arm against s = 0 on the same problems (the simplest alternative to steering)."""
    if not cfg.prompted:
        return "The prompting arm was not run (`prompted=False`).\n"
    if prompting is None or prompting.empty:
        return "The prompting arm ran, but no outcome could be contrasted with s = 0 (see Caveats).\n"
    rows = prompting[prompting["term"] == "prompted"]
    cols = [c for c in ("outcome", "coef", "ci_low", "ci_high", "p", "p_holm", "q_bh", "mde") if c in rows.columns]
    return ("**Prompting arm** (the unsteered model with the instruction file around each question; condition "
            "`prompted` in the table of section 5). Prompted minus s = 0 on the same problems, problem fixed "
            "effects, log trace length, SEs clustered by problem; Holm / BH over these outcomes:\n\n"
            + markdown_table(rows[cols]))


def mediation_section(mediation: pd.DataFrame | None, cfg: DemoConfig, treated: float) -> str:
    """Strength -> pre-registered mediator -> accuracy, beside the paper's .228 / .066."""
    head = (f"**Causal chain**: s = 0 vs s = {treated:g} -> `{cfg.mediator}` (pre-registered) -> accuracy; "
            "cluster bootstrap over problems. The paper (feature 30939, DeepSeek-R1-Distill-Llama-8B, SEM on "
            f"standardised variables): direct {PAPER_MEDIATION['direct']}, indirect {PAPER_MEDIATION['indirect']}.\n\n")
    if mediation is None or mediation.empty:
        return head + "Not fitted (see Caveats for why).\n"
    part = mediation[(mediation["scale"] == "std_all") & mediation["effect"].isin(["direct", "indirect", "total"])]
    cols = ["effect", "estimate", "boot_ci_low", "boot_ci_high", "p"]
    return head + "Standardised (X, M, Y), 95% bootstrap intervals:\n\n" + markdown_table(part[cols])
