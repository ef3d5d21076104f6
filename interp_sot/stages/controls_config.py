"""Settings of a control run (:mod:`interp_sot.stages.controls`): which control features are drawn and how each
is steered. Pure Python (no torch): ``interp-sot controls`` and the demo derive their settings from these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ControlMode = Literal["max_act", "matched"]
"""How control features are steered: at a multiple of their max activation (the paper), or at the picked
feature's added-vector norms (like with like)."""


@dataclass(frozen=True)
class ControlsConfig:
    """Which control features are drawn and how each is run (the paper: 300 + 300, 2 x max act, 16 problems)."""

    n_controls: int = 300
    """Features per group."""
    seed: int = 0
    """Seed of the feature draw and of each feature's problem draw."""
    strength_factor: float = 2.0
    """Strength = factor x the feature's max activation on the screening corpus (SAE units)."""
    exclude: tuple[int, ...] = ()
    """Features never drawn (the steered feature)."""
    problems_per_feature: int = 16
    """Problems each control feature is steered on."""
    position_column: str = "onset_share"
    """The sentence-onset share that defines the conversational pool."""
    position_threshold: float = 0.5
    """Conversational pool: onset share above this."""
    mode: ControlMode = "max_act"
    """``max_act``: each control at ``strength_factor`` x its max activation (the paper); ``matched``: each control
    at every one of ``matched_norms``, with unit-norm directions, so that the picked feature and its controls add
    vectors of the same length at each strength (``stages.strengths``)."""
    matched_norms: tuple[float, ...] = ()
    """``matched`` mode: the picked feature's signed added-vector norms, one per non-zero sweep strength."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(int(f) for f in self.exclude))
        object.__setattr__(self, "matched_norms", tuple(float(x) for x in self.matched_norms))
        if self.n_controls < 1 or self.problems_per_feature < 1:
            raise ValueError("ControlsConfig needs n_controls >= 1 and problems_per_feature >= 1")
        if not self.strength_factor > 0:
            raise ValueError(f"ControlsConfig.strength_factor must be > 0, got {self.strength_factor}")
        if self.mode not in ("max_act", "matched"):
            raise ValueError(f"ControlsConfig.mode must be 'max_act' or 'matched', got {self.mode!r}")
        norms = self.matched_norms
        if self.mode == "matched" and (not norms or any(not math.isfinite(x) or x == 0 for x in norms)
                                       or len(set(norms)) != len(norms)):
            raise ValueError("ControlsConfig.mode='matched' needs matched_norms: distinct, finite, non-zero signed "
                             f"norms of the picked feature's added vectors (got {norms})")
        if self.mode == "max_act" and norms:
            raise ValueError("ControlsConfig.matched_norms is only used with mode='matched'")

    @property
    def units(self) -> Literal["unit", "sae"]:
        """The units control strengths are in: unit-norm directions for ``matched`` (strength = added norm), SAE
        units for ``max_act`` (strength = factor x max activation)."""
        return "unit" if self.mode == "matched" else "sae"
