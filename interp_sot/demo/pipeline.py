"""The demo: the stage functions of :mod:`interp_sot.stages` called in order with the demo's defaults.

Layout of the run directory: ``stats/``, ``screen/``, ``pick/``, ``dose/`` (the coherent strength range),
``steer/`` (+ ``steer/report/``; strengths spread over that range), ``controls/`` (+ ``controls/report/``; matched
norms), the ``measure`` stage's sidecars in ``steer/`` and ``controls/`` (coherence, SAE feature totals; bookkeeping
in ``*/measures/``), ``analysis/`` (one stage each, see docs/architecture.md), then
``site/`` (the feature browser, :func:`interp_sot.browser.write_browser`), ``report.md``, ``demo.png``,
``config.json`` and ``timings.json``. Every stage resumes when rerun with the same
settings and refuses other settings, so a rerun of the same command continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch

from interp_sot.demo.config import DemoConfig
from interp_sot.experiments.dose import DoseResult
from interp_sot.io import atomic_write_json
from interp_sot.screening.pick import Pick

log = logging.getLogger(__name__)


class DemoResult(NamedTuple):
    """Where the demo wrote its outputs and what it found."""

    out: Path
    pick: Pick
    timings: dict[str, float]
    """Seconds per stage."""
    report: Path
    figure: Path | None


@contextmanager
def _timed(name: str, timings: dict[str, float], out: Path) -> Iterator[None]:
    log.info("stage %s ...", name)
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
    log.info("stage %s done in %.1f s", name, timings[name])
    atomic_write_json(out / "timings.json", timings)


def _corpus(cfg: DemoConfig) -> list[dict[str, Any]]:
    from interp_sot.data import read_screening_corpus

    path = Path(cfg.corpus) if cfg.corpus else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"screening corpus {path} not found")
    records = list(read_screening_corpus(path))
    if not records:
        raise ValueError(f"the screening corpus {path or 'shipped'} is empty")
    if cfg.judge == "labels" and not all(isinstance(r.get("conversational"), bool) for r in records):
        raise ValueError("judge 'labels' needs a boolean 'conversational' field in every corpus record")
    return records


def sweep_strengths(cfg: DemoConfig, dose: DoseResult) -> list[float]:
    """The sweep's strengths: ``cfg.strengths`` or ``cfg.n_strengths`` over the coherent range (the steer stage
    refuses strengths outside it)."""
    from interp_sot.experiments.dose import auto_strengths

    if cfg.strengths is None:
        if cfg.n_strengths == 2 and dose.positive > 0:  # 0 and the positive edge: the direction the paper tests
            return [0.0, dose.positive]
        return auto_strengths(dose, cfg.n_strengths)
    return sorted(cfg.strengths)


def run_demo(cfg: DemoConfig, out: str | Path) -> DemoResult:
    """Run every stage into ``out`` (see the module docstring); a rerun resumes the long stages."""
    from interp_sot.browser import BrowserOptions, write_browser
    from interp_sot.data import embedded_sae_path, screening_corpus_path
    from interp_sot.demo.report import SITE, write_demo_report
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.stages.conclude import conclude_run
    from interp_sot.stages.controls import matched_norms, sample_control_features, steer_controls
    from interp_sot.stages.dose import dose_stage
    from interp_sot.stages.identity import model_identity, path_identity
    from interp_sot.stages.pick import pick_stage
    from interp_sot.stages.prompted import prompted_stage
    from interp_sot.stages.screen import screen_stage
    from interp_sot.stages.stats import stats_stage
    from interp_sot.stages.steer import steer_features
    from interp_sot.stages.strengths import read_units, run_prompts
    from interp_sot.tasks.countdown.presets import get_preset, held_out_split
    from interp_sot.tasks.countdown.prompts import read_question_template

    out = Path(out)
    preset = get_preset(cfg.task)  # bad settings fail here, before anything loads
    if cfg.prompted:
        read_question_template(cfg.prompted_instruction)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    names = {"model": cfg.model, "sae": cfg.sae or "shipped", "corpus": cfg.corpus or "shipped"}
    sae_path = Path(cfg.sae) if cfg.sae else embedded_sae_path()
    inputs = {"model": model_identity(cfg.model), "sae": path_identity(sae_path),
              "corpus": path_identity(cfg.corpus or screening_corpus_path())}
    timings: dict[str, float] = {}
    with _timed("load", timings, out):
        model, tokenizer = load_model(cfg.model)
        sae = load_sae(sae_path)  # fp16 weights compute in fp32 on the CPU
    with _timed("stats", timings, out), torch.no_grad():
        stats_result = stats_stage(model, tokenizer, sae, _corpus(cfg), cfg.stats_config(), out / "stats",
                                   inputs=inputs, info=names)
        assert stats_result is not None  # the demo never runs under torchrun
        stats = stats_result.stats
    with _timed("screen", timings, out):
        table = screen_stage(stats, cfg.screen_config(), out / "screen", tokenizer=tokenizer, inputs=inputs).table
        pick, contexts = pick_stage(stats, table, cfg.pick_config(), out / "pick", tokenizer=tokenizer, inputs=inputs)
    dose_problems, problems = held_out_split(preset, cfg.dose_prompts, cfg.n_problems, seed=cfg.seed)
    sweep = cfg.sweep_config()
    with _timed("dose", timings, out):  # the coherent range, in resid units, on problems held out from the sweep
        prompts = run_prompts(dose_problems, sweep.prompt_spec, tokenizer, n=None)
        dose = dose_stage(model, tokenizer, sae, pick.feature, prompts, cfg.dose_config(), out / "dose",
                          units="resid", inputs=inputs, problems=dose_problems)
        strengths = sweep_strengths(cfg, dose)
    with _timed("steer", timings, out):  # inside the coherent range the dose stage found, judged by its norm
        steered = steer_features(model, tokenizer, sae, problems, [pick.feature], strengths, sweep, out / "steer",
                                 units="resid", residual=dose.residual_norm, dose=dose, inputs=inputs)
    if cfg.prompted:
        with _timed("prompted", timings, out):  # the unsteered model asked for a conversation of voices
            template = read_question_template(cfg.prompted_instruction)
            prompted_stage(model, tokenizer, problems, sweep, template, out / "prompted", inputs=inputs)
    with _timed("controls", timings, out):
        ctrl_cfg = cfg.controls_config((pick.feature,), matched_norms(read_units(steered.out) or {}))
        controls = sample_control_features(table, ctrl_cfg)
        # every control feature on the same first problems, so the conversational - non-conversational contrast is
        # within problem (random problems per feature leave each problem in one group: nothing to compare)
        steer_controls(model, tokenizer, sae, controls, problems[: cfg.control_problems], sweep, ctrl_cfg,
                       out / "controls", residual=dose.residual_norm, inputs=inputs)
    treated = max(strengths) if max(strengths) > 0 else min(strengths)
    phases = {"measure": "measure", "analyze": "analysis", "report": "analysis"}  # the run reports count as analysis
    done = conclude_run(model, tokenizer, sae, out / "steer", measure=cfg.measure_config(),
                        analyze=cfg.analyze_config(treated), report=cfg.report_config(), inputs=inputs,
                        controls=out / "controls", screen=out / "screen",
                        prompted=out / "prompted" if cfg.prompted else None, analysis_out=out / "analysis",
                        timer=lambda phase: _timed(phases[phase], timings, out))
    analysis = done.analysis
    with _timed("browser", timings, out):  # what `interp-sot browse` writes for this run directory
        write_browser(stats, screen=out / "screen", sweep=[out / "steer", out / "controls"], out=out / SITE,
                      tokenizer=tokenizer, options=BrowserOptions(pick=cfg.pick_config()))
    with _timed("report", timings, out):
        report, figure = write_demo_report(out, cfg, table, pick, contexts, dose, strengths, analysis, timings)
    return DemoResult(out, pick, timings, report, figure)
