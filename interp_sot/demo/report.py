"""``report.md`` of a demo run: what was screened, picked and steered, the effects with intervals, and caveats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from interp_sot.demo.config import DemoConfig
from interp_sot.demo.findings import markdown_table as _table
from interp_sot.experiments.dose import DoseResult
from interp_sot.io import atomic_write_text
from interp_sot.screening.pick import Pick, ranked_candidates

if TYPE_CHECKING:
    from interp_sot.stages.analyze import AnalyzeResult

SITE = "site"
"""The feature browser's folder in the run directory (written by ``run_demo``; the report links into it)."""


def _sae_quality(cfg: DemoConfig) -> str:
    from interp_sot.data import embedded_sae_path

    folder = Path(cfg.sae) if cfg.sae else embedded_sae_path()
    report = folder / "training_report.json"
    if not report.is_file():
        return f"SAE: `{folder}` (no training report next to it).\n"
    q = json.loads(report.read_text())["held_out"]
    return (f"SAE: `{folder.name}`; held-out explained variance {q['explained_variance']:.3f}, "
            f"L0 {q['l0']:.1f}, dead {100 * q['dead_fraction']:.1f}% ({q['n_tokens']} tokens; see its "
            "training_report.md).\n")


def _skipped(skipped: dict[str, str]) -> str:
    """One caveat line per distinct reason, listing the outcomes it applies to."""
    if not skipped:
        return "- Every outcome was fitted."
    by_reason: dict[str, list[str]] = {}
    for outcome, reason in skipped.items():
        by_reason.setdefault(reason, []).append(outcome)
    return "\n".join(f"- Not fitted ({reason}): {', '.join(names)}." for reason, names in by_reason.items())


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else None


def write_demo_report(out: Path, cfg: DemoConfig, table: pd.DataFrame, pick: Pick, contexts: list[str],
                      dose: DoseResult, strengths: list[float], analysis: AnalyzeResult, timings: dict[str, float]
                      ) -> tuple[Path, Path | None]:
    from interp_sot.demo.figure import plot_demo, top_markers
    from interp_sot.demo.findings import (
        clean_examples,
        dose_section,
        graded_by_strength,
        measurability,
        mediation_section,
        outcome_rows,
        prompting_section,
        significance,
    )
    from interp_sot.tasks.countdown.presets import get_preset

    behaviours = pd.read_csv(out / "analysis" / "behaviour_rates.csv")  # what steer/report shows
    graded = graded_by_strength(out / "steer")
    prompted_graded = graded_by_strength(out / "prompted") if cfg.prompted else None
    figure: Path | None = None
    try:
        figure = plot_demo(table, pick, analysis.accuracy, behaviours, analysis.controls, cfg.min_contexts,
                           out / "demo.png", graded=graded, prompted=prompted_graded)
    except ImportError:  # matplotlib is the optional `plot` extra
        figure = None
    fired = int((table["fire_count"] > 0).sum())
    enough = table[table["n_contexts"] >= cfg.min_contexts]
    passing = ranked_candidates(table, cfg.min_contexts)
    shown = ["conversation_ratio", *(["n_sources"] if "n_sources" in passing.columns else []), "onset_share",
             "n_contexts", "frequency", "max_act"]
    top = passing[["feature", *shown]].head(10)
    markers = top_markers(behaviours)
    mk = behaviours[behaviours["behaviour"].isin(markers)].pivot_table(index="strength", columns="behaviour",
                                                                       values="mean").reset_index()
    acc = analysis.accuracy[["strength", "n", "accuracy", "ci_low", "ci_high", "mde_vs_baseline"]]
    dose_text, dose_table = dose_section(dose, strengths)
    coherence = _csv(out / "analysis" / "coherence_by_strength.csv")
    diversity = _csv(out / "analysis" / "diversity_regression.csv")
    conditions = _csv(out / "analysis" / "conditions.csv")
    outcomes = outcome_rows(analysis, strengths, diversity)
    cond_cols = ["condition", "added_norm", "n", "accuracy", "acc_ci_low", "acc_ci_high", "coherence_logprob",
                 *[m for m in markers if conditions is not None and m in conditions.columns]]
    matched = conditions is not None and len(conditions) and bool(conditions["matched"].iloc[0])
    total = sum(timings.values())
    prompting = _csv(out / "analysis" / "prompting.csv")
    mediation = _csv(out / "analysis" / "mediation.csv")
    parts = [
        f"# interp-sot demo: {cfg.model}, layer {cfg.layer}, task `{cfg.task}`\n",
        measurability(analysis.accuracy, cfg),
        f"Total {total / 60:.1f} min: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".\n",
        "![demo](demo.png)\n" if figure else "",
        "## 1. Statistics and screening\n",
        _sae_quality(cfg),
        f"[Feature browser]({SITE}/index.html): every feature's statistics, top contexts with the activating tokens "
        "shaded, judge verdicts and steering samples (open it from disk; `interp-sot browse` writes the same).\n",
        f"{fired} of {len(table)} features fired on the screening corpus; {len(enough)} have >= {cfg.min_contexts} "
        f"top contexts, and {len(passing)} of those pass the filter (conversation ratio > 0.5 from document labels "
        f"[judge: {cfg.judge}], and > 50% of firings within 4 tokens of a sentence or turn onset).\n",
        _table(top),
        f"## 2. Picked feature {pick.feature}\n",
        f"Conversation ratio {pick.conversation_ratio:.2f}, onset share {pick.position_share:.2f}, "
        f"{pick.n_contexts} contexts from {pick.n_sources or '?'} corpus sources, frequency "
        f"{100 * pick.frequency:.3f}% of tokens, max activation "
        f"{pick.max_act:.1f} ([its page in the feature browser]({SITE}/feature.html#{pick.feature})). "
        "Top contexts (activating token marked):\n",
        "```\n" + "\n---\n".join(c.strip() for c in contexts[:5]) + "\n```\n",
        "## 3. Coherent range (dose)\n",
        f"Tuned on {len(dose.problems)} held-out problems ({', '.join(p['problem_id'] for p in dose.problems[:3])}, "
        f"...): none of them, by id or by task, is among the {cfg.n_problems} evaluation problems (checked).\n",
        dose_text,
        _table(dose_table),
        "## 4. Steering sweep\n",
        f"{cfg.n_problems} Countdown problems (task `{cfg.task}`: {get_preset(cfg.task).description}) x strengths "
        f"{strengths} (s = added norm / median residual norm {dose.residual_norm:.1f}, along the feature's unit "
        f"decoder direction). Sampling T={cfg.temperature}, top-p {cfg.top_p}, at most {cfg.max_new_tokens} new "
        "tokens. Accuracy (Wilson 95% CI; `mde_vs_baseline`: the smallest accuracy gain over s = 0 detectable at "
        "α = 0.05 with 80% power):\n",
        _table(acc),
        "Graded outcomes (share of traces with an answer, with a valid expression using each number once, and the "
        "mean |value - target| of valid answers):\n",
        _table(graded) if graded is not None else "(none)\n",
        "Coherence guard (unsteered mean log-prob of the generated tokens, 95% CI; degenerate = repeated n-grams "
        "or symbol soup):\n",
        _table(coherence) if coherence is not None else "(not measured)\n",
        "Markers that move most with strength (per 1k words, mean over problems):\n",
        _table(mk),
        clean_examples(out, strengths),
        "## 5. Random control features\n",
        f"{cfg.n_controls} conversational + {cfg.n_controls} non-conversational features drawn from the screening "
        + (f"table, each at the picked feature's added-vector norm at every non-zero strength (matched norms) on "
           f"{cfg.control_problems} problems. The three conditions side by side:\n" if matched else
           f"table, each at {cfg.control_factor} x its max activation on {cfg.control_problems} problems:\n"),
        _table(conditions[[c for c in cond_cols if c in conditions.columns]]) if conditions is not None
        else "(none)\n",
        "## 6. Prompting arm and the causal chain\n",
        prompting_section(prompting, cfg),
        mediation_section(mediation, cfg, max(strengths)),
        "## 7. Every outcome, and what is significant\n",
        "Regressions with problem fixed effects and log trace length, SEs clustered by problem (the paper's form): "
        "each strength vs s = 0; SAE feature diversity (coverage / entropy within the screen's conversational "
        "features and the rest, re-encoded without steering) as a slope on s; the control contrast. `mde`: minimal "
        "detectable effect at α = 0.05 and 80% power for this run's n.\n",
        _table(outcomes),
        significance(outcomes, analysis.skipped),
        "## Caveats\n",
        "- The task is the calibrated `arith2` preset, not the paper's Countdown (SmolLM2-135M solves none of the "
        "paper's problems, so no accuracy effect could be measured there); the paper's setting needs the GPU "
        "runbook (README) on DeepSeek-R1-Distill-Llama-8B." if cfg.task != "paper" else
        "- The paper's task on a small model: see the first lines for whether accuracy can move at all.",
        "- The conversation ratio here comes from document labels (plays, game and chat dialogue vs documentation), "
        "not an LLM judge; pass `--judge` for a judge.",
        _skipped(analysis.skipped),
        f"- The largest strength adds {max(abs(x) for x in strengths):.0%} of the median residual norm, inside "
        "the coherent range; the paper's s = ±10 is in unpublished units (on SmolLM2 a literal ±10 breaks the text).",
        "- Many contrasts are tested: trust those significant after Holm's correction; read the ones significant "
        "only without correction as leads, not findings.\n",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path, figure
