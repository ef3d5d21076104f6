"""Stage ``steer`` (the sweep): every problem under every direction at every strength, batched, resumable.

Reads: a model + tokenizer, Countdown problems, directions (feature -> ``[d_model]``) and strengths. Writes
into its directory: ``problems.jsonl``, ``sweep.jsonl`` (one record per trace, appended per batch; a rerun
resumes), ``direction.safetensors`` when one direction is steered, and with a judge ``behaviours.jsonl`` +
``judge_cache.jsonl`` (LLM behaviour codings). It writes records only: every statistic of a run is computed by
the ``analyze`` and ``report`` stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from interp_sot.analysis.perspectives import PERSPECTIVES_PROMPT
from interp_sot.analysis.sweep_table import BEHAVIOURS_FILE, PERSPECTIVES_FILE
from interp_sot.behaviours.judge_coding import BehaviourCoding, TraceToCode, code_traces, resolve_scheme
from interp_sot.behaviours.prompts import SCHEMES
from interp_sot.experiments.dose import DoseResult, check_held_out, check_in_range
from interp_sot.experiments.records import FeatureId, SweepRecord, direction_fingerprint
from interp_sot.experiments.sharding import main_directions, process_shard, run_rows_sharded
from interp_sot.experiments.sweep import SweepConfig, sweep_rows
from interp_sot.io import atomic_write_text
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.judging.registry import can_code_behaviours
from interp_sot.stages.bounds import check_prompts_fit, context_length
from interp_sot.stages.identity import object_inputs
from interp_sot.stages.rundir import begin_stage, finish_stage
from interp_sot.stages.strengths import sae_directions, units_summary, write_units
from interp_sot.steering.directions import save_direction
from interp_sot.steering.spec import write_run_spec
from interp_sot.steering.strength_units import StrengthUnits
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    import torch

    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import CausalLM, Judge, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

STAGE = "steer"
PROBLEMS_FILE = "problems.jsonl"
SWEEP_FILE = "sweep.jsonl"
DEFAULT_SCHEMES = ("conversational", "bales", "cognitive")
CODING_PROMPTS: dict[str, PromptTemplate] = {
    PERSPECTIVES_PROMPT.name: PERSPECTIVES_PROMPT, **{s.template.name: s.template for s in SCHEMES.values()}}
"""The prompts a coding run uses, by template name: what ``CodingConfig.prompts`` (``--prompt-file``) replaces."""


@dataclass(frozen=True)
class CodingConfig:
    """LLM-judge behaviour coding of every trace (optional; needs a judge that can read traces)."""

    judge: str
    """Judge spec (``openai:MODEL@URL``, ``hf:PATH``); ``labels`` and ``heuristic`` cannot code behaviours."""
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    """Coding schemes by name (``conversational``, ``bales``, ``cognitive``)."""
    perspectives: bool = False
    """Also analyse each trace's perspectives (BFI-10 per perspective, expertise) into ``perspectives.jsonl``."""
    prompts: tuple[PromptTemplate, ...] = ()
    """Replacement prompts (e.g. from ``judging.prompts.files.load_prompt_files``), each named like the template it
    replaces (:data:`CODING_PROMPTS`); their text and file hash are part of the run's identity."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "schemes", tuple(s.strip() for s in self.schemes if s.strip()))
        for s in self.schemes:
            resolve_scheme(s)
        object.__setattr__(self, "prompts", tuple(self.prompts))
        names = [t.name for t in self.prompts]
        for t in self.prompts:
            base = CODING_PROMPTS.get(t.name)
            if base is None:
                raise ValueError(f"unknown coding prompt {t.name!r}; known: {sorted(CODING_PROMPTS)}")
            if t.fields != base.fields or names.count(t.name) > 1:
                raise ValueError(f"coding prompt {t.name!r}: given twice, or without the placeholders "
                                 f"{list(base.fields)} (got {list(t.fields)})")
        if not can_code_behaviours(self.judge):
            raise ValueError(f"judge {self.judge!r} cannot code behaviours; use an LLM judge (openai:MODEL@URL, "
                             "hf:PATH)")


class SweepResult(NamedTuple):
    """The records of a steering run (sweep or controls) and the judge codings, if any."""

    records: list[SweepRecord]
    out: Path
    codings: list[BehaviourCoding] | None


def problems_identity(problems: Sequence[CountdownProblem]) -> dict[str, Any]:
    """Content identity of a problem list: count and sha256 over ids, numbers and targets (order included)."""
    payload = json.dumps([[p.problem_id, list(p.nums), p.target] for p in problems]).encode()
    return {"n": len(problems), "sha256": hashlib.sha256(payload).hexdigest()}


def save_problems(problems: Sequence[CountdownProblem], out: Path) -> Path:
    path = out / PROBLEMS_FILE
    atomic_write_text(path, "".join(json.dumps(p.to_dict()) + "\n" for p in problems))
    return path


def make_coding_judge(coding: CodingConfig | None, judge: Judge | None = None) -> Any:
    """The judge that codes behaviours (built before any generation, so a bad spec fails fast)."""
    if coding is None:
        return None
    if judge is not None:
        return judge
    from interp_sot.judging.spec import make_judge

    return make_judge(coding.judge)


def code_behaviours(judge: Judge, records: Sequence[SweepRecord], coding: CodingConfig,
                    out: Path) -> list[BehaviourCoding]:
    """Code every trace with ``judge`` (cached on disk; a rerun costs nothing) into ``behaviours.jsonl``, and with
    ``coding.perspectives`` analyse its perspectives into ``perspectives.jsonl`` (read by the analyze stage)."""
    from interp_sot.judging.cache import CachedJudge

    cached = CachedJudge(judge, out / "judge_cache.jsonl", version="behaviours")
    items = [TraceToCode(r.key, r.completion, f"Countdown: reach {r.target} from {r.nums}") for r in records]
    prompts = {t.name: t for t in coding.prompts}
    templates = {s.name: prompts[s.template.name] for s in SCHEMES.values() if s.template.name in prompts}
    codings = code_traces(cached, items, list(coding.schemes), out_path=out / BEHAVIOURS_FILE, templates=templates)
    if coding.perspectives:
        from interp_sot.analysis.perspectives import analyze_perspectives

        analyze_perspectives(judge, {r.key: r.completion for r in records}, log_path=out / PERSPECTIVES_FILE,
                             prompt=prompts.get(PERSPECTIVES_PROMPT.name, PERSPECTIVES_PROMPT))
    return codings


def steering_identity(config: SweepConfig, directions: Mapping[FeatureId, Any], problems: Sequence[CountdownProblem],
                      **extra: Any) -> dict[str, Any]:
    """What a steering run's records depend on: settings, batch size, directions (fingerprints), problems."""
    return {"settings": config.settings(), "batch_size": config.batch_size,
            "directions": {str(f): direction_fingerprint(d) for f, d in directions.items()},
            "problems": problems_identity(problems), **extra}


def steer_identity(config: SweepConfig, directions: Mapping[FeatureId, Any], problems: Sequence[CountdownProblem],
                   strengths: Sequence[float], coding: CodingConfig | None = None) -> dict[str, Any]:
    """The ``steer`` stage's identity (the CLI claims the run directory with it before loading the model)."""
    return steering_identity(config, directions, problems, strengths=[float(s) for s in strengths], coding=coding)


def steer_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    problems: Sequence[CountdownProblem],
    directions: Mapping[FeatureId, Any],
    strengths: Sequence[float],
    config: SweepConfig,
    out: str | Path,
    *,
    coding: CodingConfig | None = None,
    judge: Judge | None = None,
    inputs: Mapping[str, Any] | None = None,
    progress: bool = True,
    strength_units: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run (or resume) the sweep into ``out``; ``coding`` adds LLM behaviour codings (``judge`` overrides its spec).

    ``strength_units``: ``stages.strengths.units_record`` of the directions (units, added norms and their ratio to
    the residual norm), kept as ``strength_units.json`` and in the manifest's summary. Under torchrun (process group
    joined, e.g. ``experiments.sharding.join_torchrun()``) every rank runs whole batches and returns the merged records;
    rank 0 alone writes ``out``, codes and finishes the stage, so the other ranks' results have ``codings=None``."""
    out = Path(out)
    check_prompts_fit(problems, config.prompt_spec,
                      tokenizer, context_length(model))  # before anything is claimed or generated
    inputs = object_inputs(model) if inputs is None else inputs  # the Python API is as strict as the CLI
    shard = process_shard()  # under torchrun rank 0 alone claims and writes `out`; every rank runs its batches
    judge = make_coding_judge(coding, judge) if shard.is_main else None
    files: list[Path] = []
    if shard.is_main:
        begin_stage(out, STAGE, steer_identity(config, directions, problems, strengths, coding), inputs)
        files.append(save_problems(problems, out))
        if len(directions) == 1:
            (feature, direction), = directions.items()
            files.append(out / "direction.safetensors")
            save_direction(files[-1], direction, feature=str(feature), layer=str(config.layer))
    directions = main_directions(shard, directions)  # also: the other ranks wait here for rank 0's claim
    rows = sweep_rows(problems, list(directions), strengths)
    records = run_rows_sharded(model, tokenizer, rows, directions, config, out / SWEEP_FILE, shard=shard,
                               progress=progress)
    if not shard.is_main:  # the merged records; rank 0 codes, records the units and writes the manifest
        return SweepResult(records, out, None)
    files.append(out / SWEEP_FILE)
    files += write_run_spec(out, model=(inputs or {}).get("model", "unknown"), layer=config.layer,
                            directions=directions, strengths=strengths, site=config.site, scope=config.scope,
                            layers_path=config.layers_path, units=strength_units)  # steering.json: the portable spec
    return finish_steering_run(out, STAGE, records, files, {"rows": len(records)}, coding=coding, judge=judge,
                               strength_units=strength_units)


def steer_features(model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder | torch.Tensor,
                   problems: Sequence[CountdownProblem], features: Sequence[int], strengths: Sequence[float],
                   config: SweepConfig, out: str | Path, *,
                   units: StrengthUnits = "unit", residual: float | None = None, stats: FeatureStats | None = None,
                   dose: DoseResult | None = None, **options: Any) -> SweepResult:
    """The ``steer`` stage for SAE features as the user names them (ids, strengths in ``units``): builds each
    feature's direction and the units record (``stages.strengths.sae_directions``; ``residual``: the median residual
    norm to judge them by, None measures it on the run's first prompts), refuses strengths outside the coherent
    range a ``dose`` run measured (and evaluation problems it was tuned on), then runs :func:`steer_stage`
    (``options``: its keywords). Every caller (the CLI, the demo, a script) goes through here."""
    if dose is not None:
        check_in_range(dose, strengths, units, feature=features[0] if len(features) == 1 else None)
        check_held_out(dose, problems)
    picked = sae_directions(model, tokenizer, sae, problems, config, features, units, strengths, residual=residual,
                            stats=stats)
    return steer_stage(model, tokenizer, problems, picked.directions, strengths, config, out,
                       strength_units=picked.record, **options)


def finish_steering_run(out: Path, stage: str, records: list[SweepRecord], files: list[Path], summary: dict[str, Any],
                        *, coding: CodingConfig | None, judge: Judge | None, strength_units: Mapping[str, Any] | None
                        ) -> SweepResult:
    """The end of a ``steer`` or ``controls`` run on the main rank: behaviour codings, the strength-units record,
    then the manifest (written last)."""
    codings = None
    if coding is not None:
        if judge is None:
            raise ValueError("behaviour coding needs a judge (make_coding_judge builds it from the coding config)")
        codings = code_behaviours(judge, records, coding, out)
    if codings is not None:
        files.append(out / BEHAVIOURS_FILE)
    if strength_units is not None:
        files.append(write_units(out, strength_units))
        summary["strength_units"] = units_summary(strength_units)
    finish_stage(out, stage, files, summary)
    return SweepResult(records, out, codings)
