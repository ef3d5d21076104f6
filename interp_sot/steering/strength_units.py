"""Strength units: what ``s`` in h' = h + s·v means, in one place, with the added norm recorded.

The paper does not publish the units of its strengths, and the field uses four conventions. For a feature f
with sae-lens decoder row W_dec[f] and unit row u_f = W_dec[f] / ‖W_dec[f]‖, one unit of s adds:

- ``unit``: u_f, so s is the norm of the added vector (Neuronpedia's steering convention);
- ``sae``: W_dec[f], so s is in the SAE's activation units (sae-lens folds any input normalisation into W_dec
  at load, so the row is in raw residual units);
- ``max_act``: max_act_f · u_f, where max_act_f is the feature's largest activation on the screening corpus,
  so s is the public reproduction's α (α = 1 adds a vector as long as the feature's strongest firing);
- ``resid``: r · u_f, where r is the model's median per-token residual norm at the steered layer on the run's
  prompts (``median_residual_norm``), so s is the added norm as a share of the residual stream.

Whatever the units, every run records the added vector's norm and its ratio to r, because that ratio, not s,
says whether the model can still write coherent text (SmolLM2 breaks down beyond roughly 0.2 of r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from interp_sot.steering.directions import decoder_matrix, feature_direction
from interp_sot.steering.units import STRENGTH_UNITS, UnitContext, get_strength_unit

if TYPE_CHECKING:
    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import SparseAutoencoder

__all__ = ["STRENGTH_UNITS", "StrengthScale", "StrengthUnits", "added_vector", "feature_max_act", "strength_scale"]

StrengthUnits = str
"""The name of a registered strength unit (:data:`interp_sot.steering.units.STRENGTH_UNITS`)."""


def _positive(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return v


def feature_max_act(stats: Any, feature: int) -> float:
    """The feature's largest activation on the screening corpus, from ``FeatureStats`` (``.max_act: [d_sae]``).

    Raises when the feature never fired: ``max_act`` units are then undefined (max_act is 0, not a scale).
    """
    max_act = getattr(stats, "max_act", None)
    if not isinstance(max_act, torch.Tensor) or max_act.ndim != 1:
        raise ValueError(f"expected FeatureStats (with a [d_sae] max_act tensor), got {type(stats).__name__}")
    if not 0 <= feature < max_act.shape[0]:
        raise ValueError(f"feature {feature} out of range: the statistics cover features 0..{max_act.shape[0] - 1}")
    value = float(max_act[feature])
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"feature {feature} never fired on the screening corpus (max activation {value}); "
            "'max_act' strength units are undefined for it: use 'unit', 'sae' or 'resid'"
        )
    return value


@dataclass(frozen=True)
class StrengthScale:
    """One feature's steering direction per unit of s, and the residual norm that judges its size."""

    feature: int
    units: StrengthUnits
    direction: torch.Tensor
    """[d_model] float32: the vector added per unit of s (the hook adds s · direction)."""
    residual_norm: float
    """Median per-token resid norm at the steered layer on the run's prompts (``median_residual_norm``)."""
    max_act: float | None = None
    """The feature's max activation on the screening corpus (set for ``max_act`` units)."""

    @property
    def unit_norm(self) -> float:
        """Norm of the vector one unit of s adds."""
        return float(self.direction.norm())

    def vector(self, strength: float) -> torch.Tensor:
        """The added vector s · direction: [d_model] float32."""
        return float(strength) * self.direction

    def added_norm(self, strength: float) -> float:
        return abs(float(strength)) * self.unit_norm

    def ratio(self, strength: float) -> float:
        """Added norm as a share of the median residual norm (what decides coherence)."""
        return self.added_norm(strength) / self.residual_norm

    def strength_for_ratio(self, ratio: float) -> float:
        """The s (in these units) whose added norm is ``ratio`` × the residual norm, sign kept."""
        return float(ratio) * self.residual_norm / self.unit_norm

    def strength_for_norm(self, norm: float) -> float:
        """The s whose added vector has norm ``|norm|`` (sign of ``norm`` kept): matched-norm controls."""
        return float(norm) / self.unit_norm

    def record(self, strength: float) -> dict[str, Any]:
        """What every run's config stores for a strength: units, added norm, ratio to the residual norm."""
        return {
            "feature": self.feature,
            "units": self.units,
            "strength": float(strength),
            "unit_norm": self.unit_norm,
            "added_norm": self.added_norm(strength),
            "residual_norm": self.residual_norm,
            "ratio_to_residual": self.ratio(strength),
            "max_act": self.max_act,
        }


def strength_scale(
    sae: SparseAutoencoder | torch.Tensor,
    feature: int,
    units: StrengthUnits,
    *,
    residual_norm: float,
    max_act: float | None = None,
    stats: FeatureStats | None = None,
) -> StrengthScale:
    """The direction one unit of s adds for ``feature`` in ``units`` (see the module docstring).

    Args:
        sae: a sae-lens SAE (or anything with ``W_dec: [d_sae, d_model]``, or that matrix).
        residual_norm: ``median_residual_norm(model, tokenizer, prompts, layer)`` on the run's prompts; used by
            ``resid`` units and by every record's ratio.
        max_act / stats: for ``max_act`` units, the value itself or ``FeatureStats`` to read it from.
    """
    unit = get_strength_unit(units)
    r = _positive(residual_norm, "residual_norm")
    w = decoder_matrix(sae)
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < w.shape[0]:
        raise ValueError(f"feature index {feature!r} out of range: the SAE has features 0..{w.shape[0] - 1}")
    row_norm = float(w[feature].detach().float().norm())
    if row_norm == 0:
        raise ValueError(f"feature {feature} has an all-zero decoder row: it has no steering direction")
    fire: float | None = None
    if unit.needs_max_act:
        if max_act is None and stats is None:
            raise ValueError(f"'{units}' units need the feature's max activation: pass max_act= or stats=")
        if max_act is not None:
            fire = float(max_act)
            if not math.isfinite(fire) or fire <= 0:
                raise ValueError(
                    f"feature {feature} has max activation {max_act!r}: it never fired, so '{units}' units "
                    "are undefined for it"
                )
        else:
            fire = feature_max_act(stats, feature)
    factor = float(unit.factor(UnitContext(feature, row_norm, r, fire)))
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"strength units {units!r} give feature {feature} the factor {factor!r}; need a finite > 0")
    direction = feature_direction(sae, feature, unit.base)
    if factor != 1.0:
        direction = direction * factor
    if not torch.isfinite(direction).all():
        raise ValueError(f"feature {feature}: the decoder row holds NaN or inf")
    return StrengthScale(feature, units, direction.to(torch.float32), r, fire)


def added_vector(
    sae: SparseAutoencoder | torch.Tensor,
    feature: int,
    strength: float,
    units: StrengthUnits,
    *,
    residual_norm: float,
    max_act: float | None = None,
    stats: FeatureStats | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The vector steering ``feature`` at ``strength`` adds ([d_model] float32) and its record dict."""
    scale = strength_scale(sae, feature, units, residual_norm=residual_norm, max_act=max_act, stats=stats)
    return scale.vector(strength), scale.record(strength)
