"""Flags shared by ``interp-sot steer``, ``controls`` and ``dose``, and what they print.

Every flag here is a field of the config it sets (:mod:`interp_sot.flags`): the model, SAE and problems
(:mod:`interp_sot.stages.sources`), the steering site and prompting (``SweepConfig``), sampling
(``GenerationSettings``), units, coding and what follows a run (:mod:`interp_sot.stages.run_options`). The work
and its checks live in ``stages.run_steer`` / ``run_controls`` / ``run_dose``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING, TypedDict

from interp_sot.errors import bad_input
from interp_sot.experiments.settings import GenerationSettings, SweepConfig
from interp_sot.flags import UNSET, add_flags, flag_values, from_flags
from interp_sot.stages.planning import Planned, PlanOptions
from interp_sot.stages.run_options import CodingOptions, FinishOptions, UnitsOptions
from interp_sot.stages.sources import ModelSource, ProblemSource, SaeSource
from interp_sot.steering.units import STRENGTH_UNITS, units_help
from interp_sot.tasks.countdown.presets import PRESETS

if TYPE_CHECKING:
    from interp_sot.stages.launch import Launched

STEERING_FIELDS = ("layer", "site", "scope", "layers_path")
"""``SweepConfig`` fields set in the "model and directions" group (the rest are prompting and batching)."""
PROMPTING_FIELDS = ("prompt_style", "answer_rule", "boxed_fallback", "batch_size")


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and directions")
    add_flags(g, ModelSource)
    add_flags(g, SweepConfig, only=STEERING_FIELDS, defaults={"layer": UNSET})
    add_flags(g, SaeSource)
    add_flags(g, UnitsOptions, aliases={"units": ("--norm",)}, choices={"units": list(STRENGTH_UNITS)},
              help={"units": units_help()})


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
    add_flags(g, FinishOptions)


def add_coding_args(p: argparse.ArgumentParser) -> None:
    """LLM-judge behaviour coding of every trace (optional)."""
    add_flags(p.add_argument_group("behaviour coding (optional)"), CodingOptions, repeat=("prompt_file",),
              metavar={"prompt_file": "KIND=PATH"})


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


class Sources(TypedDict):
    problems: ProblemSource
    model: ModelSource
    sae: SaeSource
    units: UnitsOptions


class RunOptions(TypedDict):
    coding: CodingOptions
    finish: FinishOptions
    plan: PlanOptions


def sources(args: argparse.Namespace) -> Sources:
    """The request fields every generating command shares, from its flags."""
    return {"problems": from_flags(ProblemSource, args), "model": from_flags(ModelSource, args),
            "sae": from_flags(SaeSource, args), "units": from_flags(UnitsOptions, args)}


def run_options(args: argparse.Namespace) -> RunOptions:
    """The request fields of a steer or controls run besides its sources: coding, finish, plan."""
    return {"coding": from_flags(CodingOptions, args), "finish": from_flags(FinishOptions, args),
            "plan": plan_options(args)}


def add_plan_args(p: argparse.ArgumentParser) -> None:
    add_flags(p.add_argument_group("plan (time and memory)"), PlanOptions)


def plan_options(args: argparse.Namespace) -> PlanOptions:
    return from_flags(PlanOptions, args)


def show_plan(planned: Planned) -> None:
    print(f"plan: {planned.what}")
    print(planned.plan.describe())


def show(launched: Launched) -> int:
    """Print what a steer or controls run did: its plan (``--plan``), or its report's summary."""
    if launched.planned is not None:
        show_plan(launched.planned)
    elif launched.concluded is not None:
        files = next(iter(launched.concluded.reports.values()))
        print(files.summary.read_text())
        print(f"report: {files.summary.parent}")
    return 0
