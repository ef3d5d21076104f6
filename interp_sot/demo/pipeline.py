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
    timings[name] = time.perf_counter() - start
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
    """The sweep's strengths: ``cfg.strengths`` or ``cfg.n_strengths`` over the coherent range; never outside it."""
    from interp_sot.experiments.dose import auto_strengths

    if cfg.strengths is None:
        if cfg.n_strengths == 2 and dose.positive > 0:  # 0 and the positive edge: the direction the paper tests
            return [0.0, dose.positive]
        return auto_strengths(dose, cfg.n_strengths)
    outside = [s for s in cfg.strengths if not dose.negative - 1e-9 <= s <= dose.positive + 1e-9]
    if outside:
        raise ValueError(f"strengths {outside} lie outside the coherent range [{dose.negative:g}, {dose.positive:g}] "
                         f"the dose stage found (tolerance {dose.tolerance:g} nats/token); the model writes broken "
                         "text there. Leave --strengths out to sweep inside the range")
    return sorted(cfg.strengths)


def run_demo(cfg: DemoConfig, out: str | Path) -> DemoResult:
    """Run every stage into ``out`` (see the module docstring); a rerun resumes the long stages."""
    from interp_sot.browser import BrowserOptions, write_browser
    from interp_sot.data import embedded_sae_path, screening_corpus_path
    from interp_sot.demo.report import SITE, write_demo_report
    from interp_sot.experiments.dose import check_held_out
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.stages.analyze import analyze_stage
    from interp_sot.stages.controls import controls_stage, matched_norms, sample_control_features
    from interp_sot.stages.dose import dose_stage
    from interp_sot.stages.identity import model_identity, path_identity
    from interp_sot.stages.measure import measure_stage
    from interp_sot.stages.pick import pick_stage
    from interp_sot.stages.prompted import prompted_stage
    from interp_sot.stages.report import report_stage
    from interp_sot.stages.screen import screen_stage
    from interp_sot.stages.stats import stats_stage
    from interp_sot.stages.steer import steer_stage
    from interp_sot.stages.strengths import directions_of, feature_scales, run_prompts, units_record
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
        check_held_out(dose, problems)
        strengths = sweep_strengths(cfg, dose)
    with _timed("steer", timings, out):
        scale = feature_scales(sae, [pick.feature], "resid", residual=dose.residual_norm)
        steered = steer_stage(model, tokenizer, problems, directions_of(scale), strengths, sweep, out / "steer",
                              inputs=inputs, strength_units=units_record(scale, strengths))
    if cfg.prompted:
        with _timed("prompted", timings, out):  # the unsteered model asked for a conversation of voices
            template = read_question_template(cfg.prompted_instruction)
            prompted_stage(model, tokenizer, problems, sweep, template, out / "prompted", inputs=inputs)
    with _timed("controls", timings, out):
        ctrl_cfg = cfg.controls_config((pick.feature,), matched_norms(scale[pick.feature], strengths))
        controls = sample_control_features(table, ctrl_cfg)
        per_feature: dict[int, list[float]] = {}
        for c in controls:
            per_feature.setdefault(int(c.feature), []).append(c.strength)
        ctrl_scales = feature_scales(sae, list(per_feature), "unit" if cfg.control_mode == "matched" else "sae",
                                     residual=dose.residual_norm)
        # every control feature on the same first problems, so the conversational - non-conversational contrast is
        # within problem (random problems per feature leave each problem in one group: nothing to compare)
        shared = problems[: cfg.control_problems]
        ran = controls_stage(model, tokenizer, controls, shared, directions_of(ctrl_scales), sweep, ctrl_cfg,
                             out / "controls", inputs=inputs, strength_units=units_record(ctrl_scales, per_feature))
    with _timed("measure", timings, out):  # coherence of every trace; SAE diversity of the sweep's traces
        measure_stage(model, tokenizer, sae, out / "steer", cfg.measure_config(), inputs=inputs)
        for arm in ("prompted", "controls") if cfg.prompted else ("controls",):
            measure_stage(model, tokenizer, sae, out / arm, cfg.measure_config(diversity=False), inputs=inputs)
    with _timed("analysis", timings, out):  # every table; the per-run reports render after the measures
        treated = max(strengths) if max(strengths) > 0 else min(strengths)
        analysis = analyze_stage(out / "steer", cfg.analyze_config(treated), out / "analysis",
                                 controls=out / "controls", screen=out / "screen",
                                 prompted=out / "prompted" if cfg.prompted else None)
        for arm, result in (("steer", steered), ("controls", ran)):
            report_stage(result.records, cfg.report_config(), out / arm / "report", run_dir=out / arm)
    with _timed("browser", timings, out):  # what `interp-sot browse` writes for this run directory
        write_browser(stats, screen=out / "screen", sweep=[out / "steer", out / "controls"], out=out / SITE,
                      tokenizer=tokenizer, options=BrowserOptions(pick=cfg.pick_config()))
    with _timed("report", timings, out):
        report, figure = write_demo_report(out, cfg, table, pick, contexts, dose, strengths, analysis, timings)
    return DemoResult(out, pick, timings, report, figure)
