"""Settings of the dose pre-sweep (:mod:`interp_sot.experiments.dose`): where to steer, which candidate
strengths, how to sample and what counts as coherent.

Pure Python (no torch): the command line derives ``interp-sot dose``'s flags from these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from interp_sot.steering.sites import SCOPES, SITES, Scope, Site

if TYPE_CHECKING:
    from interp_sot.experiments.coherence import CoherenceConfig
    from interp_sot.steering.strength_units import StrengthScale


def _coherence_config() -> CoherenceConfig:
    from interp_sot.experiments.coherence import CoherenceConfig

    return CoherenceConfig()


DEFAULT_RATIOS: tuple[float, ...] = (-0.4, -0.3, -0.25, -0.2, -0.15, -0.1, -0.05, 0.0,
                                     0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
"""Candidate added norms as signed shares of the median residual norm (SmolLM2 breaks near 0.2)."""


@dataclass(frozen=True)
class DoseConfig:
    """The pre-sweep: where to steer, which candidate strengths, how to sample and what counts as coherent."""

    layer: int
    """Decoder layer whose residual stream is steered."""
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    """Candidates as signed added-norm / median-residual-norm; converted to the scale's units. Must hold 0."""
    strengths: tuple[float, ...] | None = None
    """Candidates given directly in the scale's units instead of ``ratios`` (must hold 0)."""
    tolerance: float = 0.25
    """Largest mean coherence drop against s = 0 (nats/token) a strength may cause and still count as coherent."""
    max_new_tokens: int = 64
    """Generated tokens per trace (the cliff shows within a few dozen tokens)."""
    do_sample: bool = True
    """Sample as the sweep will (False: greedy)."""
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0
    """torch seed of the first generate batch (batch k uses seed + k)."""
    batch_size: int = 64
    """Rows (prompt × strength) per steered ``generate`` call."""
    site: Site = "resid_post"
    """Steering site (see ``steering.steer``)."""
    scope: Scope = "all"
    """Steered positions (see ``steering.steer``)."""
    add_special_tokens: bool = False
    """Tokenise prompts with BOS added: False for chat-template prompts, which write it themselves."""
    max_degenerate_share: float | None = None
    """Optionally also require at most this share of degenerate traces (coherence guard's text flag) at a
    strength. Repetition loops score a HIGH log-prob under the unsteered model (SmolLM2 at s = -0.2 of the residual
    norm: "Severus Poof" x 12 at -0.37 nats/token), so the log-prob drop alone can miss them. None: drop only."""
    coherence: CoherenceConfig = field(default_factory=_coherence_config)
    """How traces are scored (batching of the unsteered scoring pass)."""

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"tolerance must be a finite number > 0 (nats/token), got {self.tolerance}")
        cands = self.ratios if self.strengths is None else self.strengths
        name = "ratios" if self.strengths is None else "strengths"
        if any(not math.isfinite(float(c)) for c in cands):
            raise ValueError(f"{name} must be finite, got {cands}")
        if 0.0 not in [float(c) for c in cands]:
            raise ValueError(f"{name} must include 0 (the unsteered baseline), got {tuple(cands)}")
        if len(set(cands)) != len(cands) or len(cands) < 2:
            raise ValueError(f"{name} need 0 and at least one other strength, without duplicates: {tuple(cands)}")
        if self.max_degenerate_share is not None and not 0 <= self.max_degenerate_share <= 1:
            raise ValueError(f"max_degenerate_share must lie in [0, 1], got {self.max_degenerate_share}")
        for attr in ("max_new_tokens", "batch_size"):
            if getattr(self, attr) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if self.site not in SITES or self.scope not in SCOPES:
            raise ValueError(f"site must be one of {SITES} and scope one of {SCOPES}, got {self.site!r}, "
                             f"{self.scope!r}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")

    def candidates(self, scale: StrengthScale) -> list[float]:
        """Sorted candidate strengths in the scale's units."""
        if self.strengths is not None:
            return sorted(float(s) for s in self.strengths)
        if scale.units == "resid":  # s is the ratio itself
            return sorted(float(r) for r in self.ratios)
        return sorted(float(f"{scale.strength_for_ratio(r):.6g}") for r in self.ratios)
