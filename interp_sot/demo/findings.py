"""The demo report's measurement sections: the coherent range, coherence by strength, every outcome's estimate
with its interval, p-value and minimal detectable effect, and a plain list of what is and is not significant.

Numbers come from the ``dose`` and ``analyze`` stages' files; this module only words and formats them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from interp_sot.experiments.dose import DoseResult
from interp_sot.io import read_jsonl

ALPHA = 0.05


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


def _verdict(outcome: str, term: str, row: Any) -> str:
    est = (f"`{outcome}` {term}: {_fmt(row['coef'])} (95% CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}, "
           f"p = {_fmt(row['p'])}")
    if math.isfinite(row["p"]) and row["p"] < ALPHA:
        return f"- **significant** at α = {ALPHA}: {est})"
    mde = row.get("mde", math.nan)
    return f"- not significant: {est}; the smallest effect this run detects with 80% power is ±{_fmt(mde)})"


def outcome_rows(analysis: Any, strengths: list[float], diversity: pd.DataFrame | None) -> pd.DataFrame:
    """Every pre-registered contrast in one table: each outcome at each non-zero strength vs 0, the diversity
    slopes on strength, and the conversational-vs-non-conversational control contrast."""
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
        return pd.DataFrame(columns=["outcome", "contrast", "coef", "ci_low", "ci_high", "p", "mde"])
    out = pd.concat(parts, ignore_index=True)
    for col in ("mde", "p"):
        if col not in out.columns:
            out[col] = math.nan
    return out[["outcome", "contrast", "coef", "ci_low", "ci_high", "p", "mde"]]


def significance(rows: pd.DataFrame, skipped: dict[str, str]) -> str:
    """Plain bullets: each contrast significant or not (with its MDE), then how many of each."""
    lines = [_verdict(r["outcome"], r["contrast"], r) for _, r in rows.iterrows()]
    n_sig = int((rows["p"] < ALPHA).sum()) if len(rows) else 0
    head = (f"{n_sig} of {len(rows)} contrasts are significant at α = {ALPHA} (no multiple-comparison correction; "
            f"expect about {ALPHA * len(rows):.1f} by chance).")
    if skipped:
        head += f" {len(skipped)} outcome(s) could not be fitted (see Caveats)."
    return head + "\n\n" + "\n".join(lines) + "\n"


def clean_examples(out: Path, strengths: list[float], chars: int = 360) -> str:
    """One non-degenerate sample per strength (lowest, 0, highest) of the first problem that has them."""
    traces = pd.read_parquet(out / "steer" / "report" / "traces.parquet")
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
