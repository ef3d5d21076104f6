"""``interp-sot dose`` as one call: the coherent strength range of one SAE feature, checked against the model's
config and tokenizer before the SAE or the weights load (:func:`run_dose`). Pure Python at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from interp_sot.errors import bad_input
from interp_sot.experiments.dose_config import DoseConfig
from interp_sot.stages.run_options import SourcesRequest
from interp_sot.stages.sources import ProblemSource

if TYPE_CHECKING:
    from interp_sot.experiments.dose import DoseResult
    from interp_sot.tasks.countdown.prompts import PromptSpec, PromptStyle

DEFAULT_UNITS = "resid"
"""A dose run's units without ``--units``: fractions of the median residual norm, comparable across models."""


def dose_prompt(task: str, style: PromptStyle | None = None) -> PromptSpec:
    """The task preset's prompt, ``style`` replacing its style."""
    from interp_sot.experiments.settings import SweepConfig

    with bad_input("--prompt-style"):
        spec = SweepConfig.for_task(task, layer=0).prompt_spec
        return replace(spec, style=style) if style else spec


@dataclass(frozen=True)
class DoseRequest(SourcesRequest):
    """A dose run as the user asks for it: nothing is loaded until :func:`run_dose`."""

    out: str
    """Run directory (dose.json, dose_traces.jsonl, dose.png)."""
    feature: int
    """SAE feature id."""
    config: DoseConfig
    """Candidates, tolerance, sampling, and the steered layer, site and scope."""
    prompt: PromptSpec
    """What builds the prompts (:func:`dose_prompt`); ``config.add_special_tokens`` must follow it."""
    problems: ProblemSource = field(default_factory=lambda: ProblemSource(n_problems=8), kw_only=True)


def run_dose(request: DoseRequest) -> DoseResult:
    """Check flags, input paths, the prompts' fit in the context, the output folder and the run's identity from
    the model's config and tokenizer alone, then load the SAE (a bad feature fails here), then the model, and find
    (or read back) the range (``stages.dose.dose_stage``)."""
    from interp_sot.stages.bounds import check_texts_fit, context_length
    from interp_sot.stages.dose import STAGE, dose_identity, dose_stage
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.launch import check_features
    from interp_sot.stages.rundir import check_identity
    from interp_sot.stages.strengths import run_prompts

    config = request.config
    units = request.units.resolve(DEFAULT_UNITS)
    request.sae.check()
    request.units.check(units)
    problems = request.problems.load()
    model_config, tokenizer = request.model.config_and_tokenizer()
    with bad_input("--prompt-style"):
        prompts = run_prompts(problems, request.prompt, tokenizer, n=None)
    check_texts_fit(prompts, tokenizer, context_length(model_config), config.max_new_tokens, config.add_special_tokens)
    inputs = {"model": model_identity(request.model.model)}
    check_identity(request.out, STAGE, dose_identity(config, request.feature, units, prompts, problems), inputs)
    sae, stats = request.sae.load(config.layer), request.units.load_stats(units)
    check_features(sae, [request.feature], units, stats)
    model, tokenizer = request.model.load()
    return dose_stage(model, tokenizer, sae, request.feature, prompts, config, request.out, units=units, stats=stats,
                      inputs=inputs, problems=problems)
