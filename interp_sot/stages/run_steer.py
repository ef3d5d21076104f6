"""``interp-sot steer`` as one call: a Countdown steering sweep as the user asks for it, checked before anything
heavy loads, run, then measured, analysed and reported (:func:`run_steer`).

What the user chooses is declared once, as the fields of :class:`SteerChoice` (the directions and strengths), the
sources (:mod:`interp_sot.stages.sources`), the sweep (``SweepConfig``) and the options of
:mod:`interp_sot.stages.run_options`; the command line's flags are derived from them. Pure Python at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from interp_sot.errors import FlagError, bad_input, shorten
from interp_sot.stages.run_options import SweepRequest, read_dose_flag, strength_values

if TYPE_CHECKING:
    import torch

    from interp_sot.experiments.dose import DoseResult
    from interp_sot.experiments.records import FeatureId
    from interp_sot.experiments.settings import SweepConfig
    from interp_sot.protocols import SparseAutoencoder
    from interp_sot.stages.launch import Launched
    from interp_sot.steering.spec import SteeringSpec

DEFAULT_STRENGTHS = "-10,-5,0,5,10"
"""The paper's strengths, used without ``--strengths`` or a spec."""


@dataclass(frozen=True)
class SteerChoice:
    """Which directions a sweep steers, and at which strengths."""

    features: tuple[int, ...] = ()
    """SAE feature ids (paper: 30939)."""
    direction: str | None = None
    """A custom direction file [d_model] instead of SAE features."""
    spec: str | None = None
    """A portable steering spec (steering.json, written by every steer and dose run; docs/steering_spec.md): its
    direction, layer, site and scope, and its strengths unless --strengths is given; replaces --features,
    --direction and --layer."""
    strengths: str | None = None
    """Comma-separated strengths (write --strengths=-10,...), or auto:N with --dose. None: the spec's, else
    -10,-5,0,5,10."""
    dose: str | None = None
    """A finished `interp-sot dose` run: --strengths auto:N spreads N strengths over its coherent range, and every
    strength must lie inside it."""

    def __post_init__(self) -> None:
        if self.spec and (self.features or self.direction):
            raise ValueError("--spec gives the direction: leave out --features and --direction")
        if not self.spec and bool(self.features) == bool(self.direction):
            raise ValueError("give SAE --features or one --direction file (not both)")


class SpecChoice(NamedTuple):
    """A steering spec read once: the spec and its direction per unit of s, under its label."""

    spec: SteeringSpec
    label: FeatureId
    direction: torch.Tensor

    def flags(self) -> dict[str, object]:
        """The sweep flags the spec sets (its layer, site, scope and layer path)."""
        s = self.spec
        return {"layer": s.layer, "site": s.site, "scope": s.scope, "layers_path": s.layers_path}


def read_spec_choice(path: str, layer: int | None) -> SpecChoice:
    """The spec at ``path`` and its direction; a ``layer`` the user gave that contradicts it is refused."""
    from interp_sot.steering.spec import read_spec, spec_direction

    with bad_input(f"--spec {shorten(path)}"):
        spec = read_spec(path)
        direction = spec_direction(spec)
    if layer is not None and layer != spec.layer:
        raise FlagError(f"--layer {layer} contradicts the spec's layer {spec.layer} (leave --layer out)")
    label = spec.direction.feature if spec.direction.feature is not None else Path(spec.direction.vector or "spec").stem
    return SpecChoice(spec, label, direction)


@dataclass(frozen=True)
class SteerRequest(SweepRequest):
    """A steering sweep as the user asks for it: nothing is loaded until :func:`run_steer`."""

    out: str
    """Run directory (rerun the same request to resume)."""
    sweep: SweepConfig
    """Site, prompting, sampling and batching (``SweepConfig.for_task`` with the user's settings on top)."""
    choice: SteerChoice
    spec: SpecChoice | None = None
    """``choice.spec`` read (:func:`read_spec_choice`); the sweep's layer, site and scope must be the spec's."""


def strengths_of(choice: SteerChoice, spec: SpecChoice | None, dose: DoseResult | None, units: str) -> list[float]:
    """The strengths: ``choice.strengths`` (numbers, or ``auto:N`` over the dose run's coherent range), else the
    spec's, else the paper's."""
    if choice.strengths is None and spec is not None:
        if not spec.spec.strengths:
            raise FlagError(f"--spec {shorten(choice.spec)} records no strengths: give --strengths")
        return [float(x) for x in spec.spec.strengths]
    feature = choice.features[0] if len(choice.features) == 1 else None
    text = DEFAULT_STRENGTHS if choice.strengths is None else choice.strengths
    return strength_values(text, dose, units, feature, choice.dose)


def direction_file(path: str) -> dict[FeatureId, torch.Tensor]:
    from interp_sot.steering import load_direction

    with bad_input(f"--direction {shorten(path)}"):
        d = load_direction(path)
    if d.ndim != 1:
        raise FlagError(f"--direction {path}: expected [d_model], got shape {tuple(d.shape)}")
    return {Path(path).stem: d}


def run_steer(request: SteerRequest) -> Launched:
    """Check everything the request names (flags, input paths, strengths against a dose run, prompts against the
    context, the memory plan, the output folder and the run's identity) before the SAE or the model loads, then
    run the sweep (``stages.steer``) and conclude it (``stages.launch.conclude``). ``stage.json`` is written once
    every check passed (SAE directions, known only with the model's residual norm, are compared then)."""
    choice, sweep, features = request.choice, request.sweep, list(request.choice.features)
    dose = read_dose_flag(choice.dose)
    units = request.units.resolve(dose.units if dose is not None else "unit")
    strengths = strengths_of(choice, request.spec, dose, units)
    coding = request.coding.config()
    if features:
        request.sae.check()
        request.units.check(units)
    problems = request.problems.load()
    if dose is not None:  # tuned on other problems, and inside the coherent range it measured
        from interp_sot.experiments.dose import check_held_out, check_in_range

        with bad_input(f"--dose {shorten(choice.dose)}"):
            check_held_out(dose, problems)
            check_in_range(dose, strengths, units=units)
    directions: dict[FeatureId, torch.Tensor] = {}  # SAE features: built once the model is loaded
    if request.spec is not None:
        directions = {request.spec.label: request.spec.direction}
    elif choice.direction:
        directions = direction_file(choice.direction)
    from interp_sot.stages.identity import model_identity  # torch loads from here on, after the flag checks
    from interp_sot.stages.launch import Launched, check_context, check_features, claim, conclude, plan_or_refuse
    from interp_sot.stages.steer import STAGE, steer_features, steer_identity, steer_stage

    inputs = {"model": model_identity(request.model.model)}
    check_context(request.model, problems, sweep)  # config.json and the tokenizer only
    planned = plan_or_refuse(request.plan, request.model, problems, sweep,
                             rows=len(problems) * max(len(features), 1) * len(strengths))
    if planned is not None:
        return Launched(planned=planned)
    shard = claim(request.out, STAGE, steer_identity(sweep, directions, problems, strengths, coding), inputs,
                  pending=("config.directions",) if features else ())
    sae: SparseAutoencoder | torch.Tensor | None = None
    if features:  # SAE features: directions in units, judged against this model's residual norm
        sae, stats = request.sae.load(sweep.layer), request.units.load_stats(units)
        check_features(sae, features, units, stats)
        model, tokenizer = request.model.load()
        result = steer_features(model, tokenizer, sae, problems, features, strengths, sweep, request.out,
                                units=units, stats=stats, dose=dose, coding=coding, inputs=inputs)
    else:
        model, tokenizer = request.model.load()
        if request.spec is not None:
            from interp_sot.steering.spec import check_width

            check_width(request.spec.spec, model)
        result = steer_stage(model, tokenizer, problems, directions, strengths, sweep, request.out, coding=coding,
                             inputs=inputs)
    if not shard.is_main:  # rank 0 merged the records and concludes
        return Launched(result=result)
    return Launched(result=result, concluded=conclude(request.finish, model, tokenizer, sae, request.out,
                                                      layer=sweep.layer, model_source=request.model,
                                                      sae_source=request.sae if features else None))

