"""The demo's stages, each a thin call into the library, writing into one run directory.

Layout: ``stats/`` (FeatureStats + contexts + features table), ``screen/`` (screening table), ``pick.json``,
``steer/`` (sweep.jsonl + report/), ``controls/`` (controls.jsonl + report/), ``analysis/`` (regressions),
``report.md``, ``demo.png`` and ``timings.json``. Statistics and both generation stages checkpoint, so a rerun
with the same settings resumes instead of starting over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch

from interp_sot.demo.config import DemoConfig
from interp_sot.io import atomic_write_json
from interp_sot.screening.pick import Pick, pick_feature

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


def stage_stats(model: Any, tokenizer: Any, sae: Any, cfg: DemoConfig, out: Path) -> Any:
    """Fused statistics of every feature over the screening corpus (resumes from ``stats/checkpoint``)."""
    from interp_sot.features.collect import CollectConfig, collect

    collect_cfg = CollectConfig(max_length=256, batch_tokens=4096, metadata_fields=("conversational", "source"))
    stats = collect(model, tokenizer, _corpus(cfg), cfg.layer, sae, collect_cfg,
                    checkpoint_dir=out / "stats" / "checkpoint")
    stats.info.update({"model": cfg.model, "sae": cfg.sae or "shipped", "corpus": cfg.corpus or "shipped"})
    stats.save(out / "stats")
    return stats


def stage_screen(stats: Any, tokenizer: Any, cfg: DemoConfig, out: Path) -> pd.DataFrame:
    """Conversation ratio from document labels (or a judge) and the two-criterion filter for every feature."""
    from interp_sot.screening.pick import source_counts
    from interp_sot.screening.screen import save_table, screen

    contexts = stats.contexts
    if cfg.judge == "labels":
        table = screen(stats, doc_labels=contexts.sequence_labels("conversational"))
    else:
        from interp_sot.judging.spec import make_judge

        table = screen(stats, judge=make_judge(cfg.judge), work_dir=out / "screen",
                       render=lambda seq, pos: contexts.render(seq, pos, tokenizer=tokenizer))
    try:
        table["n_sources"] = source_counts(stats)
    except KeyError:
        log.info("the corpus has no 'source' field: the pick cannot prefer source-general features")
    save_table(table, out / "screen")
    return table


def stage_pick(stats: Any, table: pd.DataFrame, tokenizer: Any, cfg: DemoConfig, out: Path) -> tuple[Pick, list[str]]:
    """The feature to steer, and its top contexts as text (for the report)."""
    import numpy as np

    from interp_sot.screening.conversation_ratio import top_contexts

    pick = pick_feature(table, cfg.min_contexts)
    seq, pos, valid = top_contexts(stats, np.asarray([pick.feature]), 8)
    texts = [stats.contexts.render(int(s), int(p), before=24, after=4, tokenizer=tokenizer)
             for s, p, ok in zip(seq[0], pos[0], valid[0], strict=True) if ok]
    atomic_write_json(out / "pick.json", {**pick._asdict(), "top_contexts": texts, "min_contexts": cfg.min_contexts})
    log.info("picked feature %d (ratio %.2f, onset share %.2f, %d contexts; %d candidates)", pick.feature,
             pick.conversation_ratio, pick.position_share, pick.n_contexts, pick.n_candidates)
    return pick, texts


def _sweep_config(cfg: DemoConfig) -> Any:
    from interp_sot.experiments import GenerationSettings, SweepConfig

    gen = GenerationSettings(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                             do_sample=True, seed=cfg.seed)
    return SweepConfig(layer=cfg.layer, generation=gen, prompt_style="chat", batch_size=cfg.batch_size)


def strength_scale(model: Any, tokenizer: Any, problems: list[Any], cfg: DemoConfig) -> float:
    """Norm of one strength unit: this model's median residual norm on the prompts / ``cfg.reference_norm``."""
    from interp_sot.steering import median_residual_norm
    from interp_sot.tasks.countdown.prompts import build_prompt

    prompts = [build_prompt(p, "chat", tokenizer) for p in problems[:16]]
    return median_residual_norm(model, tokenizer, prompts, cfg.layer) / cfg.reference_norm


def stage_steer(model: Any, tokenizer: Any, sae: Any, pick: Pick, problems: list[Any], cfg: DemoConfig,
                out: Path) -> tuple[list[Any], float]:
    """The picked feature at every strength on every problem, one batched sweep; returns records and unit norm."""
    from interp_sot.experiments import run_sweep
    from interp_sot.experiments.report import write_report
    from interp_sot.steering import feature_direction, save_direction

    unit = strength_scale(model, tokenizer, problems, cfg)
    direction = feature_direction(sae, pick.feature, norm="unit") * unit
    save_direction(out / "steer" / "direction.safetensors", direction, feature=str(pick.feature),
                   layer=str(cfg.layer), unit_norm=repr(unit))
    records = run_sweep(model, tokenizer, problems, {pick.feature: direction}, list(cfg.strengths),
                        config=_sweep_config(cfg), out_path=out / "steer" / "sweep.jsonl")
    write_report(records, out / "steer" / "report", n_boot=cfg.n_boot, seed=cfg.seed)
    return records, unit


def stage_controls(model: Any, tokenizer: Any, sae: Any, table: pd.DataFrame, pick: Pick, problems: list[Any],
                   cfg: DemoConfig, out: Path) -> list[Any]:
    """Random conversational vs non-conversational features at ``control_factor`` x their max activation."""
    from interp_sot.experiments import control_features, run_controls
    from interp_sot.experiments.report import write_report
    from interp_sot.screening.controls import control_strength, sample_controls
    from interp_sot.steering import feature_direction

    controls = []
    for kind in ("conversational", "non_conversational"):
        ids = sample_controls(table.reset_index(drop=True), cfg.n_controls, kind, seed=cfg.seed,  # type: ignore[arg-type]
                              exclude=[pick.feature])
        strengths = control_strength(table, ids, factor=cfg.control_factor)
        controls += control_features([int(i) for i in ids], [float(s) for s in strengths], kind)
    atomic_write_json(out / "controls" / "controls.json", [c.__dict__ for c in controls])
    ids = [int(c.feature) for c in controls]
    table_dirs = feature_direction(sae, ids, norm="sae")
    directions = {f: table_dirs[i] for i, f in enumerate(ids)}
    records = run_controls(model, tokenizer, controls, problems, directions, config=_sweep_config(cfg),
                           problems_per_feature=cfg.control_problems, seed=cfg.seed,
                           out_path=out / "controls" / "controls.jsonl")
    write_report(records, out / "controls" / "report", n_boot=cfg.n_boot, seed=cfg.seed)
    return records


def run_demo(cfg: DemoConfig, out: str | Path) -> DemoResult:
    """Run every stage into ``out`` (see the module docstring); a rerun resumes the long stages."""
    from interp_sot.data import embedded_sae_path
    from interp_sot.demo.analysis import stage_analysis
    from interp_sot.demo.report import write_demo_report
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.tasks.countdown import generate_problems

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    timings: dict[str, float] = {}
    with _timed("load", timings, out):
        model, tokenizer = load_model(cfg.model)
        # fp32 on CPU: the shipped weights are fp16, and CPUs have no fast fp16 GEMM
        sae = load_sae(Path(cfg.sae) if cfg.sae else embedded_sae_path(), dtype="float32")
    with _timed("stats", timings, out), torch.no_grad():
        stats = stage_stats(model, tokenizer, sae, cfg, out)
    with _timed("screen", timings, out):
        table = stage_screen(stats, tokenizer, cfg, out)
        pick, contexts = stage_pick(stats, table, tokenizer, cfg, out)
    problems = generate_problems(cfg.n_problems, seed=cfg.seed)
    with _timed("steer", timings, out):
        steer_records, unit = stage_steer(model, tokenizer, sae, pick, problems, cfg, out)
    with _timed("controls", timings, out):
        control_records = stage_controls(model, tokenizer, sae, table, pick, problems, cfg, out)
    with _timed("analysis", timings, out):
        analysis = stage_analysis(steer_records, control_records, out / "analysis")
    with _timed("report", timings, out):
        report, figure = write_demo_report(out, cfg, table, pick, contexts, unit, analysis, timings)
    return DemoResult(out, pick, timings, report, figure)
