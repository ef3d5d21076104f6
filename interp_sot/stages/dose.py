"""Stage ``dose``: the coherent range of a feature's steering strength, before the sweep spends its budget.

Reads: a model + tokenizer, an SAE, the feature, its strength units and a few prompts. Measures the median
residual norm at the layer on those prompts, runs the dose finder's short pre-sweep
(``experiments.dose.find_dose``: both signs, coherence judged by the unsteered model) and writes into its
directory ``dose.json`` (the coherent limits in the units and as a share of the residual norm, the per-strength
table), ``dose_traces.jsonl``, ``dose.png`` and ``strength_units.json``. The pre-sweep is short and not
resumable: a rerun with the same identity reads the finished ``dose.json`` instead of running again.
``interp-sot steer --strengths auto:N --dose DIR`` spreads a sweep over the range (``dose_strengths``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.experiments.dose import (
    DoseConfig,
    DoseResult,
    auto_strengths,
    check_dose_matches,
    check_held_out,
    find_dose,
)
from interp_sot.stages.rundir import begin_stage, finish_stage, is_complete, require_complete
from interp_sot.stages.strengths import feature_scales, residual_norm, units_record, units_summary, write_units
from interp_sot.steering.spec import write_run_spec
from interp_sot.steering.strength_units import StrengthUnits
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    import torch

    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

STAGE = "dose"
DOSE_FILE = "dose.json"


def dose_identity(config: DoseConfig, feature: int, units: StrengthUnits, prompts: Sequence[str],
                  problems: Sequence[CountdownProblem] | None = None) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256(json.dumps(list(prompts)).encode()).hexdigest()
    ids = None if problems is None else [p.problem_id for p in problems]
    return {"dose": config, "feature": int(feature), "units": units,
            "prompts": {"n": len(prompts), "sha256": digest}, **({"problem_ids": ids} if ids is not None else {})}


def read_dose(run_dir: str | Path) -> DoseResult:
    """The ``DoseResult`` of a finished dose run directory (or a bare ``dose.json``)."""
    path = Path(run_dir)
    if path.is_dir():
        require_complete(path, "--dose")
        path = path / DOSE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dose.json (run `interp-sot dose` first)")
    data = json.loads(path.read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(DoseResult)}
    missing = names - {"problems"} - set(data)  # dose runs from before the held-out split lack "problems"
    if missing:
        raise ValueError(f"{path} is not a dose result: it lacks {sorted(missing)}")
    return DoseResult(**{k: data[k] for k in names if k in data})


def dose_strengths(dose: DoseResult, n: int, units: str | None = None, feature: int | None = None,
                   evaluation: Sequence[CountdownProblem] | None = None) -> list[float]:
    """``n`` strengths (0 included) over the coherent range, refusing a dose run of other units or feature, and
    (given the ``evaluation`` problems) one tuned on any of them."""
    check_dose_matches(dose, units, feature)
    if evaluation is not None:
        check_held_out(dose, evaluation)
    return auto_strengths(dose, n)


def dose_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    sae: SparseAutoencoder | torch.Tensor,
    feature: int,
    prompts: Sequence[str],
    config: DoseConfig,
    out: str | Path,
    *,
    units: StrengthUnits = "resid",
    stats: FeatureStats | None = None,
    inputs: Mapping[str, Any] | None = None,
    progress: bool = True,
    problems: Sequence[CountdownProblem] | None = None,
) -> DoseResult:
    """Find (or read back) the coherent range of ``feature`` in ``units`` on ``prompts`` into ``out``.

    ``stats``: ``FeatureStats`` of the screening corpus, needed for ``max_act`` units. ``problems``: the problem
    each prompt asks (a split held out from the evaluation); recorded in ``dose.json`` and every trace, so a sweep
    can refuse to be evaluated on them (``dose_strengths(..., evaluation=)``).
    """
    out = Path(out)
    resuming = begin_stage(out, STAGE, dose_identity(config, feature, units, prompts, problems), inputs)
    if resuming and is_complete(out, STAGE):
        logger.info("%s: dose already measured; reading %s", out, DOSE_FILE)
        return read_dose(out)
    r = residual_norm(model, tokenizer, prompts, config.layer)
    scale = feature_scales(sae, [feature], units, residual=r, stats=stats)[int(feature)]
    result = find_dose(model, tokenizer, prompts, scale, config, out_dir=out, progress=progress, problems=problems)
    record = units_record({scale.feature: scale}, [result.negative, 0.0, result.positive])
    files = [out / DOSE_FILE, out / "dose_traces.jsonl", write_units(out, record)]
    if (out / "dose.png").is_file():
        files.append(out / "dose.png")
    files += write_run_spec(out, model=(inputs or {}).get("model", "unknown"), layer=config.layer,
                            directions={scale.feature: scale.direction},
                            strengths=[result.negative, 0.0, result.positive],
                            site=config.site, scope=config.scope, units=record, sae=sae)  # steering.json
    finish_stage(out, STAGE, files, {"positive": result.positive, "negative": result.negative,
                                     "positive_ratio": result.positive_ratio,
                                     "negative_ratio": result.negative_ratio, **units_summary(record)})
    return result
