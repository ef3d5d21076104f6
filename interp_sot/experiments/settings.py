"""The settings of a steering sweep: how to sample (``GenerationSettings``) and where to steer, how to prompt and
how to score (``SweepConfig``).

Pure Python (no torch): the command line derives its flags from these fields (:mod:`interp_sot.flags`), and
``interp-sot --help`` must not load torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from interp_sot.steering.sites import Scope, Site
from interp_sot.tasks.countdown.answers import ANSWER_RULES, AnswerRule
from interp_sot.tasks.countdown.presets import TaskPreset, get_preset
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import PromptSpec, PromptStyle


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings; the defaults are the paper's temperature and the public reproduction's rest."""

    temperature: float = 0.6
    """Paper: 0.6."""
    top_p: float = 0.95
    """Public reproduction: 0.95 (the paper is silent)."""
    top_k: int = 0
    """0 disables top-k. Set explicitly because transformers otherwise falls back to the model's default (often 50)."""
    max_new_tokens: int = 4096
    """Public reproduction: 4,096."""
    do_sample: bool = True
    """False: greedy decoding (temperature/top_p/top_k ignored); deterministic, used by tests."""
    seed: int = 0
    """Base seed; each batch is seeded from it and its first row's key."""
    stop_strings: tuple[str, ...] = ("</answer>",)
    """Generation of a row stops once it writes one of these (its text is cut right after it)."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))


@dataclass(frozen=True)
class SweepConfig:
    """Where and how to steer, prompt and score (everything but the rows themselves)."""

    layer: int
    """Decoder layer whose residual stream is steered (paper: 15, i.e. sae-lens ``blocks.15.hook_resid_post``)."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    site: Site = "resid_post"
    """``"resid_post"`` (output of ``layer``) or ``"resid_pre"`` (its input)."""
    scope: Scope = "all"
    """``"all"`` steers prompt and generated tokens (the paper: "every generation step"); ``"generated"`` only new
    ones."""
    layers_path: str | None = None
    """Dotted path of the decoder layer list for architectures ``steer`` does not recognise."""
    prompt_style: PromptStyle = "tinyzero"
    """``"tinyzero"`` (TinyZero's base prompt), ``"chat"`` (the tokenizer's chat template) or ``"fewshot"``
    (``shots`` then the question; ``tasks.countdown.presets``)."""
    shots: tuple[CountdownProblem, ...] = ()
    """Few-shot examples of the ``fewshot`` style; never among the problems run (checked before generating)."""
    question_template: str | None = None
    """The prompting arm's instruction: text with a ``{problem}`` field that replaces each question (None: none)."""
    batch_size: int = 16
    """Rows per ``generate`` call (mix of strengths/features/problems)."""
    boxed_fallback: bool = False
    """Score the last ``\\boxed{}`` when no ``<answer>`` tag exists (the public reproduction did)."""
    answer_rule: AnswerRule = "last_tag"
    """Answer extraction: ``"last_tag"`` (last complete ``<answer>`` anywhere) or ``"tinyzero"`` (TinyZero's rule:
    last ``<answer>`` on the completion's last line). Part of every record's settings: it decides ``correct``."""

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        object.__setattr__(self, "shots", tuple(self.shots))
        PromptSpec(self.prompt_style, self.shots, self.question_template)  # validates the three together
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.answer_rule not in ANSWER_RULES:
            raise ValueError(f"answer_rule must be one of {ANSWER_RULES}, got {self.answer_rule!r}")

    @classmethod
    def for_task(cls, task: TaskPreset | str, **fields: Any) -> SweepConfig:
        """A config asking and scoring ``task`` (a preset or its name): its prompt style, shots, answer rule and stop
        strings; ``fields`` give the rest (``layer``, ``generation``, ``batch_size`` ...). The preset's stop strings
        replace the generation's."""
        from dataclasses import replace

        preset = get_preset(task) if isinstance(task, str) else task
        generation = replace(fields.pop("generation", GenerationSettings()), stop_strings=preset.stop_strings)
        return cls(generation=generation, prompt_style=preset.prompt_style, answer_rule=preset.answer_rule,
                   shots=preset.shots, **fields)

    @property
    def prompt_spec(self) -> PromptSpec:
        """What builds this sweep's prompts (``build_prompt`` accepts it as the style)."""
        return PromptSpec(self.prompt_style, self.shots, self.question_template)

    def settings(self) -> dict[str, Any]:
        """What every record stores and a resumed run must match (``batch_size`` is stored separately)."""
        d = asdict(self)
        d.pop("batch_size")
        d["generation"]["stop_strings"] = list(self.generation.stop_strings)
        d["shots"] = [shot.to_dict() for shot in self.shots]  # JSON's form, so a resumed run compares equal
        return d
