"""Settings of the screen: how contexts are judged (``RatioConfig``) and the two-criterion filter
(``FilterConfig``). Pure Python (no torch, no pandas): ``interp-sot screen`` derives its flags from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class RatioConfig:
    """How contexts are chosen and judged."""

    k: int = 50
    """Top contexts per feature that enter the ratio (the paper: ~50); fewer if the stats hold fewer."""
    score_threshold: float = 50.0
    """A context counts as conversational when its 0-100 judge score is >= this (the paper: 50)."""
    batch_size: int = 10
    """Contexts per judge call. 1 = one call per context; larger amortises the instructions over more contexts."""
    retries: int = 2
    """Corrective re-asks per batch when the reply is not the requested JSON."""
    on_invalid: Literal["raise", "skip"] = "skip"
    """A batch that never yields valid JSON: abort, or leave its contexts unjudged (counted; a rerun retries)."""
    confidence: float = 0.95
    """Level of each ratio's Wilson interval over its judged contexts (``ratio_lo`` / ``ratio_hi``); the ranking
    uses its lower bound."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"RatioConfig.k must be >= 1, got {self.k}")
        if not 0 <= self.score_threshold <= 100:
            raise ValueError(f"RatioConfig.score_threshold must be in [0, 100], got {self.score_threshold}")
        if self.batch_size < 1 or self.retries < 0:
            raise ValueError("RatioConfig needs batch_size >= 1 and retries >= 0")
        if not 0 < self.confidence < 1:
            raise ValueError(f"RatioConfig.confidence must be in (0, 1), got {self.confidence}")


POSITION_COLUMNS = {
    "onset": "onset_share",
    "first_n": "first_n_share",
    "topk_onset": "topk_onset_share",
}
"""Filter criterion name -> the table column it reads."""


@dataclass
class FilterConfig:
    """The two-criterion filter (strict inequalities, as the paper states them)."""

    ratio_threshold: float = 0.5
    """Keep features with conversation ratio > this (the paper: 50%)."""
    position_criterion: Literal["onset", "first_n", "topk_onset"] = "onset"
    """Which "activation in the first four tokens" definition the second criterion uses (see module doc)."""
    position_threshold: float = 0.5
    """Keep features whose chosen position share is > this (the paper: 50%)."""

    def __post_init__(self) -> None:
        if self.position_criterion not in POSITION_COLUMNS:
            raise ValueError(
                f"FilterConfig.position_criterion must be one of {sorted(POSITION_COLUMNS)}, "
                f"got {self.position_criterion!r}"
            )
        for name in ("ratio_threshold", "position_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"FilterConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def position_column(self) -> str:
        return POSITION_COLUMNS[self.position_criterion]
