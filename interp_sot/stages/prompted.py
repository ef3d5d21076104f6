"""Stage ``prompted``: the prompting arm, the simplest alternative every steering result is compared with.

The unsteered model answers the evaluation problems with an instruction in each question (a question template,
e.g. "reason as a conversation between several distinct voices ..."; ``data/prompts/society_of_thought.txt`` is
the default, any edited copy can replace it). AxBench found that prompting beats SAE steering; a researcher's first
question about a steering effect is whether asking for the behaviour does the same.

It is a ``steer`` run with no steering (a zero direction at strength 0, feature label ``prompted``) and the template
in its sweep settings, so the template's text is part of the run identity and of every record, the run resumes
like any sweep, the ``measure`` stage scores its coherence, and the ``analyze`` stage shows it as condition
``prompted`` (``--prompted DIR``) beside the steered strengths and the controls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.analysis.conditions import PROMPTED
from interp_sot.experiments.sweep import SweepConfig
from interp_sot.layers import residual_width
from interp_sot.stages.steer import SweepResult, steer_stage
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import check_question_template

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer


def prompted_config(config: SweepConfig, template: str) -> SweepConfig:
    """The sweep's config with ``template`` (must hold ``{problem}`` once) asking every question."""
    return replace(config, question_template=check_question_template(template))


def prompted_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    problems: Sequence[CountdownProblem],
    config: SweepConfig,
    template: str,
    out: str | Path,
    *,
    inputs: Mapping[str, object] | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) the prompting arm on ``problems`` into ``out``: same sampling, task and scoring as the
    sweep ``config``, no steering, ``template`` around each question."""
    import torch

    width = residual_width(model)
    if width is None:
        raise ValueError("cannot read the model's residual width for the prompting arm's (zero) direction")
    return steer_stage(model, tokenizer, problems, {PROMPTED: torch.zeros(width)}, [0.0],
                       prompted_config(config, template), out, inputs=inputs, progress=progress)
