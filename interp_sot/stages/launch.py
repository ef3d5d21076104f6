"""The steps every generating command takes around its stage, in one place: the checks that need the model's
config and tokenizer alone (prompts fit the context, the memory plan), claiming the run folder under torchrun,
and after the run measure -> analyze -> report (:func:`interp_sot.stages.conclude.conclude_run`).

``run_steer``, ``run_controls`` and ``run_dose`` (``stages.run_*``) call these; so does every caller of those
(the CLI, a notebook). Pure Python at import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from interp_sot.errors import InterpSotError, bad_input

if TYPE_CHECKING:
    import torch

    from interp_sot.experiments.settings import SweepConfig
    from interp_sot.experiments.sharding import Shard
    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer
    from interp_sot.stages.conclude import ConcludedRun
    from interp_sot.stages.planning import Planned, PlanOptions
    from interp_sot.stages.run_options import FinishOptions
    from interp_sot.stages.sources import ModelSource, SaeSource
    from interp_sot.stages.steer import SweepResult
    from interp_sot.tasks.countdown.problems import CountdownProblem

logger = logging.getLogger(__name__)


class Launched(NamedTuple):
    """What a generating command did: only planned (``planned``), or ran (``result``; ``concluded``: its
    measure -> analyze -> report, None with ``--no-report`` or on a torchrun rank other than 0)."""

    planned: Planned | None = None
    result: SweepResult | None = None
    concluded: ConcludedRun | None = None


def check_context(model: ModelSource, problems: Sequence[CountdownProblem], sweep: SweepConfig) -> int:
    """Refuse a problem whose prompt does not fit the model's context (naming its id and token count) from the
    config and tokenizer alone; the longest prompt in tokens."""
    from interp_sot.stages.bounds import check_prompts_fit, context_length

    config, tokenizer = model.config_and_tokenizer()
    return check_prompts_fit(problems, sweep.prompt_spec, tokenizer, context_length(config))


def plan_or_refuse(options: PlanOptions, model: ModelSource, problems: list[CountdownProblem], sweep: SweepConfig,
                   rows: int) -> Planned | None:
    """With ``options.plan``: the plan of generating ``rows`` completions (the caller shows it and stops).
    Otherwise raise PlanError when a batch cannot fit the device memory, before any weights load or anything is
    written (so the rerun with the suggested ``--batch-size`` starts clean); None when the run may go on."""
    from interp_sot.stages.planning import generation_plan, shown_or_fits

    planned = generation_plan(options, model, problems, sweep.prompt_spec, rows=rows, batch_size=sweep.batch_size,
                              max_new_tokens=sweep.generation.max_new_tokens)
    return shown_or_fits(planned, options)


def claim(out: str | Path, stage: str, identity: Mapping[str, object], inputs: Mapping[str, object],
          pending: tuple[str, ...] = ()) -> Shard:
    """This process's shard (under torchrun: one rank per process, each running whole batches); the main rank
    refuses a busy folder or another run's folder now, not after the weights load (``pending``: identity keys
    known only once the model is loaded, compared when ``stage.json`` is written)."""
    from interp_sot.experiments.sharding import join_torchrun
    from interp_sot.stages.rundir import check_identity

    shard = join_torchrun()
    if shard.is_main:
        check_identity(out, stage, dict(identity), dict(inputs), pending=pending)
    return shard


def check_features(sae: SparseAutoencoder | torch.Tensor, features: Sequence[int], units: str,
                   stats: FeatureStats | None) -> None:
    """Refuse a feature the SAE lacks right after the SAE loads, before the model does (``stats``: for units that
    read max activations)."""
    from interp_sot.stages.strengths import check_features as check

    with bad_input("--features"):
        check(sae, features, units, stats)


def has_plot() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib not installed: report without plot (pip install 'interp-sot[plot]')")
        return False
    return True


def conclude(finish: FinishOptions, model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder | torch.Tensor | None,
             out: str | Path, *, layer: int, model_source: ModelSource, sae_source: SaeSource | None
             ) -> ConcludedRun | None:
    """The end of a steer or controls run: measure every trace (coherence; SAE re-encoding too when ``sae`` is an
    SAE, not a bare decoder matrix) so the report shows coherence by strength, then analyze and report. None with
    ``finish.report`` off; ``finish.measure`` off skips the measure."""
    if not finish.report:
        return None
    from interp_sot.stages.analyze_config import AnalyzeConfig
    from interp_sot.stages.conclude import MeasureError, conclude_run
    from interp_sot.stages.identity import model_identity
    from interp_sot.stages.measure import MeasureConfig
    from interp_sot.stages.report import ReportConfig

    has_sae = sae is not None and hasattr(sae, "encode")
    inputs = {"model": model_identity(model_source.model),
              "sae": sae_source.identity() if has_sae and sae_source is not None else None}
    plot = has_plot()
    try:  # a refused or failing measure is an error (exit 2), never a warning
        return conclude_run(model, tokenizer, sae, out,
                            measure=MeasureConfig(layer=layer, diversity=has_sae) if finish.measure else None,
                            analyze=AnalyzeConfig(mediators=(), on_unfittable="skip", bootstrap=finish.n_boot,
                                                  plot=plot),
                            report=ReportConfig(plot=plot), inputs=inputs)
    except MeasureError as err:
        raise InterpSotError(f"the run's records are complete, but measuring its traces failed: {err.__cause__} "
                             "(rerun with --no-measure for a report without coherence)") from err
