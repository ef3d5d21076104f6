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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from interp_sot.experiments.controls import ControlFeature, control_features, control_rows
from interp_sot.experiments.records import FeatureId
from interp_sot.experiments.sharding import main_directions, process_shard, run_rows_sharded
from interp_sot.experiments.sweep import SweepConfig
from interp_sot.io import atomic_write_json
from interp_sot.screening.controls import control_strength, sample_controls
from interp_sot.screening.groups import CONTROL_GROUPS
from interp_sot.stages.bounds import check_prompts_fit, context_length
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
from interp_sot.tasks.countdown.problems import CountdownProblem

STAGE = "controls"
CONTROLS_FILE = "controls.jsonl"
ControlMode = Literal["max_act", "matched"]


def matched_norms(scale: Any, strengths: Sequence[float]) -> tuple[float, ...]:
    """The picked feature's signed added-vector norms at its non-zero ``strengths`` (``StrengthScale``)."""
    return tuple(math.copysign(scale.added_norm(s), s) for s in strengths if s != 0)


def check_unit_norm(directions: Mapping[FeatureId, Any]) -> None:
    """Matched-norm controls steer unit vectors (strength = added norm): refuse directions of another length."""
    import torch

    bad = [f for f, d in directions.items() if abs(float(torch.as_tensor(d).float().norm()) - 1.0) > 1e-3]
    if bad:
        raise ValueError(f"matched-norm controls need unit-norm directions ('unit' units); features {bad[:5]} are not")


@dataclass(frozen=True)
class ControlsConfig:
    """Which control features are drawn and how each is run (the paper: 300 + 300, 2 x max act, 16 problems)."""

    n_controls: int = 300
    """Features per group."""
    seed: int = 0
    """Seed of the feature draw and of each feature's problem draw."""
    strength_factor: float = 2.0
    """Strength = factor x the feature's max activation on the screening corpus (SAE units)."""
    exclude: tuple[int, ...] = ()
    """Features never drawn (the steered feature)."""
    problems_per_feature: int = 16
    """Problems each control feature is steered on."""
    position_column: str = "onset_share"
    """The sentence-onset share that defines the conversational pool."""
    position_threshold: float = 0.5
    """Conversational pool: onset share above this."""
    mode: ControlMode = "max_act"
    """``max_act``: each control at ``strength_factor`` x its max activation (the paper); ``matched``: each control
    at every one of ``matched_norms``, with unit-norm directions, so that the picked feature and its controls add
    vectors of the same length at each strength (``stages.strengths``)."""
    matched_norms: tuple[float, ...] = ()
    """``matched`` mode: the picked feature's signed added-vector norms, one per non-zero sweep strength."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(int(f) for f in self.exclude))
        object.__setattr__(self, "matched_norms", tuple(float(x) for x in self.matched_norms))
        if self.n_controls < 1 or self.problems_per_feature < 1:
            raise ValueError("ControlsConfig needs n_controls >= 1 and problems_per_feature >= 1")
        if not self.strength_factor > 0:
            raise ValueError(f"ControlsConfig.strength_factor must be > 0, got {self.strength_factor}")
        if self.mode not in ("max_act", "matched"):
            raise ValueError(f"ControlsConfig.mode must be 'max_act' or 'matched', got {self.mode!r}")
        norms = self.matched_norms
        if self.mode == "matched" and (not norms or any(not math.isfinite(x) or x == 0 for x in norms)
                                       or len(set(norms)) != len(norms)):
            raise ValueError("ControlsConfig.mode='matched' needs matched_norms: distinct, finite, non-zero signed "
                             f"norms of the picked feature's added vectors (got {norms})")
        if self.mode == "max_act" and norms:
            raise ValueError("ControlsConfig.matched_norms is only used with mode='matched'")


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
    model: Any,
    tokenizer: Any,
    controls: Sequence[ControlFeature],
    problems: Sequence[CountdownProblem],
    directions: Mapping[FeatureId, Any],
    sweep: SweepConfig,
    config: ControlsConfig,
    out: str | Path,
    *,
    coding: CodingConfig | None = None,
    judge: Any = None,
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
