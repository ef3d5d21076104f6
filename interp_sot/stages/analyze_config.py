"""Settings of the analyze stage (:mod:`interp_sot.stages.analyze`): which contrasts are estimated and how.
Pure Python (no pandas): ``interp-sot analyze`` derives its flags from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp_sot.analysis.policies import MissingPolicy, UnfittablePolicy


@dataclass(frozen=True)
class AnalyzeConfig:
    """Which contrasts are estimated and how."""

    baseline: float = 0.0
    """Reference strength of the regressions."""
    treated: float = 10.0
    """Strength contrasted with the baseline in the mediation and the plot."""
    behaviours: tuple[str, ...] | None = None
    """Outcomes besides ``correct``; None: a run's marker and judge columns, or every numeric column of a table."""
    mediators: tuple[str, ...] | None = None
    """Mediators; None: the cognitive behaviours present; () skips the mediation."""
    control_outcomes: tuple[str, ...] | None = ("correct",)
    """Outcomes of the control contrast; None: ``correct`` and every behaviour the control runs hold."""
    cluster: str | None = None
    """Cluster column of the SEs (None: problem_id, the paper's task-level clustering)."""
    bootstrap: int = 2000
    """Cluster-bootstrap replicates over problems: the mediation's (0: delta method only) and the intervals of the
    accuracy per feature and the behaviour rates (0: none)."""
    seed: int = 0
    """Bootstrap seed."""
    length_control: bool = True
    """Control for log(trace length)."""
    missing: MissingPolicy = "error"
    """Rows with missing values: fail (``error``) or drop them (``drop``)."""
    on_unfittable: UnfittablePolicy = "error"
    """An outcome that is constant or cannot be fitted: fail, or list it with the reason under ``skipped``."""
    plot: bool = True
    """Write ``analysis.png`` (needs matplotlib, the ``plot`` extra)."""

    def __post_init__(self) -> None:
        for name in ("behaviours", "mediators", "control_outcomes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.bootstrap < 0:
            raise ValueError(f"AnalyzeConfig.bootstrap must be >= 0, got {self.bootstrap}")
        if self.missing not in ("error", "drop") or self.on_unfittable not in ("error", "skip"):
            raise ValueError("AnalyzeConfig: missing is 'error' or 'drop', on_unfittable 'error' or 'skip'")
