"""Stage ``controls``: random conversational vs non-conversational features, each steered on N random problems.

Reads: the ``screen`` stage's table (to sample the features and their strengths, :func:`sample_control_features`)
or an explicit list of :class:`~interp_sot.experiments.controls.ControlFeature`, a model, problems and the
features' directions. Writes into its directory: ``controls.json`` (the features, strengths and groups),
``problems.jsonl``, ``controls.jsonl`` (one record per trace; a rerun resumes) and, with a judge, behaviour
codings as in the ``steer`` stage. Records only: the control contrast is fitted by ``analyze``/``report``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from interp_sot.experiments.controls import ControlFeature, control_features, control_rows
from interp_sot.experiments.records import FeatureId
from interp_sot.experiments.sharding import main_directions, process_shard, run_rows_sharded
from interp_sot.experiments.sweep import SweepConfig
from interp_sot.io import atomic_write_json
from interp_sot.screening.controls import control_strength, sample_controls
from interp_sot.screening.groups import CONTROL_GROUPS
from interp_sot.stages.bounds import check_prompts_fit, context_length
from interp_sot.stages.controls_config import ControlsConfig
from interp_sot.stages.identity import object_inputs
from interp_sot.stages.rundir import begin_stage
from interp_sot.stages.steer import (
    PROBLEMS_FILE,
    CodingConfig,
    SweepResult,
    finish_steering_run,
    make_coding_judge,
    save_problems,
    steering_identity,
)
from interp_sot.stages.strengths import sae_directions
from interp_sot.steering.strength_units import StrengthUnits
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    import torch

    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import CausalLM, Judge, SparseAutoencoder, Tokenizer

STAGE = "controls"
CONTROLS_FILE = "controls.jsonl"


def matched_norms(record: Mapping[str, Any]) -> tuple[float, ...]:
    """The picked feature's signed added-vector norms at its non-zero strengths, ascending, from its run's units
    record (``strength_units.json``, ``stages.strengths.read_units``): what ``matched`` controls steer at."""
    rows = record.get("rows", [])
    if len({r["feature"] for r in rows}) != 1:
        raise ValueError("the units record steers several features (or none); match one feature's run")
    return tuple(sorted({math.copysign(r["added_norm"], r["strength"]) for r in rows if r["strength"] != 0}))


def steer_controls(model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder | torch.Tensor,
                   controls: Sequence[ControlFeature], problems: Sequence[CountdownProblem], sweep: SweepConfig,
                   config: ControlsConfig, out: str | Path, *, units: StrengthUnits | None = None,
                   residual: float | None = None, stats: FeatureStats | None = None,
                   **options: Any) -> SweepResult:
    """The ``controls`` stage for SAE control features: builds their directions in ``units`` (default
    ``config.units``) and the units record of each feature's strengths, then runs :func:`controls_stage`
    (``options``: its keywords). ``residual``: as in ``stages.steer.steer_features``."""
    per_feature: dict[int, list[float]] = {}
    for c in controls:
        per_feature.setdefault(int(c.feature), []).append(c.strength)
    built = sae_directions(model, tokenizer, sae, problems, sweep, list(per_feature), units or config.units,
                           per_feature, residual=residual, stats=stats)
    return controls_stage(model, tokenizer, controls, problems, built.directions, sweep, config, out,
                          strength_units=built.record, **options)


def check_unit_norm(directions: Mapping[FeatureId, Any]) -> None:
    """Matched-norm controls steer unit vectors (strength = added norm): refuse directions of another length."""
    import torch

    bad = [f for f, d in directions.items() if abs(float(torch.as_tensor(d).float().norm()) - 1.0) > 1e-3]
    if bad:
        raise ValueError(f"matched-norm controls need unit-norm directions ('unit' units); features {bad[:5]} are not")


def sample_control_features(table: pd.DataFrame, config: ControlsConfig) -> list[ControlFeature]:
    """``n_controls`` features of each group from a screening table, at ``strength_factor`` x max activation."""
    table = table.reset_index(drop=True)
    out: list[ControlFeature] = []
    for group in CONTROL_GROUPS:
        ids = sample_controls(table, config.n_controls, group, seed=config.seed, exclude=config.exclude,
                              position_column=config.position_column, position_threshold=config.position_threshold)
        if config.mode == "matched":
            out += [ControlFeature(int(i), s, group) for i in ids for s in config.matched_norms]
            continue
        strengths = control_strength(table, ids, factor=config.strength_factor)
        out += control_features([int(i) for i in ids], [float(s) for s in strengths], group)
    return out


def controls_identity(controls: Sequence[ControlFeature], problems: Sequence[CountdownProblem],
                      directions: Mapping[FeatureId, Any], sweep: SweepConfig, config: ControlsConfig,
                      coding: CodingConfig | None = None) -> dict[str, Any]:
    """The ``controls`` stage's identity (the CLI claims the run directory with it before loading the model)."""
    return steering_identity(sweep, directions, problems, controls_config=config,
                             controls=[c.__dict__ for c in controls], coding=coding)


def controls_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    controls: Sequence[ControlFeature],
    problems: Sequence[CountdownProblem],
    directions: Mapping[FeatureId, Any],
    sweep: SweepConfig,
    config: ControlsConfig,
    out: str | Path,
    *,
    coding: CodingConfig | None = None,
    judge: Judge | None = None,
    inputs: Mapping[str, Any] | None = None,
    progress: bool = True,
    strength_units: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run (or resume) every control feature on ``config.problems_per_feature`` problems drawn with ``config.seed``
    (``sweep``: layer, sampling, prompt and batching, as in the ``steer`` stage). ``strength_units``: as in
    ``steer_stage``. In ``matched`` mode every direction must have norm 1 (strength = added norm). Under torchrun: as
    ``steer_stage`` (whole batches per rank, rank 0 writes and codes)."""
    bad = [c.feature for c in controls if not isinstance(c.feature, int)]
    if bad:
        raise ValueError(f"control features must be SAE feature ids (integers); got {bad[:5]}")
    if config.mode == "matched":
        check_unit_norm(directions)
    out = Path(out)
    check_prompts_fit(problems, sweep.prompt_spec,
                      tokenizer, context_length(model))  # before anything is claimed or generated
    inputs = object_inputs(model) if inputs is None else inputs  # the Python API is as strict as the CLI
    shard = process_shard()  # under torchrun rank 0 alone claims and writes `out`; every rank runs its batches
    judge = make_coding_judge(coding, judge) if shard.is_main else None
    if shard.is_main:
        begin_stage(out, STAGE, controls_identity(controls, problems, directions, sweep, config, coding), inputs)
        atomic_write_json(out / "controls.json", [c.__dict__ for c in controls])
        save_problems(problems, out)
    directions = main_directions(shard, directions)  # also: the other ranks wait here for rank 0's claim
    rows = control_rows(controls, problems, problems_per_feature=config.problems_per_feature, seed=config.seed)
    records = run_rows_sharded(model, tokenizer, rows, directions, sweep, out / CONTROLS_FILE, shard=shard,
                               progress=progress)
    if not shard.is_main:  # the merged records; rank 0 codes, records the units and writes the manifest
        return SweepResult(records, out, None)
    files = [out / "controls.json", out / PROBLEMS_FILE, out / CONTROLS_FILE]
    return finish_steering_run(out, STAGE, records, files, {"rows": len(records), "mode": config.mode},
                               coding=coding, judge=judge, strength_units=strength_units)
