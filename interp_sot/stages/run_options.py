"""What a generating command (``steer``, ``controls``, ``dose``) asks of the user besides its sources
(:mod:`interp_sot.stages.sources`): the strength units, the LLM behaviour coding and what follows the run. Each
is a small config whose fields are the command line's flags (:mod:`interp_sot.flags`).

Pure Python at import (``interp-sot --help`` builds its flags from these fields); what they load, they load
inside their methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.errors import FlagError, InterpSotError, bad_input, shorten
from interp_sot.flags import parse_floats
from interp_sot.stages.planning import PlanOptions
from interp_sot.stages.sources import ModelSource, ProblemSource, SaeSource
from interp_sot.steering.units import get_strength_unit

if TYPE_CHECKING:
    from interp_sot.experiments.dose import DoseResult
    from interp_sot.features.stats import FeatureStats
    from interp_sot.stages.steer import CodingConfig

DEFAULT_SCHEMES = ("conversational", "bales", "cognitive")


@dataclass(frozen=True)
class UnitsOptions:
    """The units a run's strengths are in, and the statistics that units reading max activations need."""

    units: str | None = None
    """Strength units (steering.units registry; --norm is the old name). None: the command's default."""
    stats: str | None = None
    """Stats folder (`interp-sot stats`): each feature's max activation, for units that read it."""

    def resolve(self, default: str) -> str:
        """``units`` (or ``default``), checked against the registry."""
        units = self.units or default
        try:
            get_strength_unit(units)
        except ValueError as err:
            raise FlagError(f"--units: {err}") from err
        return units

    def check(self, units: str) -> None:
        """With units that read max activations: ``stats`` names a finished stats folder (before anything loads)."""
        if not get_strength_unit(units).needs_max_act:
            return
        if not self.stats:
            raise FlagError(f"--units {units} needs --stats DIR (the screening statistics: each feature's max "
                            "activation)")
        from interp_sot.features.stats import STATS_FILE
        from interp_sot.stages.rundir import require_complete

        folder = Path(self.stats).expanduser()
        if not (folder / STATS_FILE).is_file():
            raise InterpSotError(f"--stats {shorten(self.stats)}: no {STATS_FILE} there (give the folder of a "
                                 "finished `interp-sot stats` run)")
        require_complete(folder, "--stats")

    def load_stats(self, units: str) -> FeatureStats | None:
        """The statistics when ``units`` read max activations, else None."""
        if not get_strength_unit(units).needs_max_act:
            return None
        self.check(units)
        from interp_sot.features.stats import FeatureStats

        try:
            return FeatureStats.load(Path(str(self.stats)))
        except ValueError as err:
            raise InterpSotError(f"--stats {shorten(self.stats)}: {err}") from err


@dataclass(frozen=True)
class CodingOptions:
    """LLM-judge behaviour coding of every trace, as the user names it (``stages.steer.CodingConfig`` runs it)."""

    judge: str | None = None
    """Code every trace's behaviours with this judge (openai:MODEL@URL, hf:PATH); None: no coding."""
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    """Behaviour coding schemes."""
    perspectives: bool = False
    """With --judge: also analyse each trace's perspectives (BFI-10, expertise)."""
    prompt_file: tuple[str, ...] = ()
    """With --judge: KIND=PATH replaces a judge prompt by a text file (repeatable, or comma-separated); KIND:
    behaviours_conversational, behaviours_bales_ipa, behaviours_cognitive, perspectives."""

    def config(self) -> CodingConfig | None:
        """The coding config (None without a judge), its prompt files read: checked before any generation."""
        if not self.judge:
            if self.perspectives or self.prompt_file:
                raise FlagError("--perspectives and --prompt-file need --judge (an LLM judge reads the traces)")
            return None
        from interp_sot.judging.prompts.files import load_prompt_files
        from interp_sot.stages.steer import CODING_PROMPTS, CodingConfig

        try:
            prompts = tuple(load_prompt_files(list(self.prompt_file), CODING_PROMPTS).values())
        except ValueError as err:
            raise FlagError(f"--prompt-file: {err}") from err
        try:
            return CodingConfig(self.judge, self.schemes, perspectives=self.perspectives, prompts=prompts)
        except ValueError as err:
            raise FlagError(f"--judge/--schemes: {err}") from err


@dataclass(frozen=True)
class FinishOptions:
    """What follows a finished steer or controls run (``stages.conclude.conclude_run``)."""

    report: bool = True
    """Analyze the run and write its report (--no-report: the records alone)."""
    measure: bool = True
    """Measure every trace before the report (coherence, and SAE diversity when the directions come from an SAE;
    --no-measure skips it and `interp-sot measure` runs it later)."""
    n_boot: int = 2000
    """Bootstrap resamples for the report."""

    def __post_init__(self) -> None:
        if self.n_boot < 0:
            raise ValueError(f"--n-boot must be >= 0, got {self.n_boot}")


@dataclass(frozen=True, kw_only=True)
class SourcesRequest:
    """What every generating command reads, as the user names it (the base of its request)."""

    problems: ProblemSource = field(default_factory=ProblemSource)
    model: ModelSource = field(default_factory=ModelSource)
    sae: SaeSource = field(default_factory=SaeSource)
    units: UnitsOptions = field(default_factory=UnitsOptions)


@dataclass(frozen=True, kw_only=True)
class SweepRequest(SourcesRequest):
    """What a steer or controls run adds: behaviour coding, what follows the run, and the plan."""

    coding: CodingOptions = field(default_factory=CodingOptions)
    finish: FinishOptions = field(default_factory=FinishOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)


def read_dose_flag(path: str | None) -> DoseResult | None:
    """The finished ``interp-sot dose`` run ``--dose`` names, or None."""
    if not path:
        return None
    from interp_sot.stages.dose import read_dose

    with bad_input(f"--dose {shorten(path)}"):
        return read_dose(path)


def strength_values(text: str, dose: DoseResult | None, units: str, feature: int | None,
                    dose_flag: str | None = None) -> list[float]:
    """``--strengths``: comma-separated numbers, or ``auto:N``: N strengths (0 included) over the coherent range
    that ``dose`` (the run ``--dose`` names) measured for ``feature`` in ``units``."""
    text = text.strip()
    if not text.startswith("auto:"):
        return parse_floats(text, "--strengths")
    try:
        n = int(text.removeprefix("auto:"))
    except ValueError as err:
        raise FlagError(f"--strengths: 'auto:N' needs an integer N, got {text!r}") from err
    if dose is None:
        raise FlagError(f"--strengths {text} needs --dose DIR (a finished `interp-sot dose` run of the feature)")
    from interp_sot.stages.dose import dose_strengths

    with bad_input(f"--dose {shorten(dose_flag)}"):
        return dose_strengths(dose, n, units, feature=feature)
