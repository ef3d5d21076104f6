"""Flags and input loading shared by ``interp-sot steer``, ``controls`` and ``dose``.

Every flag here is a field of the config it sets (:mod:`interp_sot.flags`): the model, SAE and problems
(:mod:`interp_sot.stages.sources`), the steering site and prompting (``SweepConfig``), sampling
(``GenerationSettings``); the functions turn parsed flags back into those configs and run the cheap checks
before anything heavy loads. Also the ``--plan`` flags (used by ``interp-sot stats`` too): print the time/memory
plan, or refuse a run that cannot fit."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.errors import FlagError, InterpSotError, shorten
from interp_sot.experiments.settings import GenerationSettings, SweepConfig
from interp_sot.flags import UNSET, add_flags, flag_values, from_flags, parse_floats
from interp_sot.stages.planning import PlanOptions, model_shape
from interp_sot.stages.sources import ModelSource, ProblemSource, SaeSource, model_not_found
from interp_sot.steering.units import STRENGTH_UNITS, get_strength_unit, units_help
from interp_sot.tasks.countdown.presets import PRESETS

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

    from interp_sot.experiments.dose import DoseResult
    from interp_sot.features.stats import FeatureStats
    from interp_sot.plan import GenerationPlan, StatsPlan
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer
    from interp_sot.stages.steer import CodingConfig
    from interp_sot.tasks.countdown.problems import CountdownProblem
    from interp_sot.tasks.countdown.prompts import PromptSpec

__all__ = ["model_not_found", "model_shape", "parse_floats"]

STEERING_FIELDS = ("layer", "site", "scope", "layers_path")
"""``SweepConfig`` fields set in the "model and directions" group (the rest are prompting and batching)."""
PROMPTING_FIELDS = ("prompt_style", "answer_rule", "boxed_fallback", "batch_size")


@contextlib.contextmanager
def bad_input(what: str) -> Iterator[None]:
    """Turn a ``ValueError`` raised while a command reads what the user named (a flag's file, a config built from
    flags) into an :class:`InterpSotError` prefixed by ``what``: there it can only mean bad input. Used around input
    reading alone, never around the work itself, where a ``ValueError`` is a bug and keeps its traceback."""
    try:
        yield
    except InterpSotError:
        raise
    except ValueError as err:
        raise InterpSotError(f"{what}: {err}" if what else str(err)) from err


def parse_strengths(args: argparse.Namespace, flag: str = "--strengths", dose: DoseResult | None = None) -> list[float]:
    """``--strengths`` as numbers, or ``auto:N``: N strengths (0 included) over the coherent range that a finished
    ``interp-sot dose`` run (``--dose DIR``; ``dose``: that run, when the caller read it already) measured;
    ``--units`` defaults to that run's units."""
    text = str(args.strengths).strip()
    if not text.startswith("auto:"):
        return parse_floats(text, flag)
    try:
        n = int(text.removeprefix("auto:"))
    except ValueError as err:
        raise FlagError(f"{flag}: 'auto:N' needs an integer N, got {text!r}") from err
    dose = dose if dose is not None else read_dose_flag(args)
    if dose is None:
        raise FlagError(f"{flag} {text} needs --dose DIR (a finished `interp-sot dose` run of the feature)")
    from interp_sot.stages.dose import dose_strengths

    with bad_input(f"--dose {shorten(args.dose)}"):
        if args.units is None:
            args.units = dose.units
        features = [x for x in str(getattr(args, "features", "") or "").split(",") if x.strip()]
        return dose_strengths(dose, n, args.units, feature=int(features[0]) if len(features) == 1 else None)


def read_dose_flag(args: argparse.Namespace) -> DoseResult | None:
    """The finished dose run ``--dose`` names, or None without the flag."""
    if not getattr(args, "dose", None):
        return None
    from interp_sot.stages.dose import read_dose

    with bad_input(f"--dose {shorten(args.dose)}"):
        return read_dose(args.dose)


def check_dose(args: argparse.Namespace, dose: DoseResult | None, problems: list[CountdownProblem],
               strengths: list[float]) -> None:
    """With ``--dose DIR`` (``dose``: that run), before anything loads: refuse evaluation problems the dose run was
    tuned on (same id or same task), and strengths outside the coherent range it measured (the steer stage checks
    both again)."""
    if dose is None:
        return
    from interp_sot.experiments.dose import check_held_out, check_in_range

    with bad_input(f"--dose {shorten(args.dose)}"):
        check_held_out(dose, problems)
        check_in_range(dose, strengths, units=args.units or dose.units)


def units_of(args: argparse.Namespace, default: str) -> str:
    """``--units`` (or ``default``), checked against the registry."""
    units = str(args.units or default)
    with bad_input("--units"):
        get_strength_unit(units)
    return units


def check_stats_flag(args: argparse.Namespace, units: str | None) -> None:
    """With units that read max activations: ``--stats`` names a finished stats folder (before anything loads)."""
    if units is None or not get_strength_unit(units).needs_max_act:
        return
    if not args.stats:
        raise FlagError(f"--units {units} needs --stats DIR (the screening statistics: each feature's max activation)")
    from interp_sot.features.stats import STATS_FILE
    from interp_sot.stages.rundir import require_complete

    folder = Path(args.stats).expanduser()
    if not (folder / STATS_FILE).is_file():
        raise InterpSotError(f"--stats {shorten(args.stats)}: no {STATS_FILE} there (give the folder of a finished "
                             "`interp-sot stats` run)")
    require_complete(folder, "--stats")


def load_feature_stats(args: argparse.Namespace, units: str) -> FeatureStats | None:
    """``FeatureStats`` from ``--stats`` when ``units`` read max activations, else None."""
    if not get_strength_unit(units).needs_max_act:
        return None
    check_stats_flag(args, units)
    from interp_sot.features.stats import FeatureStats

    with bad_input(f"--stats {shorten(args.stats)}"):
        return FeatureStats.load(Path(args.stats))


def check_features(sae: SparseAutoencoder | torch.Tensor, features: list[int], units: str,
                   stats: FeatureStats | None) -> None:
    """Refuse a feature the SAE lacks right after the SAE loads, before the model does (``stats``: what
    :func:`load_feature_stats` read, for units that need max activations)."""
    from interp_sot.stages.strengths import check_features as check

    with bad_input("--features"):
        check(sae, features, units, stats)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and directions")
    add_flags(g, ModelSource)
    add_flags(g, SweepConfig, only=STEERING_FIELDS, defaults={"layer": UNSET})
    add_flags(g, SaeSource)
    g.add_argument("--units", "--norm", dest="units", choices=list(STRENGTH_UNITS), default=None,
                   help=f"strength units (steering.units registry): {units_help()} (--norm is the old name)")
    g.add_argument("--stats", default=None,
                   help="stats folder (`interp-sot stats`): max activations for --units max_act")


def add_problem_args(g: argparse._ArgumentGroup, **defaults: object) -> None:
    """The problem source's flags (``defaults``: this command's own defaults, e.g. fewer problems)."""
    add_flags(g, ProblemSource, choices={"task": sorted(PRESETS)}, defaults=defaults)


def add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problems, prompting and sampling")
    add_problem_args(g)
    add_flags(g, SweepConfig, only=PROMPTING_FIELDS, aliases={"answer_rule": ("--scorer",)},
              defaults={"prompt_style": None, "answer_rule": None},
              help={"prompt_style": "None: the task's.", "answer_rule": "None: the task's."})
    g.add_argument("--question-template", default=None, metavar="FILE",
                   help="prompting arm: a text file with a {problem} placeholder that replaces each question "
                   "(e.g. interp_sot/data/prompts/society_of_thought.txt); part of the run identity")
    add_flags(g, GenerationSettings, defaults={"stop_strings": None}, aliases={"stop_strings": ("--stop",)},
              help={"stop_strings": "None: the task's."})
    g.add_argument("--greedy", dest="do_sample", action="store_false", help="greedy decoding (= --no-do-sample)")
    g.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    g.add_argument("--no-report", action="store_true")
    g.add_argument("--no-measure", action="store_true",
                   help="skip the measure stage before the report (coherence of every trace, and SAE diversity when "
                        "the directions come from an SAE; `interp-sot measure` runs it later)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the report")


def add_coding_args(p: argparse.ArgumentParser) -> None:
    """LLM-judge behaviour coding of every trace (``stages.steer.CodingConfig``), optional."""
    from interp_sot.judging.spec import SPEC_HELP

    g = p.add_argument_group("behaviour coding (optional)")
    g.add_argument("--judge", default=None, help=f"code every trace's behaviours with this judge; {SPEC_HELP}")
    g.add_argument("--schemes", default="conversational,bales,cognitive", help="behaviour coding schemes")
    g.add_argument("--perspectives", action="store_true",
                   help="with --judge: also analyse each trace's perspectives (BFI-10, expertise)")
    g.add_argument("--prompt-file", action="append", default=[], metavar="KIND=PATH",
                   help="with --judge: replace a judge prompt by a text file (repeatable); KIND: "
                        "behaviours_conversational, behaviours_bales_ipa, behaviours_cognitive, perspectives")


def model_source(args: argparse.Namespace) -> ModelSource:
    return from_flags(ModelSource, args)


def sae_source(args: argparse.Namespace) -> SaeSource:
    return from_flags(SaeSource, args)


def load_problems(args: argparse.Namespace) -> list[CountdownProblem]:
    return from_flags(ProblemSource, args).load()


def check_sae_flags(args: argparse.Namespace) -> None:
    """Exactly one SAE source, and a local one that exists (checked before anything loads)."""
    sae_source(args).check()


def load_decoder(args: argparse.Namespace) -> SparseAutoencoder | torch.Tensor:
    """W_dec [d_sae, d_model] or an SAE object, from whichever source the flags name (exactly one)."""
    return sae_source(args).load(args.layer)


def load_run_model(args: argparse.Namespace) -> tuple[CausalLM, Tokenizer]:
    return model_source(args).load()


def model_config_and_tokenizer(args: argparse.Namespace) -> tuple[PretrainedConfig, Tokenizer]:
    """``--model``'s config and tokenizer, read without its weights."""
    return model_source(args).config_and_tokenizer()


def check_prompt_context(args: argparse.Namespace, problems: list[CountdownProblem]) -> int:
    """Refuse a problem whose prompt does not fit ``--model``'s context (naming its id and token count) from the
    config and tokenizer alone; the longest prompt in tokens."""
    from interp_sot.stages.bounds import check_prompts_fit, context_length

    config, tokenizer = model_config_and_tokenizer(args)
    return check_prompts_fit(problems, prompt_spec(args), tokenizer, context_length(config))


def coding_config(args: argparse.Namespace) -> CodingConfig | None:
    """LLM behaviour coding from --judge/--schemes (None without --judge); checked before any generation."""
    if not args.judge:
        if args.perspectives or args.prompt_file:
            raise FlagError("--perspectives and --prompt-file need --judge (an LLM judge reads the traces)")
        return None
    from interp_sot.judging.prompts.files import load_prompt_files
    from interp_sot.stages.steer import CODING_PROMPTS, CodingConfig

    try:
        prompts = tuple(load_prompt_files(args.prompt_file, CODING_PROMPTS).values())
    except ValueError as err:
        raise FlagError(f"--prompt-file: {err}") from err
    try:
        return CodingConfig(args.judge, tuple(args.schemes.split(",")), perspectives=args.perspectives,
                            prompts=prompts)
    except ValueError as err:
        raise FlagError(f"--judge/--schemes: {err}") from err


def report_config(args: argparse.Namespace) -> Any:
    from interp_sot.stages.report import ReportConfig

    try:
        import matplotlib  # noqa: F401

        plot = True
    except ImportError:
        print("matplotlib not installed: report without plot (pip install 'interp-sot[plot]')")
        plot = False
    return ReportConfig(plot=plot)


def measure_inputs(args: argparse.Namespace, with_sae: bool) -> dict[str, Any]:
    """The measure stage's input identity (model, and the SAE when it re-encodes traces), for every command."""
    from interp_sot.stages.identity import model_identity, sae_identity

    sae = sae_identity(args.sae_path or args.sae_release, args.sae_id) if with_sae else None
    return {"model": model_identity(args.model), "sae": sae}


def measure_and_report(args: argparse.Namespace, model: Any, tokenizer: Any, sae: Any, result: Any) -> None:
    """The end of ``steer`` / ``controls``: measure every trace of the finished run (coherence; SAE re-encoding too
    when ``sae`` is an SAE, not a bare decoder matrix) so the report shows coherence by strength, then the report.
    ``--no-measure`` skips the first, ``--no-report`` both."""
    if args.no_report:
        return
    from interp_sot.stages.analyze import AnalyzeConfig
    from interp_sot.stages.conclude import MeasureError, conclude_run
    from interp_sot.stages.measure import MeasureConfig

    has_sae = sae is not None and hasattr(sae, "encode")
    report = report_config(args)
    try:  # a refused or failing measure is an error (exit 2), never a warning
        done = conclude_run(model, tokenizer, sae, result.out,
                            measure=None if args.no_measure else MeasureConfig(layer=args.layer, diversity=has_sae),
                            analyze=AnalyzeConfig(mediators=(), on_unfittable="skip", bootstrap=args.n_boot,
                                                  plot=report.plot),
                            report=report, inputs=measure_inputs(args, has_sae))
    except MeasureError as err:
        raise InterpSotError(f"the run's records are complete, but measuring its traces failed: {err.__cause__} "
                             "(rerun with --no-measure for a report without coherence)") from err
    files = next(iter(done.reports.values()))
    print(files.summary.read_text())
    print(f"report: {files.summary.parent}")


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The task preset's sweep config with every flag the user gave on top of it."""
    with bad_input(""):  # the configs check the sampling and batching flags
        base = SweepConfig.for_task(args.task, layer=args.layer)
        sampling = flag_values(GenerationSettings, args)
        if sampling["stop_strings"] is None:
            sampling["stop_strings"] = base.generation.stop_strings
        chosen = {k: v for k, v in flag_values(SweepConfig, args).items()
                  if k in STEERING_FIELDS + PROMPTING_FIELDS and v is not None}
        return replace(base, generation=GenerationSettings(**sampling), question_template=question_template(args),
                       **chosen)


def question_template(args: argparse.Namespace) -> str | None:
    """The text of ``--question-template`` (checked for its ``{problem}`` placeholder), or None."""
    from interp_sot.tasks.countdown.prompts import read_question_template

    if args.question_template is None:
        return None
    with bad_input("--question-template"):
        return read_question_template(args.question_template)


def prompt_spec(args: argparse.Namespace) -> PromptSpec:
    """What builds this run's prompts (the same ``PromptSpec`` the sweep uses)."""
    return sweep_config(args).prompt_spec


def add_plan_args(p: argparse.ArgumentParser) -> None:
    add_flags(p.add_argument_group("plan (time and memory)"), PlanOptions)


def plan_options(args: argparse.Namespace) -> PlanOptions:
    return from_flags(PlanOptions, args)


def device_bytes(args: argparse.Namespace, device: str, resident_bytes: int = 0) -> int | None:
    """Memory a run may plan on (``PlanOptions.device_bytes`` of the flags)."""
    return plan_options(args).device_bytes(device, resident_bytes)


def plan_generation_run(args: argparse.Namespace, rows: int, problems: list[CountdownProblem]) -> bool:
    """With ``--plan``: print the plan of generating ``rows`` completions and return True (the command then exits).
    Otherwise raise PlanError when a batch cannot fit the device memory, before any weights are loaded or anything
    is written (so the rerun with the suggested ``--batch-size`` starts clean); False when the run may go on."""
    from interp_sot.stages.planning import generation_plan

    planned = generation_plan(plan_options(args), model_source(args), problems, prompt_spec(args), rows=rows,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    return planned is not None and show_or_require_fit(args, *planned)


def show_or_require_fit(args: argparse.Namespace, plan: GenerationPlan | StatsPlan, what: str) -> bool:
    """``--plan``: print ``what`` and the plan, True (the command exits 0); else PlanError if it cannot fit, False."""
    from interp_sot.plan import require_fit

    if args.plan:
        print(f"plan: {what}")
        print(plan.describe())
        return True
    require_fit(plan)
    return False
