"""Dose finder: the largest steering strength per sign at which the model still writes coherent text.

A short pre-sweep generates every prompt at every candidate strength (both signs, 0 included; rows of all
strengths batched into one steered ``generate``), scores each trace with the coherence guard (the UNSTEERED
model's mean token log-prob of the generated tokens), and compares each strength's mean with s = 0:

    drop(s) = mean_logprob(0) − mean_logprob(s)        (nats/token; > 0 means less plausible text)

A strength is coherent when drop(s) <= ``tolerance`` (default 0.25 nats/token; optionally also a cap on the share
of degenerate traces). Walking outward from 0 on each side, the coherent limit is the last candidate before the
first incoherent one; a candidate beyond a failing one never counts, even if its sampled drop happens to be small.
The limits are reported in the chosen strength units and as a share of the
median residual norm. :func:`auto_strengths` spreads a sweep's strengths over that range.

Not resumable: it is meant to take a few minutes; the stage that calls it stores ``dose.json`` and skips it
when that file matches its config.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interp_sot.experiments.coherence import Coherence, score_traces, split_generated
from interp_sot.experiments.dose_config import DoseConfig
from interp_sot.io import atomic_path, atomic_write_json, atomic_write_text
from interp_sot.protocols import generated_ids
from interp_sot.steering.strength_units import StrengthScale
from interp_sot.tasks.countdown.presets import check_disjoint
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class DoseResult:
    """The coherent range found by the pre-sweep (what ``dose.json`` holds)."""

    feature: int
    units: str
    tolerance: float
    residual_norm: float
    unit_norm: float
    """Norm of the vector one unit of s adds."""
    baseline_logprob: float
    """Mean unsteered log-prob (nats/token) of the s = 0 traces."""
    positive: float
    """Largest coherent s > 0 in ``units`` (0.0 if even the smallest positive candidate broke the text)."""
    negative: float
    """Most negative coherent s (<= 0), in ``units``."""
    positive_ratio: float
    """``positive`` as added norm / median residual norm."""
    negative_ratio: float
    """|``negative``| as added norm / median residual norm."""
    n_prompts: int
    table: list[dict[str, Any]]
    """Per candidate: strength, signed ratio, mean_logprob, sem, drop, degenerate_share, n, coherent."""
    problems: list[dict[str, Any]] = field(default_factory=list)
    """The problems the dose prompts asked (``problem_id``, ``nums``, ``target``), in prompt order: the held-out
    split the strengths were tuned on, which an evaluation must not share (``check_held_out``). Empty when the
    prompts were plain text."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _end_ids(model: CausalLM, tokenizer: Tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if tokenizer.pad_token_id is not None:
        ids.add(int(tokenizer.pad_token_id))
    return sorted(ids)


def _usable_prompts(model: CausalLM, tokenizer: Tokenizer, prompts: Sequence[str], cfg: DoseConfig) -> list[str]:
    """Prompts that leave room for ``max_new_tokens`` in the context; all too long is an error."""
    if not prompts:
        raise ValueError("prompts is empty: the dose finder needs at least one prompt")
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return list(prompts)
    lengths = [len(tokenizer(p, add_special_tokens=cfg.add_special_tokens)["input_ids"]) for p in prompts]
    keep = [p for p, n in zip(prompts, lengths, strict=True) if n + cfg.max_new_tokens <= limit]
    if not keep:
        raise ValueError(f"all {len(prompts)} prompts plus max_new_tokens={cfg.max_new_tokens} exceed the model's "
                         f"context of {limit} tokens (longest prompt {max(lengths)} tokens)")
    if len(keep) < len(prompts):
        logger.warning("dose: %d of %d prompts exceed the context with %d new tokens; dropped",
                       len(prompts) - len(keep), len(prompts), cfg.max_new_tokens)
    return keep


def generate_rows(
    model: CausalLM,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    direction: torch.Tensor,
    strengths: Sequence[float],
    cfg: DoseConfig,
    seed: int,
) -> tuple[list[list[int]], list[list[int]]]:
    """One steered ``generate`` (row i gets strengths[i] · direction); -> unpadded (prompt ids, completion ids).

    direction: [d_model]; strengths: one per prompt.
    """
    from transformers import GenerationConfig

    from interp_sot.steering import steer

    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=cfg.add_special_tokens)
    device = next(model.parameters()).device
    enc = enc.to(device)
    kwargs: dict[str, Any] = dict(do_sample=cfg.do_sample, max_new_tokens=cfg.max_new_tokens,
                                  pad_token_id=tokenizer.pad_token_id, repetition_penalty=1.0)
    if cfg.do_sample:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
    torch.manual_seed(seed)
    with (torch.inference_mode(),
          steer(model, cfg.layer, direction, strength=torch.tensor(list(strengths), dtype=torch.float32),
                site=cfg.site, scope=cfg.scope)):
        out = model.generate(**enc, generation_config=GenerationConfig(**kwargs))
    return split_generated(generated_ids(out).cpu(), enc["attention_mask"].cpu(), _end_ids(model, tokenizer))


def coherent_limit(strengths: Sequence[float], coherent: Sequence[bool], sign: int) -> float:
    """Last strength of sign ``sign`` (walking out from 0) before the first that is not coherent."""
    side = sorted(((s, ok) for s, ok in zip(strengths, coherent, strict=True) if s * sign > 0),
                  key=lambda x: abs(x[0]))
    best = 0.0
    for s, ok in side:
        if not ok:
            break
        best = s
    return best


def _table(strengths: list[float], scores: list[list[Coherence]], scale: StrengthScale,
           cfg: DoseConfig) -> tuple[list[dict[str, Any]], float]:
    means = []
    rows: list[dict[str, Any]] = []
    for s, sc in zip(strengths, scores, strict=True):
        lp = np.array([c.mean_logprob for c in sc if math.isfinite(c.mean_logprob)])
        means.append(float(lp.mean()) if lp.size else math.nan)
        sem = float(lp.std(ddof=1) / math.sqrt(lp.size)) if lp.size > 1 else math.nan
        rows.append({"strength": s, "ratio": math.copysign(scale.ratio(s), s), "mean_logprob": means[-1],
                     "sem": sem, "n": int(lp.size), "degenerate_share": float(np.mean([c.degenerate for c in sc]))})
    baseline = means[strengths.index(0.0)]
    if not math.isfinite(baseline):
        raise ValueError("no s = 0 trace has a generated token: the baseline coherence is undefined")
    for row in rows:
        row["drop"] = baseline - row["mean_logprob"]
        ok = row["drop"] <= cfg.tolerance  # NaN (no scorable trace) is not coherent
        if cfg.max_degenerate_share is not None:
            ok = ok and row["degenerate_share"] <= cfg.max_degenerate_share
        row["coherent"] = bool(ok)
    return rows, baseline


def find_dose(
    model: CausalLM,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    scale: StrengthScale,
    config: DoseConfig,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    problems: Sequence[CountdownProblem] | None = None,
) -> DoseResult:
    """Run the pre-sweep and return the coherent range; with ``out_dir`` also write ``dose.json``,
    ``dose_traces.jsonl`` (every trace's score, text and ``problem_id``) and ``dose.png`` (skipped without
    matplotlib).

    scale: the feature's direction per unit of s and the residual norm (``steering.strength_scale``).
    problems: the problem each prompt asks (same order), recorded so the evaluation can be checked disjoint.
    """
    from tqdm.auto import tqdm

    cfg = config
    if problems is not None and len(problems) != len(prompts):
        raise ValueError(f"{len(problems)} problems for {len(prompts)} dose prompts: give one problem per prompt")
    asked = dict(zip(prompts, problems, strict=True)) if problems is not None else {}
    prompts = _usable_prompts(model, tokenizer, prompts, cfg)
    kept = [asked[p] for p in prompts] if problems is not None else []
    strengths = cfg.candidates(scale)
    rows = [(p, s) for p in range(len(prompts)) for s in strengths]  # prompt-major: similar lengths per batch
    direction = scale.direction.detach().to(torch.float32).cpu()
    p_ids: list[list[int]] = []
    c_ids: list[list[int]] = []
    batches = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
    for k, batch in enumerate(tqdm(batches, desc="dose pre-sweep", disable=not progress)):
        pi, ci = generate_rows(model, tokenizer, [prompts[p] for p, _ in batch], direction,
                               [s for _, s in batch], cfg, cfg.seed + k)
        p_ids += pi
        c_ids += ci
    scores = score_traces(model, tokenizer, p_ids, c_ids, cfg.coherence)
    by_strength = [[sc for (_, s), sc in zip(rows, scores, strict=True) if s == st] for st in strengths]
    table, baseline = _table(strengths, by_strength, scale, cfg)
    coherent = [r["coherent"] for r in table]
    pos = coherent_limit(strengths, coherent, +1)
    neg = coherent_limit(strengths, coherent, -1)
    result = DoseResult(scale.feature, scale.units, cfg.tolerance, scale.residual_norm, scale.unit_norm, baseline,
                        pos, neg, scale.ratio(pos), scale.ratio(neg), len(prompts), table,
                        [{"problem_id": p.problem_id, "nums": list(p.nums), "target": p.target} for p in kept])
    logger.info("dose: coherent range s in [%.4g, %.4g] %s = [-%.3f, %.3f] of the median residual norm %.1f",
                neg, pos, scale.units, result.negative_ratio, result.positive_ratio, scale.residual_norm)
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "dose.json", {**result.to_dict(), "config": asdict(cfg)})
        traces = [{"prompt_index": p, "problem_id": kept[p].problem_id if kept else None, "strength": s,
                   "completion": tokenizer.decode(c, skip_special_tokens=True), **sc._asdict()}
                  for (p, s), c, sc in zip(rows, c_ids, scores, strict=True)]
        atomic_write_text(out / "dose_traces.jsonl", "".join(json.dumps(t) + "\n" for t in traces))
        plot_dose(result, out / "dose.png")
    return result


def plot_dose(result: DoseResult, path: str | Path) -> Path | None:
    """Coherence (mean unsteered log-prob ± SEM) against the signed residual-norm ratio; None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: skipping %s (pip install 'interp-sot[plot]')", path)
        return None
    x = [r["ratio"] for r in result.table]
    y = [r["mean_logprob"] for r in result.table]
    err = [0.0 if not math.isfinite(r["sem"]) else r["sem"] for r in result.table]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.axvspan(-result.negative_ratio, result.positive_ratio, color="tab:green", alpha=0.12, label="coherent range")
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label="mean over prompts (± SEM)")
    ax.axhline(result.baseline_logprob - result.tolerance, color="tab:red", ls="--",
               label=f"s = 0 minus tolerance {result.tolerance:g}")
    ax.set_xlabel("added norm / median residual norm (signed)")
    ax.set_ylabel("unsteered log-prob of generated tokens (nats/token)")
    ax.set_title(f"feature {result.feature}: coherence vs strength")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out


def check_held_out(dose: DoseResult, evaluation: Sequence[CountdownProblem]) -> None:
    """Refuse evaluation problems the dose was tuned on (same ``problem_id`` or same task): strengths chosen on
    the problems they are judged on overstate the effect (AxBench picks the factor on held-out prompts)."""
    tuned = [CountdownProblem(str(d["problem_id"]), tuple(int(n) for n in d["nums"]), int(d["target"]))
             for d in dose.problems]
    check_disjoint(evaluation, tuned, "dose problems")


def check_dose_matches(dose: DoseResult, units: str | None = None, feature: int | None = None) -> None:
    """Refuse a dose run of other units (strengths in other units cannot be compared) or of another feature."""
    if units is not None and units != dose.units:
        raise ValueError(f"the dose run measured strengths in {dose.units!r} units, but this run steers in "
                         f"{units!r}: use --units {dose.units} or rerun the dose stage")
    if feature is not None and int(feature) != dose.feature:
        raise ValueError(f"the dose run is for feature {dose.feature}, not {feature}")


def check_in_range(dose: DoseResult, strengths: Sequence[float], units: str | None = None,
                   feature: int | None = None) -> None:
    """Refuse strengths outside the coherent range ``dose`` measured (there the model writes broken text, so no
    effect can be read off it), and a dose run that does not match (:func:`check_dose_matches`)."""
    check_dose_matches(dose, units, feature)
    outside = [s for s in strengths if not dose.negative - 1e-9 <= s <= dose.positive + 1e-9]
    if outside:
        raise ValueError(f"strengths {outside} lie outside the coherent range [{dose.negative:g}, {dose.positive:g}] "
                         f"the dose stage found (tolerance {dose.tolerance:g} nats/token); the model writes broken "
                         "text there. Sweep inside the range (e.g. --strengths auto:N)")


def auto_strengths(dose: DoseResult, n: int) -> list[float]:
    """``n`` sweep strengths (0 included, in ``dose.units``) spread over the coherent range.

    The n − 1 non-zero strengths go to each side in proportion to its length (ties split evenly, the spare to
    the positive side), evenly spaced from 0 to that side's limit: n = 5 on a symmetric range gives
    (−L, −L/2, 0, L/2, L).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    pos, neg = dose.positive, -dose.negative
    if n == 1:
        return [0.0]
    if pos <= 0 and neg <= 0:
        raise ValueError("the dose finder found no coherent non-zero strength; only [0.0] can be swept")
    k_pos = round((n - 1) * pos / (pos + neg)) if pos != neg else math.ceil((n - 1) / 2)
    if neg <= 0 or pos <= 0:
        k_pos = n - 1 if neg <= 0 else 0
    k_neg = n - 1 - k_pos
    side = [float(f"{pos * i / k_pos:.6g}") for i in range(1, k_pos + 1)] if k_pos else []
    other = [-float(f"{neg * i / k_neg:.6g}") for i in range(1, k_neg + 1)] if k_neg else []
    return sorted([*other, 0.0, *side])
