"""The end of every steering run, in one order for every caller: measure, then analyze, then report.

:func:`conclude_run` measures the finished runs' traces (``stages.measure``: coherence of every trace, and the SAE
re-encoding of the sweep's when an SAE with ``encode`` is given), analyses them together (``stages.analyze``: the one
home of the statistics) and renders each run's report from that analysis (``stages.report``: computes nothing).
:func:`conclude_analysis` is the same without measuring (a run measured already, or a plain table). The ``steer`` and
``controls`` commands, ``interp-sot analyze``, the demo and scripts call these, so they get the same files:

- ``<run>/analysis/`` (or ``analysis_out``): the analysis of the run with its controls / prompting arm / screen;
- ``<run>/report/`` and, with ``controls``, ``<controls>/report/``: each run's report (or ``report_out``).

Every stage resumes or refuses as usual (``stages.rundir``): a rerun with the same settings continues.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from interp_sot.analysis.sweep_table import RECORD_FILES
from interp_sot.errors import InterpSotError, shorten
from interp_sot.stages.analyze import AnalyzeConfig, AnalyzeResult, analyze_stage
from interp_sot.stages.analyze_measures import Arm
from interp_sot.stages.measure import MeasureConfig, MeasureResult, measure_stage
from interp_sot.stages.report import ReportConfig, ReportFiles, report_stage

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

ANALYSIS_DIR = "analysis"
"""A run's analysis folder, inside the run directory."""
REPORT_DIR = "report"
"""A run's report folder, inside the run directory."""
CONTROLS_FILE = "controls.jsonl"
Timer = Callable[[str], AbstractContextManager[Any]]
"""``timer(phase)``: a context around each phase (``measure``, ``analyze``, ``report``), e.g. the demo's timings."""


class MeasureError(InterpSotError):
    """Measuring the traces of a finished run failed (its records are intact; the analysis was not run)."""


class ConcludedRun(NamedTuple):
    """What concluding a run wrote."""

    measured: list[MeasureResult]
    """One per measured run ([] without measuring)."""
    analysis: AnalyzeResult
    analysis_dir: Path
    reports: dict[Arm, ReportFiles]
    """Per run (``sweep``, ``controls``): its report's files."""


def _no_timer(phase: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _is_controls_run(path: Path) -> bool:
    return path.is_dir() and (path / CONTROLS_FILE).is_file() and not (path / RECORD_FILES[0]).is_file()


def _layout(run: Path | None, controls: Path | None, analysis_out: str | Path | None,
            report_out: Mapping[Arm, str | Path] | None) -> tuple[Path | None, Path | None, Path, dict[Arm, Path]]:
    """(sweep, controls, analysis folder, report folder per arm) of a conclusion."""
    sweep: Path | None = run
    if run is not None and _is_controls_run(run):
        if controls is not None:
            raise InterpSotError(f"{shorten(run)} is a controls run: conclude it alone, or pass the steer run with "
                                 "controls=")
        sweep, controls = None, run
    main = run if run is not None else controls
    if main is None:
        raise InterpSotError("nothing to conclude: give a steer run, a controls run or a sweep table")
    if not main.is_dir() and analysis_out is None:
        raise InterpSotError(f"{shorten(main)} is a table, not a run directory: name the analysis folder")
    analysis = Path(analysis_out) if analysis_out is not None else main / ANALYSIS_DIR
    if report_out is not None:
        reports = {arm: Path(p) for arm, p in report_out.items()}
    else:
        reports = {}
        if sweep is not None:
            reports["sweep"] = sweep / REPORT_DIR if sweep.is_dir() else analysis / REPORT_DIR
        if controls is not None:
            reports["controls"] = controls / REPORT_DIR if controls.is_dir() else analysis / f"controls_{REPORT_DIR}"
    return sweep, controls, analysis, reports


def conclude_analysis(
    run: str | Path | None,
    *,
    analyze: AnalyzeConfig,
    report: ReportConfig,
    controls: str | Path | None = None,
    screen: str | Path | None = None,
    prompted: str | Path | None = None,
    analysis_out: str | Path | None = None,
    report_out: Mapping[Arm, str | Path] | None = None,
    timer: Timer | None = None,
) -> ConcludedRun:
    """Analyze ``run`` (a steer run, a controls run, or a sweep table; None: ``controls`` alone) with its
    ``controls`` / ``screen`` / ``prompted`` arm, then render each run's report from that analysis (the module
    docstring has the layout).

    ``analysis_out``: the analysis folder (default ``<run>/analysis``; required for a table); ``report_out``: the
    report folder per arm (default ``<run>/report``, ``<controls>/report``), only the arms named are rendered."""
    timer = timer or _no_timer
    sweep, ctrl, analysis_dir, reports = _layout(None if run is None else Path(run),
                                                 None if controls is None else Path(controls),
                                                 analysis_out, report_out)
    with timer("analyze"):
        result = analyze_stage(sweep, analyze, analysis_dir, controls=ctrl, screen=screen, prompted=prompted)
    written: dict[Arm, ReportFiles] = {}
    with timer("report"):
        for arm, folder in reports.items():
            if arm not in result.arms:
                raise InterpSotError(f"no {arm} run was analysed, so it has no report (analysed: "
                                     f"{', '.join(result.arms) or 'plain tables without records'})")
            written[arm] = report_stage(analysis_dir, report, folder, arm=arm)
    return ConcludedRun([], result, analysis_dir, written)


def conclude_run(
    model: CausalLM,
    tokenizer: Tokenizer,
    sae: SparseAutoencoder | torch.Tensor | None,
    run: str | Path,
    *,
    measure: MeasureConfig | None,
    analyze: AnalyzeConfig,
    report: ReportConfig,
    inputs: Mapping[str, object] | None = None,
    controls: str | Path | None = None,
    screen: str | Path | None = None,
    prompted: str | Path | None = None,
    analysis_out: str | Path | None = None,
    report_out: Mapping[Arm, str | Path] | None = None,
    timer: Timer | None = None,
) -> ConcludedRun:
    """Measure, then analyze, then report the finished run ``run`` (a steer or controls run directory).

    ``measure``: the measure stage's config for ``run`` (None: do not measure; the analysis reads what earlier
    measures left); the ``controls`` and ``prompted`` runs are measured with the same config without the SAE
    re-encoding, and ``run`` too when ``sae`` has no ``encode`` (a bare decoder matrix or direction file).
    ``inputs``: the measure stage's input identity (model and SAE; from the objects when None). The rest is
    :func:`conclude_analysis`. A failing measure raises :class:`MeasureError` (nothing analysed)."""
    timer = timer or _no_timer
    measured: list[MeasureResult] = []
    if measure is not None:
        # a bare decoder matrix (a tensor) has no ``encode``: measured without the SAE re-encoding
        encoder = sae if sae is not None and not isinstance(sae, torch.Tensor) and hasattr(sae, "encode") else None
        plan = [(Path(run), measure if encoder is not None else replace(measure, diversity=False))]
        plan += [(Path(p), replace(measure, diversity=False)) for p in (prompted, controls) if p is not None]
        with timer("measure"):
            for path, config in plan:
                try:
                    measured.append(measure_stage(model, tokenizer, encoder if config.diversity else None, path, config,
                                                  inputs=inputs))
                except InterpSotError as err:
                    raise MeasureError(f"{shorten(path)}: measuring its traces failed: {err}") from err
    done = conclude_analysis(run, analyze=analyze, report=report, controls=controls, screen=screen, prompted=prompted,
                             analysis_out=analysis_out, report_out=report_out, timer=timer)
    return done._replace(measured=measured)
