"""Strength units of a steering run: each feature's direction per unit of s, and what each strength adds.

``steer`` and ``controls`` take directions already scaled to the chosen units (``steering.strength_units``);
this module builds them from an SAE for any of the four units, measures the residual norm they are judged
against on the run's own prompts, and turns them into the record every run keeps (``strength_units.json`` and
the manifest summary): units, the added vector's norm and its ratio to the median residual norm, per strength.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from interp_sot.experiments.records import FeatureId
from interp_sot.io import atomic_write_json
from interp_sot.steering.strength_units import StrengthScale, StrengthUnits, strength_scale
from interp_sot.steering.units import get_strength_unit
from interp_sot.tasks.countdown.prompts import PromptSpec, PromptStyle

if TYPE_CHECKING:
    from interp_sot.experiments.settings import SweepConfig
    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer
    from interp_sot.tasks.countdown.problems import CountdownProblem

UNITS_FILE = "strength_units.json"
N_NORM_PROMPTS = 16
"""Prompts the median residual norm is measured on (the first ones of the run)."""


def run_prompts(problems: Sequence[Any], style: PromptStyle | PromptSpec, tokenizer: Tokenizer,
                n: int | None = N_NORM_PROMPTS) -> list[str]:
    """The prompt texts of the first ``n`` problems (all with ``n=None``), as the sweep builds them (pass the
    sweep's ``prompt_spec`` for styles with shots or a question template)."""
    from interp_sot.tasks.countdown.prompts import build_prompt

    chosen = list(problems) if n is None else list(problems)[:n]
    if not chosen:
        raise ValueError("no problems: the residual norm is measured on the run's prompts")
    return [build_prompt(p, style, tokenizer) for p in chosen]


def residual_norm(model: CausalLM, tokenizer: Tokenizer, prompts: Sequence[str], layer: int) -> float:
    """Median per-token resid_post norm at ``layer`` on ``prompts`` (BOS and padding excluded)."""
    from interp_sot.steering import median_residual_norm

    with torch.inference_mode():
        return median_residual_norm(model, tokenizer, list(prompts), layer)


def feature_scales(
    sae: SparseAutoencoder | torch.Tensor,
    features: Sequence[int],
    units: StrengthUnits,
    *,
    residual: float,
    stats: FeatureStats | None = None,
) -> dict[int, StrengthScale]:
    """``feature -> StrengthScale`` in ``units`` (``stats``: ``FeatureStats``, needed for ``max_act``).

    Raises ValueError naming the feature for an all-zero decoder row or, in ``max_act`` units, a feature that
    never fired on the screening corpus.
    """
    if get_strength_unit(units).needs_max_act and stats is None:
        raise ValueError(f"'{units}' strength units need the screening statistics (the feature's max activation)")
    return {int(f): strength_scale(sae, int(f), units, residual_norm=residual, stats=stats) for f in features}


class SteeringDirections(NamedTuple):
    """SAE features' directions in a run's units, as the steering stages take them, with what judges them."""

    directions: dict[FeatureId, torch.Tensor]
    """feature -> [d_model] direction per unit of s."""
    scales: dict[int, StrengthScale]
    record: dict[str, Any]
    """``units_record``: what the run keeps as ``strength_units.json``."""


def sae_directions(model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder | torch.Tensor,
                   problems: Sequence[CountdownProblem], sweep: SweepConfig, features: Sequence[int],
                   units: StrengthUnits, strengths: Mapping[int, Sequence[float]] | Sequence[float], *,
                   residual: float | None = None, stats: FeatureStats | None = None) -> SteeringDirections:
    """The glue every steering stage needs between "feature ids in these units" and the sweep: each feature's
    direction per unit of s, its ``StrengthScale`` and the units record of ``strengths``. ``residual``: the median
    residual norm the strengths are judged against; None measures it at ``sweep.layer`` on the run's first prompts
    (:func:`run_prompts` of ``problems`` with the sweep's prompt)."""
    if residual is None:
        prompts = run_prompts(problems, sweep.prompt_spec, tokenizer)
        residual = residual_norm(model, tokenizer, prompts, sweep.layer)
    scales = feature_scales(sae, features, units, residual=residual, stats=stats)
    return SteeringDirections(directions_of(scales), scales, units_record(scales, strengths))


def check_features(sae: SparseAutoencoder | torch.Tensor, features: Sequence[int], units: StrengthUnits,
                   stats: FeatureStats | None = None) -> None:
    """Refuse a feature the SAE lacks (or with an all-zero decoder row, or no max activation in ``stats``) before
    the model loads: the residual norm only scales the directions, so 1.0 stands in for it."""
    feature_scales(sae, features, units, residual=1.0, stats=stats)


def directions_of(scales: Mapping[int, StrengthScale]) -> dict[FeatureId, torch.Tensor]:
    """``feature -> [d_model]`` direction per unit of s, as the steering stages take them."""
    return {f: s.direction for f, s in scales.items()}


def units_record(scales: Mapping[int, StrengthScale], strengths: Mapping[int, Sequence[float]] | Sequence[float]
                 ) -> dict[str, Any]:
    """What a run stores about its strengths: units, residual norm and one ``StrengthScale.record`` per
    (feature, strength); ``strengths`` is one list for all features or a list per feature."""
    if not scales:
        raise ValueError("no strength scales to record")
    first = next(iter(scales.values()))
    rows = []
    for f, scale in scales.items():
        values = strengths[f] if isinstance(strengths, Mapping) else strengths
        rows += [scale.record(s) for s in values]
    return {"units": first.units, "residual_norm": first.residual_norm, "rows": rows}


def units_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The short form a manifest keeps: units, residual norm and the largest added norm / its ratio."""
    rows = record.get("rows", [])
    return {"units": record.get("units"), "residual_norm": record.get("residual_norm"),
            "max_added_norm": max((r["added_norm"] for r in rows), default=0.0),
            "max_ratio_to_residual": max((r["ratio_to_residual"] for r in rows), default=0.0)}


def write_units(out: Path, record: Mapping[str, Any]) -> Path:
    path = Path(out) / UNITS_FILE
    atomic_write_json(path, dict(record))
    return path


def read_units(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``strength_units.json``, or None when the run recorded none (custom direction, older run)."""
    path = Path(run_dir) / UNITS_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
